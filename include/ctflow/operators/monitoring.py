"""Operators of the monitoring DAG: batch scoring, drift, performance, report, actions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctflow.operators.base import CtflowOperator, not_built_yet

if TYPE_CHECKING:
    from airflow.sdk import Context


class ScoreBatchOperator(CtflowOperator):
    """Score the monitoring window's rows with the champion (and challenger), idempotently per window."""

    ui_color = "#e3f2fd"

    def execute(self, context: Context) -> dict[str, Any]:
        raise not_built_yet("Batch scoring (monitoring issue)")


class DataDriftOperator(CtflowOperator):
    """Per-feature drift of the window against the champion's reference profile."""

    ui_color = "#fff3e0"

    def execute(self, context: Context) -> dict[str, Any]:
        raise not_built_yet("Data drift monitoring (monitoring issue)")


class PredictionDriftOperator(CtflowOperator):
    """Drift of the score distribution against the training-time predictions."""

    ui_color = "#fff3e0"

    def execute(self, context: Context) -> dict[str, Any]:
        raise not_built_yet("Prediction drift monitoring (monitoring issue)")


class PerformanceOperator(CtflowOperator):
    """The spec's metric once ground truth has arrived, for champion and challenger."""

    ui_color = "#fce4ec"

    def execute(self, context: Context) -> dict[str, Any]:
        raise not_built_yet("Performance monitoring (monitoring issue)")


class MonitoringReportOperator(CtflowOperator):
    """HTML report and plots of the window, logged to an MLflow monitoring run."""

    ui_color = "#ede7f6"

    def execute(self, context: Context) -> dict[str, Any]:
        raise not_built_yet("Monitoring report (monitoring issue)")


class ActOnBreachOperator(CtflowOperator):
    """Alert and emit the breach Asset event (which retrains) when a threshold is crossed."""

    ui_color = "#ffebee"

    def execute(self, context: Context) -> dict[str, Any]:
        raise not_built_yet("Breach actions (monitoring issue)")
