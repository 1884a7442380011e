"""Monitoring alerts: the payload and text of a breach, and its delivery to a webhook."""

from __future__ import annotations

import time
from typing import Any


def alert_payload(summary: dict[str, Any], *, dag_id: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """The JSON an alert webhook receives: what breached, for which window and models."""
    return {
        "source": "ctflow",
        "event": "monitoring_breach",
        "pipeline": summary["pipeline"],
        "dag_id": dag_id,
        "run_id": run_id,
        "window_start": summary["window_start"],
        "window_end": summary["window_end"],
        "champion_version": summary["champion_version"],
        "challenger_version": summary.get("challenger_version"),
        "breaches": summary["breaches"],
        "performance": summary["performance"],
        "data_drift": {k: summary["data_drift"].get(k) for k in ("drifted", "drifted_share", "drifted_columns")},
        "prediction_drift": summary["prediction_drift"],
        "mlflow_run_id": summary.get("mlflow_run_id"),
        "text": alert_text(summary),
    }


def alert_text(summary: dict[str, Any]) -> str:
    kinds = ", ".join(sorted({b["kind"] for b in summary["breaches"]})) or "none"
    reasons = "; ".join(b["reason"] for b in summary["breaches"])
    return (f"ctflow {summary['pipeline']}: {kinds} breach in [{summary['window_start']}, {summary['window_end']}) "
            f"(champion v{summary['champion_version']}): {reasons}")


def deliver_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    attempts: int = 3,
    timeout: float = 3.0,
    backoff: float = 0.5,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST ``payload`` as JSON to ``url``: retried a bounded number of times, never raises.

    Retries connection errors, timeouts, 5xx, 408 and 429 (``backoff`` seconds, doubling);
    other 4xx are not retried. Returns ``{"target", "ok", "attempts", "status"|"error"}``;
    ``target`` is the URL without credentials or query (safe to log).
    """
    import requests

    target = redact_url(url)
    outcome: dict[str, Any] = {"target": target, "ok": False, "attempts": 0}
    for attempt in range(1, max(1, attempts) + 1):
        outcome["attempts"] = attempt
        try:
            response = requests.post(url, json=payload, timeout=timeout,
                                     headers={"User-Agent": "ctflow-monitoring", **(headers or {})})
        except requests.RequestException as err:
            outcome.update(error=f"{type(err).__name__}: {_short(err)}", status=None)
        else:
            outcome["status"] = response.status_code
            if response.status_code < 300:
                outcome.update(ok=True, error=None)
                return outcome
            outcome["error"] = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                return outcome  # the request itself is wrong: retrying will not help
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    return outcome


def redact_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _short(err: Exception, limit: int = 200) -> str:
    text = str(err)
    return text if len(text) <= limit else text[: limit - 3] + "..."
