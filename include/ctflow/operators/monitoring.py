"""Operators of the monitoring DAG: batch scoring, drift, performance, report, actions.

Thin adapters over :mod:`ctflow.core.monitoring`: each names its step (:mod:`ctflow.steps.monitor`),
whose run context (as_of, the run folder, MLflow/Feast/predictions-store locations from Airflow
connections) :meth:`CtflowOperator.execute` resolves before calling it. Full results go to the
run folder; XCom gets small dicts.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from ctflow.operators.base import CtflowOperator, announce_promotion
from ctflow.steps import monitor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ctflow.hooks.predictions import PredictionsStoreHook


class MonitoringOperator(CtflowOperator):
    """
    Base of the monitoring operators.

    :param predictions_conn_id: Airflow connection of the predictions store (SQLAlchemy-reachable
        database, e.g. PostgreSQL). Without it: ``$CTFLOW_PREDICTIONS_URL``, else SQLite
        ``predictions.db`` under ``$CTFLOW_HOME``.
    """

    def __init__(self, *, predictions_conn_id: str = "ctflow_predictions", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.predictions_conn_id = predictions_conn_id

    @cached_property
    def predictions_hook(self) -> PredictionsStoreHook:
        from ctflow.hooks.predictions import PredictionsStoreHook

        return PredictionsStoreHook(predictions_conn_id=self.predictions_conn_id)

    def predictions_url(self) -> str | None:
        """The store's SQLAlchemy URL from the connection; None: the environment's or the default
        (:class:`~ctflow.core.predictions.PredictionStore` resolves it where it runs)."""
        return self.predictions_hook.connection_url()

    @staticmethod
    def dry_run(context: Context) -> bool:
        return bool((context.get("params") or {}).get("dry_run", False))


class ScoreBatchOperator(MonitoringOperator):
    """
    Score the monitoring window's rows with the champion (and, for shadow/canary, the challenger).

    The window is ``[as_of - monitoring.window, as_of)``; features come from Feast point in time.
    Predictions replace the window's rows in the predictions store in one transaction, so a
    re-run never duplicates them. Skips, with the reason, when there is no champion yet.
    """

    declaration = monitor.SCORE_BATCH
    ui_color = "#e3f2fd"


class DataDriftOperator(MonitoringOperator):
    """Per-feature drift of the window against the champion's reference profile (spec's ``monitoring.drift``)."""

    declaration = monitor.DATA_DRIFT
    ui_color = "#fff3e0"


class PredictionDriftOperator(MonitoringOperator):
    """Drift of the window's scores against the champion's training-time (holdout) scores."""

    declaration = monitor.PREDICTION_DRIFT
    ui_color = "#fff3e0"


class PerformanceOperator(MonitoringOperator):
    """
    The spec's metric on the ground-truth window ``[as_of - available_after - window,
    as_of - available_after)`` (its rows whose label is known at ``as_of``: ``data.label``),
    for the champion and the challenger on the same rows.

    With shadow/canary, records the window's result and the per-row loss differences; when
    ``registry.challenger_test`` decides (by default a sequential test over all the pair's
    windows), the challenger becomes champion (compare-and-set, alias history) or is retired. ``params.dry_run`` leaves the registry alone. When the task has an
    :class:`~airflow.sdk.AssetAlias` outlet, a promotion emits ``promoted_uri`` through it.

    :param promoted_uri: asset URI announcing a new champion (``ctflow://<pipeline>/promoted``).
    """

    declaration = monitor.PERFORMANCE
    ui_color = "#fce4ec"

    def __init__(self, *, promoted_uri: str | None = None, promoted_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.promoted_uri = promoted_uri
        self.promoted_name = promoted_name

    def execute(self, context: Context) -> dict[str, Any]:
        result = self.run_declared(context).to_xcom()
        decision = result.get("decision") or {}
        if decision.get("action") == "promote" and decision.get("applied") and self.promoted_uri:
            self._announce_promotion(context, decision)
        return result

    def _announce_promotion(self, context: Context, decision: dict[str, Any]) -> None:
        if self.promoted_uri is None:  # strategy direct: no promotion outlet to announce through
            return
        change = decision.get("change") or {}
        announce_promotion(self, context, uri=self.promoted_uri, name=self.promoted_name,
                           extra={"version": change.get("version"), "previous": change.get("previous"),
                                  "reason": decision.get("reason"), "by": "monitoring"})


class MonitoringReportOperator(MonitoringOperator):
    """HTML report and PNG plots of the window in an MLflow monitoring run; the summary to XCom and the log."""

    declaration = monitor.REPORT
    ui_color = "#ede7f6"

    def execute(self, context: Context) -> dict[str, Any]:
        summary = self.run_declared(context).to_xcom()
        return {k: v for k, v in summary.items() if k != "report"}


class ActOnBreachOperator(MonitoringOperator):
    """
    Alert and emit the breach Asset event (which retrains) when a threshold is crossed.

    Alerts (spec's ``monitoring.alerts``) go through :class:`ctflow.notifiers.CtflowAlertNotifier`;
    a webhook that is down is reported, never fatal. The outlet (``ctflow://<pipeline>/breach``)
    gets an event only when there is a breach whose kind is in ``schedule.retrain_on`` and this is
    not a dry run; otherwise the task is skipped with the reason (Airflow emits outlet events
    for every successful task, so skipping is how a task declines to emit). It also runs when
    scoring was skipped for want of a champion: with ``no_champion`` in ``retrain_on`` it then
    emits the event (kind ``no_champion``, no alert), so a cold start retrains as data arrives.
    With ``schedule.retrain_cooldown``, a breach soon after the newest training (MLflow's
    candidate runs) is alerted but emits nothing.

    :param webhook_attempts: tries per webhook; :param webhook_timeout: seconds per try.
    """

    declaration = monitor.ACT_ON_BREACH
    ui_color = "#ffebee"

    def __init__(self, *, webhook_attempts: int = 3, webhook_timeout: float = 3.0, webhook_backoff: float = 0.5,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook_attempts = webhook_attempts
        self.webhook_timeout = webhook_timeout
        self.webhook_backoff = webhook_backoff

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from ctflow.core import monitoring
        from ctflow.notifiers import CtflowAlertNotifier

        run_dir = self.run_dir()
        last_trained = None
        if self.spec.schedule.retrain_cooldown is not None:
            from ctflow.core import tracking

            last_trained = tracking.latest_training_as_of(tracking.client(self.tracking_uri), self.spec.pipeline)
        decision = monitoring.actions(self.spec, run_dir=run_dir, dry_run=self.dry_run(context),
                                      last_trained=last_trained)
        ti = context["ti"]
        if decision["alert"]:
            summary = monitoring.read_result(run_dir / monitoring.REPORT)
            notifier = CtflowAlertNotifier(
                alerts=self.spec.monitoring.alerts,
                payload=monitoring.alert_payload(summary, dag_id=ti.dag_id, run_id=ti.run_id),
                attempts=self.webhook_attempts, timeout=self.webhook_timeout, backoff=self.webhook_backoff,
            )
            notifier(context)
            decision["deliveries"] = notifier.deliveries
            failed = [d for d in notifier.deliveries if not d["ok"]]
            if failed:
                decision["undelivered"] = len(failed)
        self.log.info("breach actions: %s", decision["reason"])
        if not decision["emit"]:
            ti.xcom_push(key="actions", value=decision)
            raise AirflowSkipException(decision["reason"])
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra.update({
                "pipeline": self.spec.pipeline, "kinds": decision["retrain_kinds"],
                "window_start": decision["window_start"], "window_end": decision["window_end"],
                "champion_version": decision["champion_version"], "mlflow_run_id": decision["mlflow_run_id"],
            })
        return decision

