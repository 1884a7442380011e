"""Trigger-form parameters of the DAGs: typed, described, with defaults, so the form explains itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Param

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
    window_days = spec.data.window.days
    return {
        "action": Param(
            "train",
            enum=["train", "rollback"],
            title="Action",
            description="train: build, gate and maybe promote a candidate. rollback: move the champion "
            "back to its previous holder (give a reason).",
        ),
        "as_of": _AS_OF,
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=3660,
            title="Training window (days)",
            description=f"Override the spec's training window ({window_days} days).",
        ),
        "force_promotion": Param(
            False,
            type="boolean",
            title="Force promotion",
            description="Promote even if the candidate loses to the champion (absolute floors still apply). "
            "Needs a reason.",
        ),
        "dry_run": Param(
            False, type="boolean", title="Dry run", description="Train and gate, but register and promote nothing."
        ),
        "reason": Param(
            "",
            type="string",
            maxLength=500,
            title="Reason",
            description="Why: recorded in the alias history. Required for rollback and forced promotion.",
        ),
    }


def monitor_params(spec: PipelineSpec) -> dict[str, Param]:
    return {
        "as_of": _AS_OF,
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Compute and report, but send no alerts and trigger no retraining.",
        ),
    }
