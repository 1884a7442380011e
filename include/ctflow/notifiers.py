"""Airflow notifiers of ctflow: monitoring alerts to the task log and to HTTP webhooks.

A spec's ``monitoring.alerts`` lists targets: ``log``, or ``{webhook: CONN_ID}`` naming an Airflow
connection of the endpoint (never a URL with secrets in the spec); how a connection makes a URL
and headers is :class:`ctflow.hooks.webhook.WebhookHook`'s business.

Delivery is bounded (``attempts`` tries with a short ``timeout``): a webhook that is down is
reported (:attr:`CtflowAlertNotifier.deliveries`, the log) and **never raises**, so an alert
cannot fail a monitoring run. Usable as a task or DAG callback too (``on_failure_callback``):
without a payload it sends the context's DAG, run and task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseNotifier


class CtflowAlertNotifier(BaseNotifier):
    """
    Send a ctflow alert to the log and to webhook connections.

    :param alerts: targets, as in a spec's ``monitoring.alerts``: ``"log"`` or ``{"webhook": conn_id}``
        (a spec's ``WebhookAlert`` objects are accepted too).
    :param payload: the JSON document to send (default: built from the callback context).
    :param attempts: tries per webhook (bounded; connection errors, timeouts, 5xx, 408, 429 are retried).
    :param timeout: seconds per try.
    :param backoff: seconds before the second try, doubling after.
    """

    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        alerts: Sequence[Any] = ("log",),
        payload: dict[str, Any] | None = None,
        attempts: int = 3,
        timeout: float = 3.0,
        backoff: float = 0.5,
    ) -> None:
        super().__init__()
        self.alerts = list(alerts)
        self.payload = payload
        self.attempts = attempts
        self.timeout = timeout
        self.backoff = backoff
        self.deliveries: list[dict[str, Any]] = []

    def notify(self, context: Any) -> None:
        payload = self.payload or _context_payload(context)
        self.deliveries = []
        for target in self.alerts:
            conn_id = _webhook_conn_id(target)
            if conn_id is None:
                self.log.warning("ctflow alert: %s", payload.get("text") or payload)
                self.deliveries.append({"target": "log", "ok": True})
                continue
            self.deliveries.append(self._post(conn_id, payload))

    def _post(self, conn_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        from ctflow.core.monitoring import deliver_webhook

        try:
            url, headers = webhook_url(conn_id)
        except Exception as err:  # noqa: BLE001 - a missing or malformed connection is reported, not raised
            report = {"target": f"conn:{conn_id}", "ok": False, "attempts": 0, "error": f"{type(err).__name__}: {err}"}
            self.log.error("ctflow alert to webhook %s not sent: %s", conn_id, report["error"])
            return report
        report = {"conn_id": conn_id, **deliver_webhook(url, payload, attempts=self.attempts, timeout=self.timeout,
                                                        backoff=self.backoff, headers=headers)}
        if report["ok"]:
            self.log.info("ctflow alert delivered to webhook %s (%s, HTTP %s, %s attempt(s))", conn_id, report["target"],
                          report.get("status"), report["attempts"])
        else:
            self.log.error("ctflow alert to webhook %s (%s) failed after %s attempt(s): %s; the monitoring run goes on",
                           conn_id, report["target"], report["attempts"], report.get("error"))
        return report


def webhook_url(conn_id: str) -> tuple[str, dict[str, str]]:
    """The URL and extra headers of webhook connection ``conn_id`` (:class:`ctflow.hooks.webhook.WebhookHook`)."""
    from ctflow.hooks.webhook import WebhookHook

    return WebhookHook(webhook_conn_id=conn_id).endpoint()


def _webhook_conn_id(target: Any) -> str | None:
    if target == "log" or target is None:
        return None
    if isinstance(target, dict):
        return target.get("webhook")
    return getattr(target, "webhook", None)


def _context_payload(context: Any) -> dict[str, Any]:
    """A payload for callback use: which DAG, run and task, and the exception if any."""
    ti = context.get("ti") or context.get("task_instance")
    exception = context.get("exception")
    dag = context.get("dag")
    return {
        "source": "ctflow",
        "event": "callback",
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None),
        "run_id": getattr(ti, "run_id", None) or context.get("run_id"),
        "task_id": getattr(ti, "task_id", None),
        "exception": None if exception is None else f"{type(exception).__name__}: {exception}",
        "text": f"ctflow: {getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')} "
                + ("failed" if exception else "notification"),
    }


__all__ = ["CtflowAlertNotifier", "webhook_url"]
