"""The online-store step, shared by both DAGs: after the promotion in ``ct_<pipeline>``, and on the
monitoring schedule in ``monitor_<pipeline>``, so a served champion reads fresh online features."""

from __future__ import annotations

from ctflow.contract import tasks
from ctflow.steps.protocol import StepDeclaration

MATERIALIZE = StepDeclaration(
    name="materialize",
    function="ctflow.core.online:materialize",
    needs=frozenset({"as_of", "feature_repo", "dry_run"}),
    task_id=tasks.MATERIALIZE_ONLINE,
)
