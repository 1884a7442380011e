"""Airflow operators of ctflow. Thin adapters: the work is done by :mod:`ctflow.core`."""

from ctflow.operators.base import CtflowOperator
from ctflow.operators.monitoring import (
    ActOnBreachOperator,
    DataDriftOperator,
    MonitoringReportOperator,
    PerformanceOperator,
    PredictionDriftOperator,
    ScoreBatchOperator,
)
from ctflow.operators.promotion import (
    ChooseActionOperator,
    PromoteModelOperator,
    RegisterModelOperator,
    RollbackModelOperator,
)
from ctflow.operators.training import (
    DataQualityOperator,
    EvaluateGateOperator,
    FetchFeaturesOperator,
    TrainModelOperator,
)

__all__ = [
    "ActOnBreachOperator",
    "ChooseActionOperator",
    "CtflowOperator",
    "DataDriftOperator",
    "DataQualityOperator",
    "EvaluateGateOperator",
    "FetchFeaturesOperator",
    "MonitoringReportOperator",
    "PerformanceOperator",
    "PredictionDriftOperator",
    "PromoteModelOperator",
    "RegisterModelOperator",
    "RollbackModelOperator",
    "ScoreBatchOperator",
    "TrainModelOperator",
]
