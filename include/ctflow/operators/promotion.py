"""Operators that move models through the MLflow registry: register, promote, roll back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseBranchOperator

from ctflow.links import ModelVersionLink
from ctflow.operators.base import CtflowOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class ChooseActionOperator(BaseBranchOperator):
    """
    Route a run of the CT DAG: ``params.action`` is ``train`` (default) or ``rollback``.

    :param train_task_id: first task of the training path.
    :param rollback_task_id: the rollback task.
    """

    template_fields: Sequence[str] = ()

    def __init__(self, *, train_task_id: str, rollback_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_task_id = train_task_id
        self.rollback_task_id = rollback_task_id

    def choose_branch(self, context: Context) -> str:
        params = context.get("params") or {}
        action = params.get("action", "train")
        # Fail here, before minutes of training, when the audit trail would lack its reason.
        if (action == "rollback" or params.get("force_promotion")) and not str(params.get("reason") or "").strip():
            what = "a rollback" if action == "rollback" else "a forced promotion"
            # Final: a retry would run with the same params.
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{what} needs params.reason: it is recorded in the alias history")
        self.log.info("Action of this run: %s", action)
        return self.rollback_task_id if action == "rollback" else self.train_task_id


class RegisterModelOperator(CtflowOperator):
    """
    Register the candidate as a model version with lineage tags, if the gate passed.

    Idempotent: a retry or re-run finds the version this run already registered (by its run
    key tag) instead of creating another. Skips (with the reason) when the gate failed or
    ``params.dry_run`` is set.
    """

    ui_color = "#e0f2f1"
    operator_extra_links = (ModelVersionLink(),)

    def execute(self, context: Context) -> dict[str, Any]:
        from ctflow.core import steps

        params = context.get("params") or {}
        result = steps.register(
            self.spec,
            run_dir=self.run_dir(),
            run_key=self.run_key,
            force=params.get("force_promotion", False),
            reason=params.get("reason") or "",
            dry_run=params.get("dry_run", False),
            tracking_uri=self.tracking_uri,
        )
        return _skip_on_refusal(result)


class PromoteModelOperator(CtflowOperator):
    """
    Point the spec's alias at the registered version: ``champion`` for strategy ``direct``,
    ``challenger`` for ``shadow``/``canary``. Serialized with concurrent runs: if another run
    moved the champion since this candidate was gated, it must beat that one too.
    """

    ui_color = "#c8e6c9"

    def execute(self, context: Context) -> dict[str, Any]:
        from ctflow.core import steps

        params = context.get("params") or {}
        return steps.promote(
            self.spec,
            run_dir=self.run_dir(),
            actor=_actor(context),
            run_key=self.run_key,
            force=params.get("force_promotion", False),
            reason=params.get("reason") or "",
            tracking_uri=self.tracking_uri,
        )


class RollbackModelOperator(CtflowOperator):
    """Move ``champion`` back to its previous holder, recording who and why (``params.reason``)."""

    ui_color = "#ffe0b2"

    def execute(self, context: Context) -> dict[str, Any]:
        from ctflow.core import steps

        reason = (context.get("params") or {}).get("reason") or ""
        return steps.rollback(
            self.spec, actor=_actor(context), reason=reason, run_key=self.run_key, tracking_uri=self.tracking_uri
        )


def _actor(context: Context) -> str:
    ti = context["ti"]
    return f"airflow:{ti.dag_id}/{ti.run_id}"


def _skip_on_refusal(result: dict[str, Any]) -> dict[str, Any]:
    """Turn a step's "nothing to do" answer into a skipped task that shows the reason."""
    if result.get("skipped"):
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(result["reason"])
    return result
