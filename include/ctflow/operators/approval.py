"""The human approval step of ``approval: manual`` pipelines: Airflow's approval, recorded in the registry.

The task waits in Airflow's *Required actions* (the ``awaiting_input`` state). Approve lets
``promotion.promote`` run; reject skips it. Either way the decision, who made it and why are
recorded on the registered model version (tags ``ctflow.approval*``) and on the candidate's
MLflow run, through :class:`ctflow.core.registry.ModelRegistry`, so the registry tells why a
passing candidate never became champion. The form the reviewer sees is built by
:func:`ctflow.factory.approval.approval_task`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator as _AirflowApprovalOperator

from ctflow.contract import mlflow_tags, tasks

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ctflow.spec import PipelineSpec

#: The response form's one field: why.
NOTE_PARAM = "note"


class ApprovalOperator(_AirflowApprovalOperator):
    """
    Airflow's ``ApprovalOperator`` that also records the decision in the MLflow registry.

    The response form has one optional field, ``note`` (why). On approve, downstream
    ``promote`` runs; on reject it is skipped. The decision, the responding user, the time and
    the note are written as tags on the version registered by ``promotion.register`` and on its
    MLflow run. Recording failures are logged, never turn a human decision into a failed task.

    :param spec: the pipeline spec (model name, MLflow connection).
    :param mlflow_conn_id: Airflow connection of the MLflow tracking server/registry.
    """

    ui_color = "#fff9c4"

    def __init__(self, *, spec: PipelineSpec, mlflow_conn_id: str = "ctflow_mlflow", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = spec.model_name
        self.mlflow_conn_id = mlflow_conn_id

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        try:
            result = super().execute_complete(context, event)
        except DownstreamTasksSkipped:
            # On Reject, Airflow's operator skips promote by raising: record the decision first, or
            # the registry would never say why a passing candidate did not become champion.
            self._record_decision(context, event)
            raise
        self._record_decision(context, result)
        return result

    def _record_decision(self, context: Context, response: Any) -> None:
        """Log and record the human's response (the trigger's event, or Airflow's payload built from it)."""
        chosen = (response.get("chosen_options") or [None])[0]
        decision = "approved" if chosen == self.APPROVE else "rejected"
        note = str((response.get("params_input") or {}).get(NOTE_PARAM) or "").strip()
        user = response.get("responded_by_user") or {}
        by = (user.get("name") or user.get("id") or "unknown") if isinstance(user, dict) else str(user)
        at = response.get("responded_at")
        self.log.info("%s by %s%s", decision.capitalize(), by, f": {note}" if note else " (no note)")
        try:
            self._record(context, decision=decision, by=by, at=str(at) if at else "", note=note)
        except Exception:  # the human decision stands even if MLflow is unreachable (logged with its trace)
            self.log.exception("Could not record the %s decision in MLflow", decision)

    def _record(self, context: Context, *, decision: str, by: str, at: str, note: str) -> None:
        from ctflow.core.registry import ModelRegistry
        from ctflow.hooks.mlflow import MlflowHook

        registered = context["ti"].xcom_pull(task_ids=tasks.REGISTER) or {}
        tags = {mlflow_tags.APPROVAL: decision, mlflow_tags.APPROVAL_BY: by, mlflow_tags.APPROVAL_AT: at,
                mlflow_tags.APPROVAL_NOTE: note[:4000]}
        registry = ModelRegistry(self.model_name, tracking_uri=MlflowHook(mlflow_conn_id=self.mlflow_conn_id).tracking_uri())
        if registered.get("version") is not None:
            registry.tag_version(registered["version"], tags, run_id=registered.get("run_id"))
        self.log.info("Recorded %s on %s version %s", decision, self.model_name, registered.get("version"))
