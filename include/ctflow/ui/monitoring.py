"""Read the latest monitoring window of a pipeline from MLflow, tolerant of how it was logged.

What the view reads (the monitoring DAG writes it; anything missing is shown as unknown):

* the run: the newest run tagged ``ctflow.stage`` = ``monitoring`` (or ``monitor``) in the
  pipeline's experiment ``ctflow/<pipeline>`` or in ``ctflow/<pipeline>/monitoring``;
* the window: tags ``ctflow.window_start``/``ctflow.window_end`` (else ``ctflow.as_of``);
* drift share: metric ``data_drift.drifted_share`` (or ``drift.drifted_share``, ``drifted_share``,
  ``drift_share``); drifted: metric ``data_drift.drifted`` (1/0), else share >= the spec's
  ``monitoring.drift.max_drifted_share``;
* performance: metric ``performance.<metric>`` (or ``<metric>``) of the spec's
  ``monitoring.performance.metric``, judged against its ``min``/``max``;
* breach: tag ``ctflow.breach`` (``true``/``false``) if present, else drift or performance;
* per-feature drift: artifact ``data_drift.json`` (or ``drift.json``, ``drift/data_drift.json``,
  ``monitoring/data_drift.json``) holding :meth:`ctflow.core.drift.DriftResult.to_dict`, else
  metrics ``data_drift.<column>.statistic|p_value|drifted``;
* the report: artifact ``report.html`` (or ``monitoring_report.html``, ``report/report.html``).
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)

STAGES = ("monitoring", "monitor")
SHARE_METRICS = ("data_drift.drifted_share", "drift.drifted_share", "drifted_share", "drift_share")
DRIFTED_METRICS = ("data_drift.drifted", "drift.drifted")
DRIFT_ARTIFACTS = ("data_drift.json", "drift.json", "drift/data_drift.json", "monitoring/data_drift.json")
REPORT_ARTIFACTS = ("report.html", "monitoring_report.html", "report/report.html")
_COLUMN_PREFIXES = ("data_drift.", "drift.")
_COLUMN_FIELDS = ("statistic", "p_value", "drifted", "score", "threshold")


def experiments(client: MlflowClient, pipeline: str) -> list[str]:
    ids = []
    for name in (f"ctflow/{pipeline}", f"ctflow/{pipeline}/monitoring"):
        found = client.get_experiment_by_name(name)
        if found is not None:
            ids.append(found.experiment_id)
    return ids


def latest_run(client: MlflowClient, pipeline: str):
    """The newest monitoring run of ``pipeline``, or None."""
    ids = experiments(client, pipeline)
    if not ids:
        return None
    runs = client.search_runs(
        ids,
        filter_string="tags.`ctflow.stage` LIKE 'monitor%'",
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    runs = [r for r in runs if r.data.tags.get("ctflow.stage") in STAGES]
    return runs[0] if runs else None


def summarize(client: MlflowClient, spec: PipelineSpec, run, *, with_columns: bool = False) -> dict[str, Any]:
    """The monitoring state the view shows; ``status`` is ``none`` (no run), ``ok`` or ``breach``."""
    if run is None:
        return {"status": "none", "message": "no monitoring yet"}
    metrics, tags = run.data.metrics, run.data.tags
    drift_cfg = spec.monitoring.drift
    share = _first(metrics, SHARE_METRICS)
    drifted_flag = _first(metrics, DRIFTED_METRICS)
    drift_breach = bool(drifted_flag) if drifted_flag is not None else (
        share is not None and share >= drift_cfg.max_drifted_share
    )
    performance = None
    if spec.monitoring.performance is not None:
        perf = spec.monitoring.performance
        value = _first(metrics, (f"performance.{perf.metric}", f"champion.{perf.metric}", perf.metric))
        breach = value is not None and (
            (perf.min is not None and value < perf.min) or (perf.max is not None and value > perf.max)
        )
        performance = {"metric": perf.metric, "value": value, "min": perf.min, "max": perf.max, "breach": breach}
    breach_tag = tags.get("ctflow.breach")
    if breach_tag is not None:
        breach = breach_tag.strip().lower() in ("true", "1", "yes")
    else:
        breach = drift_breach or bool(performance and performance["breach"])
    result = {
        "status": "breach" if breach else "ok",
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "at": _iso_ms(run.info.start_time),
        "window_start": tags.get("ctflow.window_start") or tags.get("ctflow.as_of"),
        "window_end": tags.get("ctflow.window_end") or tags.get("ctflow.as_of"),
        "drift_share": share,
        "max_drifted_share": drift_cfg.max_drifted_share,
        "drift_breach": drift_breach,
        "data_state": tags.get("ctflow.data_state"),  # drift, no_drift, insufficient_data (core.monitoring)
        "performance": performance,
        "report_path": None,
    }
    if with_columns:
        result["columns"] = drift_columns(client, run)
        result["report_path"] = _find_artifact(client, run.info.run_id, REPORT_ARTIFACTS)
    return result


def drift_columns(client: MlflowClient, run) -> list[dict[str, Any]]:
    """Per-feature drift of the run's window, most drifted first."""
    columns: list[dict[str, Any]] = []
    path = _find_artifact(client, run.info.run_id, DRIFT_ARTIFACTS)
    if path:
        try:
            data = _load_json_artifact(client, run.info.run_id, path)
            columns = [dict(c) for c in (data or {}).get("columns", []) if isinstance(c, dict) and c.get("column")]
        except Exception as err:  # unreadable artifact: fall back to metrics
            log.warning("cannot read %s of run %s: %s", path, run.info.run_id, err)
    if not columns:
        by_column: dict[str, dict[str, Any]] = {}
        for key, value in run.data.metrics.items():
            for prefix in _COLUMN_PREFIXES:
                if not key.startswith(prefix):
                    continue
                rest = key[len(prefix):]
                column, _, field = rest.rpartition(".")
                if column and field in _COLUMN_FIELDS:
                    by_column.setdefault(column, {"column": column})[field] = value
        columns = list(by_column.values())
        for c in columns:
            if "drifted" in c:
                c["drifted"] = bool(c["drifted"])
    for c in columns:
        for key in ("statistic", "p_value", "threshold", "score"):
            if isinstance(c.get(key), float) and math.isnan(c[key]):
                c[key] = None
    columns.sort(key=lambda c: (not c.get("drifted"), c.get("p_value") if c.get("p_value") is not None else 1.0,
                                -(c.get("statistic") or 0.0)))
    return columns


def _first(metrics: dict[str, float], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if key in metrics and metrics[key] is not None and not math.isnan(metrics[key]):
            return float(metrics[key])
    return None


def _find_artifact(client: MlflowClient, run_id: str, candidates: tuple[str, ...]) -> str | None:
    folders: dict[str, set[str]] = {}
    for path in candidates:
        folder = path.rpartition("/")[0]
        if folder not in folders:
            try:
                folders[folder] = {f.path for f in client.list_artifacts(run_id, folder or None)}
            except Exception:  # no artifact store reachable
                folders[folder] = set()
        if path in folders[folder]:
            return path
    return None


def _load_json_artifact(client: MlflowClient, run_id: str, path: str) -> Any:
    import tempfile

    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=client.tracking_uri)
        with open(local, encoding="utf-8") as f:
            return json.load(f)


def _iso_ms(ms: int | None) -> str | None:
    if not ms:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")
