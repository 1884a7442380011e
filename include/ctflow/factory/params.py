"""Trigger-form parameters of the DAGs: typed, described, with defaults, so the form explains itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Param

from ctflow.spec.durations import format_duration

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec

_AS_OF = Param(
    None,
    type=["null", "string"],
    format="date-time",
    title="As of",
    description="Treat the run as happening at this instant (ISO date-time). Default: the run's logical date.",
)


def ct_params(spec: PipelineSpec) -> dict[str, Param]:
    """The ``ct_<name>`` trigger form: what to do, the training window, and promotion overrides.

    Params are validated one by one (Airflow has no cross-field schema), so the rules that tie two
    fields together are stated in the form and enforced where they matter: a rollback, and a
    forced promotion that the gate would have refused, fail with a clear message when ``reason``
    is empty (``ctflow.core.steps``); the ctflow view refuses such triggers before they start.
    """
    window = spec.data.window
    holdout_days = spec.data.holdout.longest().days  # the override is in whole days
    return {
        "action": Param(
            "train",
            type="string",
            enum=["train", "rollback"],
            values_display={
                "train": "Train: build, gate and maybe promote a candidate",
                "rollback": "Roll back: move the champion to its previous holder",
            },
            title="Action",
            description="train builds, gates and maybe promotes a candidate. rollback moves the champion of "
            f"{spec.model_name!r} back to its previous holder (give a reason below).",
            section="What to do",
        ),
        "reason": Param(
            # Null, not "": Airflow's trigger form treats an empty non-nullable string as missing and
            # keeps Trigger disabled, though a plain retrain needs no reason.
            None,
            type=["null", "string"],
            maxLength=500,
            title="Reason",
            description="Why: recorded in the alias history. Required for a rollback and for a forced promotion.",
            section="What to do",
        ),
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="As of",
            description="Treat the run as happening at this instant (ISO date-time, UTC). Empty: the run's "
            "logical date, or now for a manual run without one.",
            section="Training data",
        ),
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=max(holdout_days + 1, 1),
            maximum=3660,
            title="Training window (days)",
            description=f"Override the spec's training window ({format_duration(window)}): rows of "
            f"[as of - window, as of). Must be longer than the holdout ({holdout_days} days). Empty: the spec's.",
            section="Training data",
        ),
        "force_promotion": Param(
            False,
            type="boolean",
            title="Force promotion",
            description="Promote the candidate even if it loses to the champion. Absolute floors still apply, "
            "and a reason is required.",
            section="Promotion",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Train and gate, log to MLflow, but register and promote nothing.",
            section="Promotion",
        ),
    }


def monitor_params(spec: PipelineSpec) -> dict[str, Param]:
    """The ``monitor_<name>`` trigger form: which window to judge, and whether to act on it."""
    monitoring = spec.monitoring
    window = format_duration(monitoring.window)
    after = spec.label_available_after
    delay = format_duration(after) if after else ""
    labelled = f"[as of - {delay} - {window}, as of - {delay})" if after else f"[as of - {window}, as of)"
    return {
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="As of",
            description=f"Judge the window ending at this instant (ISO date-time, UTC): rows of [as of - {window}, "
            f"as of) are scored and checked for drift; performance is measured on the rows of {labelled} "
            "whose labels are known at as of (data.label). Empty: the run's logical date. Re-running a window "
            "replaces its predictions.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Score, compute and report (predictions store, MLflow), but send no alerts, trigger no "
            "retraining and promote or retire no challenger.",
        ),
    }
