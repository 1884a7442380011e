"""The steps of the monitoring DAG ``monitor_<pipeline>``, in order."""

from __future__ import annotations

from ctflow.contract import tasks
from ctflow.steps.online import MATERIALIZE
from ctflow.steps.protocol import StepDeclaration

_MONITORING = "ctflow.core.monitoring"

SCORE_BATCH = StepDeclaration(
    name="score_batch",
    function=f"{_MONITORING}:score_batch",
    needs=frozenset({"as_of", "run_dir", "run_key", "tracking_uri", "feature_repo", "predictions_url"}),
    task_id=tasks.SCORE_BATCH,
)
DATA_DRIFT = StepDeclaration(
    name="data_drift",
    function=f"{_MONITORING}:data_drift",
    needs=frozenset({"run_dir", "tracking_uri"}),
    task_id=tasks.DATA_DRIFT,
)
PREDICTION_DRIFT = StepDeclaration(
    name="prediction_drift",
    function=f"{_MONITORING}:prediction_drift",
    needs=frozenset({"run_dir", "tracking_uri"}),
    task_id=tasks.PREDICTION_DRIFT,
)
PERFORMANCE = StepDeclaration(
    name="performance",
    function=f"{_MONITORING}:performance",
    needs=frozenset({"as_of", "run_dir", "actor", "run_key", "tracking_uri", "feature_repo", "predictions_url",
                     "dry_run"}),
    task_id=tasks.PERFORMANCE,
)
REPORT = StepDeclaration(
    name="report",
    function=f"{_MONITORING}:report",
    needs=frozenset({"run_dir", "run_key", "tracking_uri", "predictions_url", "lineage"}),
    task_id=tasks.REPORT,
)
#: Its operator adds alerts and the breach event around the core's decision.
ACT_ON_BREACH = StepDeclaration(
    name="act_on_breach",
    function=f"{_MONITORING}:actions",
    needs=frozenset({"run_dir", "dry_run"}),
    task_id=tasks.ACT_ON_BREACH,
)

STEPS: dict[str, StepDeclaration] = {
    step.name: step for step in (MATERIALIZE, SCORE_BATCH, DATA_DRIFT, PREDICTION_DRIFT, PERFORMANCE, REPORT, ACT_ON_BREACH)
}
