"""The human approval step of ``approval: manual`` pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from ctflow.spec import PipelineSpec

_BODY = """\
**Candidate for `{model}`** from run `{{{{ run_id }}}}`

{{% set gate = ti.xcom_pull(task_ids='training.evaluate') or {{}} %}}
| metric | candidate | champion |
|---|---|---|
{{% for name, value in (gate.get('candidate') or {{}}).items() %}}| {{{{ name }}}} | {{{{ '%.4f' % value }}}} | {{{{ '%.4f' % (gate.get('champion') or {{}}).get(name) if (gate.get('champion') or {{}}).get(name) is not none else '—' }}}} |
{{% endfor %}}

Gate: **{{{{ gate.get('decision', 'unknown') }}}}** — {{{{ gate.get('reason', '') }}}}

Approve to promote with strategy `{strategy}`; reject to keep the current champion.
"""


def approval_task(spec: PipelineSpec) -> BaseOperator:
    """An ``ApprovalOperator`` showing the candidate's metrics against the champion's."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    return ApprovalOperator(
        task_id="approve",
        subject=f"Promote a new {spec.model_name} model?",
        body=_BODY.format(model=spec.model_name, strategy=spec.registry.strategy),
        execution_timeout=None,
        retries=0,
    )
