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
from ctflow.operators.online import MaterializeOnlineOperator
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

#: The in-process operator of each of ctflow's steps, by step name (a deployment may replace one with a
#: subclass: :mod:`ctflow.extensions`).
OPERATORS: dict[str, type[CtflowOperator]] = {
    cls.declaration.name: cls
    for cls in (
        FetchFeaturesOperator, DataQualityOperator, TrainModelOperator, EvaluateGateOperator,
        RegisterModelOperator, PromoteModelOperator, RollbackModelOperator, MaterializeOnlineOperator,
        ScoreBatchOperator, DataDriftOperator, PredictionDriftOperator, PerformanceOperator,
        MonitoringReportOperator, ActOnBreachOperator,
    )
}

__all__ = [
    "OPERATORS",
    "ActOnBreachOperator",
    "ChooseActionOperator",
    "CtflowOperator",
    "DataDriftOperator",
    "DataQualityOperator",
    "EvaluateGateOperator",
    "FetchFeaturesOperator",
    "MaterializeOnlineOperator",
    "MonitoringReportOperator",
    "PerformanceOperator",
    "PredictionDriftOperator",
    "PromoteModelOperator",
    "RegisterModelOperator",
    "RollbackModelOperator",
    "ScoreBatchOperator",
    "TrainModelOperator",
]
