"""Operators that move models through the MLflow registry: register, promote, roll back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseBranchOperator

from ctflow.contract.results import AliasMove
from ctflow.links import ModelVersionLink
from ctflow.operators.base import CtflowOperator, announce_promotion
from ctflow.steps import ct

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

    declaration = ct.REGISTER
    ui_color = "#e0f2f1"
    operator_extra_links = (ModelVersionLink(),)


class PromoteModelOperator(CtflowOperator):
    """
    Point the spec's alias at the registered version: ``champion`` for strategy ``direct``,
    ``challenger`` for ``shadow``/``canary``. Serialized with concurrent runs: if another run
    moved the champion since this candidate was gated, it must beat that one too.

    When the task has an :class:`~airflow.sdk.AssetAlias` outlet, a move of ``champion`` emits
    ``promoted_uri`` through it; a lost compare-and-set emits nothing (a plain outlet would emit
    on every success).

    :param promoted_uri: asset URI announcing a new champion (``ctflow://<pipeline>/promoted``).
    :param promoted_name: that asset's name.
    """

    declaration = ct.PROMOTE
    ui_color = "#c8e6c9"

    def __init__(self, *, promoted_uri: str | None = None, promoted_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.promoted_uri = promoted_uri
        self.promoted_name = promoted_name

    def execute(self, context: Context) -> dict[str, Any]:
        move = self.run_declared(context)
        if isinstance(move, AliasMove) and move.moved and move.alias == "champion" and self.promoted_uri:
            announce_promotion(self, context, uri=self.promoted_uri, name=self.promoted_name,
                               extra={"version": move.version, "previous": move.previous, "reason": move.reason,
                                      "by": "ct"})
        return move.to_xcom()


class RollbackModelOperator(CtflowOperator):
    """Move ``champion`` back to its previous holder, recording who and why (``params.reason``)."""

    declaration = ct.ROLLBACK
    ui_color = "#ffe0b2"
