"""The human approval step of ``approval: manual`` pipelines: its task and the form the reviewer sees.

The operator is :class:`ctflow.operators.approval.ApprovalOperator`.

The task waits in Airflow's *Required actions* (Airflow 3.3: the ``awaiting_input`` state) with
the candidate's metrics next to the champion's, read from the ``training.evaluate`` XCom. Approve
lets ``promotion.promote`` run; reject skips it. Either way the decision, who made it and why are
recorded on the registered model version (tags ``ctflow.approval*``) and on the candidate's
MLflow run, so the registry tells why a passing candidate never became champion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Param

from ctflow.contract import tasks
from ctflow.operators.approval import NOTE_PARAM, ApprovalOperator

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec

__all__ = ["NOTE_PARAM", "ApprovalOperator", "approval_task"]


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
