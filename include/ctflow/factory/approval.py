"""The human approval step of ``approval: manual`` pipelines.

The task waits in Airflow's *Required actions* (Airflow 3.3: the ``awaiting_input`` state) with
the candidate's metrics next to the champion's, read from the ``training.evaluate`` XCom. Approve
lets ``promotion.promote`` run; reject skips it. Either way the decision, who made it and why are
recorded on the registered model version (tags ``ctflow.approval*``) and on the candidate's
MLflow run, so the registry tells why a passing candidate never became champion.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator as _AirflowApprovalOperator
from airflow.sdk import Param
from ctflow.contract import mlflow_tags, tasks

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)

NOTE_PARAM = "note"


_BODY = """\
**Candidate for `{model}`** from run `{{{{ run_id }}}}`{{% set reg = ti.xcom_pull(task_ids='{register}') or {{}} %}}\
{{% if reg.get('version') %}} — registered as **version {{{{ reg.get('version') }}}}**{{% endif %}}

{{% set gate = ti.xcom_pull(task_ids='{evaluate}') or {{}} %}}{{% set champ = gate.get('champion') or {{}} %}}\
{{% set primary = gate.get('metric', '{metric}') %}}
| metric | candidate | champion{{% if gate.get('champion_version') %}} (v{{{{ gate.get('champion_version') }}}}){{% endif %}} | difference |
|---|---:|---:|---:|
{{% for name, value in (gate.get('candidate') or {{}}).items() | sort %}}\
| {{% if name == primary %}}**{{{{ name }}}}** (primary){{% else %}}{{{{ name }}}}{{% endif %}} \
| {{{{ '%.4f' % value }}}} \
| {{{{ '%.4f' % champ.get(name) if champ.get(name) is not none else '—' }}}} \
| {{{{ '%+.4f' % (value - champ.get(name)) if champ.get(name) is not none else '—' }}}} |
{{% endfor %}}
{{% if not champ %}}_No champion yet: approving makes this candidate the first one._{{% endif %}}

Gate: **{{{{ gate.get('decision', 'unknown') }}}}** — {{{{ gate.get('reason', '') }}}}

**Approve** to promote it (strategy `{strategy}`); **Reject** to keep the current champion. \
Either way your decision and note are recorded on the model version in MLflow.
"""


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
        result = super().execute_complete(context, event)
        chosen = (result.get("chosen_options") or [None])[0]
        decision = "approved" if chosen == self.APPROVE else "rejected"
        note = str((result.get("params_input") or {}).get(NOTE_PARAM) or "").strip()
        user = result.get("responded_by_user") or {}
        by = (user.get("name") or user.get("id") or "unknown") if isinstance(user, dict) else str(user)
        at = result.get("responded_at")
        self.log.info("%s by %s%s", decision.capitalize(), by, f": {note}" if note else " (no note)")
        try:
            self._record(context, decision=decision, by=by, at=str(at) if at else "", note=note)
        except Exception:  # the human decision stands even if MLflow is unreachable
            self.log.exception("Could not record the %s decision in MLflow", decision)
        return result

    def _record(self, context: Context, *, decision: str, by: str, at: str, note: str) -> None:
        from mlflow import MlflowClient

        from ctflow.hooks.mlflow import MlflowHook

        registered = context["ti"].xcom_pull(task_ids=tasks.REGISTER) or {}
        tags = {mlflow_tags.APPROVAL: decision, mlflow_tags.APPROVAL_BY: by, mlflow_tags.APPROVAL_AT: at, mlflow_tags.APPROVAL_NOTE: note[:4000]}
        uri = MlflowHook(mlflow_conn_id=self.mlflow_conn_id).tracking_uri()
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if registered.get("version") is not None:
            for key, value in tags.items():
                client.set_model_version_tag(self.model_name, str(registered["version"]), key, value)
        if registered.get("run_id"):
            for key, value in tags.items():
                client.set_tag(registered["run_id"], key, value)
        self.log.info("Recorded %s on %s version %s", decision, self.model_name, registered.get("version"))


def approval_task(spec: PipelineSpec) -> ApprovalOperator:
    """An :class:`ApprovalOperator` showing the candidate's metrics against the champion's."""
    return ApprovalOperator(
        task_id=tasks.local_id(tasks.APPROVE),
        spec=spec,
        subject=f"Promote a new {spec.model_name} model?",
        body=_BODY.format(
            model=spec.model_name,
            strategy=spec.registry.strategy,
            metric=spec.evaluation.metric,
            evaluate=tasks.EVALUATE,
            register=tasks.REGISTER,
        ),
        params={
            NOTE_PARAM: Param(
                None,
                type=["null", "string"],
                maxLength=2000,
                title="Note",
                description="Why you approve or reject (recorded on the model version in MLflow).",
            ),
        },
        execution_timeout=None,
        retries=0,
    )
