"""DAG ids and task ids: the factory builds them, the UI and the approval step read XComs by them."""

from __future__ import annotations

CT_PREFIX = "ct_"
MONITOR_PREFIX = "monitor_"


def ct_dag_id(pipeline: str) -> str:
    return f"{CT_PREFIX}{pipeline}"


def monitor_dag_id(pipeline: str) -> str:
    return f"{MONITOR_PREFIX}{pipeline}"


def is_ct_dag(dag_id: str) -> bool:
    return dag_id.startswith(CT_PREFIX)


def is_monitor_dag(dag_id: str) -> bool:
    return dag_id.startswith(MONITOR_PREFIX)


# --- ct_<pipeline> ---------------------------------------------------------------------------
TRAINING_GROUP = "training"
PROMOTION_GROUP = "promotion"
CHOOSE_ACTION = "choose_action"
FETCH_FEATURES = f"{TRAINING_GROUP}.fetch_features"
CHECK_DATA_QUALITY = f"{TRAINING_GROUP}.check_data_quality"
TRAIN = f"{TRAINING_GROUP}.train"
#: Its XCom is the gate decision with the candidate's and the champion's metrics.
EVALUATE = f"{TRAINING_GROUP}.evaluate"
REGISTER = f"{PROMOTION_GROUP}.register"
APPROVE = f"{PROMOTION_GROUP}.approve"
PROMOTE = f"{PROMOTION_GROUP}.promote"
ROLLBACK = "rollback"
#: In both DAGs: the feature service's views brought up to the run's as_of in the online store.
MATERIALIZE_ONLINE = "materialize_online"

# --- any ctflow task -------------------------------------------------------------------------
#: XCom key under which a ctflow task that fails for good (no retries) leaves why, for the view:
#: ``{"task_id", "kind", "message"}``, ``kind`` one of :data:`FINAL_ERROR_KINDS`. Airflow shows the
#: run only as failed; this says which table, column or setting to fix without opening task logs.
FINAL_ERROR_XCOM = "ctflow_final_error"
#: configuration: the spec or deployment (:class:`~ctflow.exceptions.ConfigurationError`); data: a
#: library refusing the same data on every try; refused: the step refused its input (a data-quality check).
FINAL_ERROR_KINDS = ("configuration", "data", "refused")

# --- monitor_<pipeline> ----------------------------------------------------------------------
SCORE_BATCH = "score_batch"
DATA_DRIFT = "data_drift"
PREDICTION_DRIFT = "prediction_drift"
PERFORMANCE = "performance"
REPORT = "report"
ACT_ON_BREACH = "act_on_breach"


def local_id(task_id: str) -> str:
    """The id inside its task group (``training.evaluate`` -> ``evaluate``)."""
    return task_id.rsplit(".", 1)[-1]
