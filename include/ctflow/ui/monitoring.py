"""Read a pipeline's monitoring windows from MLflow, as the monitoring step wrote them: the latest
one in full, and the last few as a trend (:func:`recent_windows`).

Every name read here (tags, metrics, artifacts) comes from :mod:`ctflow.contract.monitoring`,
which the writer (:func:`ctflow.core.monitoring.report`) uses too:

* the run: the newest run tagged ``ctflow.stage`` = ``monitoring`` in ``ctflow/<pipeline>``;
* the verdict: the ``ctflow.breach`` tag (``none`` or the breach kinds, ``drift``/``performance``),
  which is the monitoring step's own decision; the reasons from the run's ``summary.json``;
* drift share: metric ``data_drift.share``, against the spec's ``max_drifted_share``;
* performance: metric ``performance.champion.<metric>`` against the spec's floor/ceiling;
* per-feature drift: artifact ``results/data_drift.json`` (the data-drift step's result);
* the report: artifact ``report/report.html``.

A run with no ``ctflow.breach`` tag (written by something else) is judged from its metrics.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC
from typing import TYPE_CHECKING, Any

from ctflow.contract import monitoring as names

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


def experiments(client: MlflowClient, pipeline: str) -> list[str]:
    found = client.get_experiment_by_name(f"ctflow/{pipeline}")
    return [found.experiment_id] if found is not None else []


#: How many of the newest monitoring windows the pipeline page's trend shows.
TREND_WINDOWS = 12


def latest_run(client: MlflowClient, pipeline: str) -> Run | None:
    """The newest monitoring run of ``pipeline``, or None."""
    runs = _newest_runs(client, pipeline, 1)
    return runs[0] if runs else None


def recent_windows(client: MlflowClient, spec: PipelineSpec, limit: int = TREND_WINDOWS) -> list[dict[str, Any]]:
    """The newest ``limit`` monitoring runs, each as :func:`summarize` reads it, in data order
    (by window end, oldest first): the trend the pipeline page draws."""
    windows = [summarize(client, spec, run) for run in _newest_runs(client, spec.pipeline, limit)]
    return sorted(windows, key=lambda w: (w["window_end"] or "", w["at"] or ""))


def _newest_runs(client: MlflowClient, pipeline: str, limit: int) -> list[Run]:
    ids = experiments(client, pipeline)
    if not ids:
        return []
    return client.search_runs(
        ids,
        filter_string=f"tags.`ctflow.stage` = '{names.STAGE}'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )


def summarize(client: MlflowClient, spec: PipelineSpec, run: Run | None, *, with_columns: bool = False) -> dict[str, Any]:
    """The monitoring state the view shows; ``status`` is ``none`` (no run), ``ok``, ``breach`` or
    ``insufficient_data`` (too few rows or usable values to judge the window).

    With ``with_columns``, also the per-feature drift, the breaches' reasons and the report's path
    (these read artifacts, so the overview leaves them out).
    """
    if run is None:
        return {"status": "none", "message": "no monitoring yet"}
    metrics, tags = run.data.metrics, run.data.tags
    drift_cfg = spec.monitoring.drift
    share = _metric(metrics, names.DRIFT_SHARE_METRIC)
    performance = None
    if spec.monitoring.performance is not None:
        perf = spec.monitoring.performance
        value = _metric(metrics, names.performance_metric("champion", perf.metric))
        below = value is not None and perf.min is not None and value < perf.min
        above = value is not None and perf.max is not None and value > perf.max
        performance = {"metric": perf.metric, "value": value, "min": perf.min, "max": perf.max,
                       "breach": bool(below or above),
                       "estimated": _metric(metrics, names.estimated_performance_metric(perf.metric))}
    kinds = names.breach_kinds(tags.get(names.BREACH_TAG))
    if kinds is None:  # not written by the monitoring step: judge from the metrics
        kinds = (["drift"] if share is not None and share >= drift_cfg.max_drifted_share else []) + (
            ["performance"] if performance and performance["breach"] else [])
    acting = [k for k in kinds if k != names.INSUFFICIENT_KIND]
    # A window too thin to judge is its own state, never "ok": it is alerted, not retrained.
    status = "breach" if acting else names.INSUFFICIENT_KIND if kinds else "ok"
    result = {
        "status": status,
        "breach_kinds": kinds,
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "at": _iso_ms(run.info.start_time),
        "window_start": tags.get(names.WINDOW_START_TAG) or tags.get(names.AS_OF_TAG),
        "window_end": tags.get(names.WINDOW_END_TAG) or tags.get(names.AS_OF_TAG),
        "champion_version": tags.get(names.CHAMPION_VERSION_TAG),
        "drift_share": share,
        "max_drifted_share": drift_cfg.max_drifted_share,
        # A drift breach is data or prediction drift: the share alone can be under its limit.
        "drift_breach": "drift" in kinds,
        "data_state": tags.get(names.DATA_STATE_TAG),  # drift, no_drift, insufficient_data, unavailable
        "performance": performance,
        "report_path": None,
    }
    if with_columns:
        listed = _artifacts(client, run.info.run_id)
        result["columns"] = drift_columns(client, run, listed=listed)
        result["report_path"] = names.REPORT_ARTIFACT if names.REPORT_ARTIFACT in listed else None
        summary = _json_artifact(client, run, names.SUMMARY_ARTIFACT, listed) or {}
        result["breaches"] = [b for b in summary.get("breaches", []) if isinstance(b, dict)]
    return result


def drift_columns(client: MlflowClient, run: Run, *, listed: set[str] | None = None) -> list[dict[str, Any]]:
    """Per-feature drift of the run's window, most drifted first."""
    listed = _artifacts(client, run.info.run_id) if listed is None else listed
    data = _json_artifact(client, run, names.DATA_DRIFT_ARTIFACT, listed) or {}
    columns = [dict(c) for c in data.get("columns", []) if isinstance(c, dict) and c.get("column")]
    for c in columns:
        for key in ("statistic", "p_value", "threshold", "score"):
            if isinstance(c.get(key), float) and not math.isfinite(c[key]):
                c[key] = None
    columns.sort(key=lambda c: (not c.get("drifted"), c.get("p_value") if c.get("p_value") is not None else 1.0,
                                -(c.get("statistic") or 0.0)))
    return columns


def _metric(metrics: dict[str, float], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if value is not None and math.isfinite(value) else None


def _artifacts(client: MlflowClient, run_id: str) -> set[str]:
    """The paths of the artifacts this reader looks for that the run has."""
    folders = {path.rpartition("/")[0] for path in
               (names.SUMMARY_ARTIFACT, names.DATA_DRIFT_ARTIFACT, names.REPORT_ARTIFACT)}
    found: set[str] = set()
    for folder in folders:
        try:
            found |= {f.path for f in client.list_artifacts(run_id, folder or None)}
        except Exception as err:  # no artifact store reachable: show what the metrics say
            log.warning("cannot list the artifacts of run %s: %s", run_id, err)
    return found


def _json_artifact(client: MlflowClient, run: Run, path: str, listed: set[str]) -> Any:
    if path not in listed:
        return None
    import tempfile

    from mlflow.artifacts import download_artifacts

    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = download_artifacts(run_id=run.info.run_id, artifact_path=path, dst_path=tmp,
                                       tracking_uri=client.tracking_uri)
            with open(local, encoding="utf-8") as f:
                return json.load(f)
    except Exception as err:  # an unreadable artifact: the view shows the rest
        log.warning("cannot read %s of run %s: %s", path, run.info.run_id, err)
        return None


def _iso_ms(ms: int | None) -> str | None:
    if not ms:
        return None
    from datetime import datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")
