"""The steps of the continuous-training DAG ``ct_<pipeline>``, in order: the only list of them."""

from __future__ import annotations

from ctflow.contract import results, tasks
from ctflow.steps.online import MATERIALIZE
from ctflow.steps.protocol import StepDeclaration

_STEPS = "ctflow.core.steps"

FETCH_FEATURES = StepDeclaration(
    name="fetch_features",
    function=f"{_STEPS}:fetch_features",
    needs=frozenset({"as_of", "run_dir", "window_days", "feature_repo"}),
    container=True,
    task_id=tasks.FETCH_FEATURES,
    result=results.FeaturesFingerprint,
)
CHECK_QUALITY = StepDeclaration(
    name="check_quality",
    function=f"{_STEPS}:check_quality",
    needs=frozenset({"as_of", "run_dir"}),
    reads=(("frame.parquet", "fetch_features"), ("features.json", "fetch_features")),
    container=True,
    task_id=tasks.CHECK_DATA_QUALITY,
    result=results.QualityResult,
    refusal="ctflow.core.quality:DataQualityError",
)
TRAIN = StepDeclaration(
    name="train",
    function=f"{_STEPS}:train",
    needs=frozenset({"as_of", "run_dir", "run_key", "lineage", "tracking_uri", "spec_text"}),
    reads=(("frame.parquet", "fetch_features"), ("features.json", "fetch_features")),
    container=True,
    task_id=tasks.TRAIN,
    result=results.TrainResult,
)
EVALUATE = StepDeclaration(
    name="evaluate",
    function=f"{_STEPS}:evaluate",
    needs=frozenset({"run_dir", "tracking_uri"}),
    reads=(("train.json", "train"), ("holdout.parquet", "train")),
    container=True,
    task_id=tasks.EVALUATE,
    result=results.GateResult,
)
# Registration, promotion and rollback stay in the worker: quick registry calls that must answer
# "skipped" to Airflow, which a container's exit code cannot.
REGISTER = StepDeclaration(
    name="register",
    function=f"{_STEPS}:register",
    needs=frozenset({"run_dir", "run_key", "force", "reason", "dry_run", "tracking_uri"}),
    reads=(("gate.json", "evaluate"), ("train.json", "train")),
    task_id=tasks.REGISTER,
    result=results.RegisteredVersion,
)
PROMOTE = StepDeclaration(
    name="promote",
    function=f"{_STEPS}:promote",
    needs=frozenset({"run_dir", "actor", "run_key", "force", "reason", "tracking_uri"}),
    reads=(("gate.json", "evaluate"), ("register.json", "register")),
    task_id=tasks.PROMOTE,
    result=results.AliasMove,
)
ROLLBACK = StepDeclaration(
    name="rollback",
    function=f"{_STEPS}:rollback",
    needs=frozenset({"actor", "reason", "run_key", "tracking_uri"}),
    task_id=tasks.ROLLBACK,
    result=results.AliasMove,
    reason_required=True,
)

#: Every CT step by name, in run order.
STEPS: dict[str, StepDeclaration] = {
    step.name: step for step in (FETCH_FEATURES, CHECK_QUALITY, TRAIN, EVALUATE, REGISTER, PROMOTE, MATERIALIZE, ROLLBACK)
}
