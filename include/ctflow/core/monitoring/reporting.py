"""Monitoring step 5: the window's summary, logged with its report and plots to an MLflow monitoring run."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.contract import mlflow_tags
from ctflow.contract import monitoring as names
from ctflow.core.drift.sufficiency import INSUFFICIENT_DATA
from ctflow.core.monitoring.files import (
    DATA_DRIFT,
    ESTIMATED_PERFORMANCE,
    MONITORING_STAGE,
    PERFORMANCE,
    PREDICTION_DRIFT,
    REPORT,
    SCORE,
    read_result,
    write_result,
)
from ctflow.core.monitoring.report_page import plot_metric_over_time, plot_scores, render_report
from ctflow.core.policy import assess

if TYPE_CHECKING:
    from ctflow.core.drift import DriftResult
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


def report(
    spec: PipelineSpec,
    *,
    run_dir: Path,
    run_key: str,
    tracking_uri: str | None = None,
    predictions_url: str | None = None,
    lineage: dict[str, str] | None = None,
) -> dict[str, Any]:
    """HTML report and PNG plots in an MLflow monitoring run; returns the window's summary."""
    import mlflow

    from ctflow.core import tracking
    from ctflow.core.drift.report import plot_drift, render_html
    from ctflow.core.predictions import PredictionStore

    started = time.perf_counter()
    scored = read_result(run_dir / SCORE)
    data = read_result(run_dir / DATA_DRIFT)
    preds = read_result(run_dir / PREDICTION_DRIFT)
    perf = read_result(run_dir / PERFORMANCE)
    # A run folder of a version without the estimate has no such file: nothing estimated then.
    estimated = read_result(run_dir / ESTIMATED_PERFORMANCE) if (run_dir / ESTIMATED_PERFORMANCE).exists() else {}
    client = tracking.client(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, spec.pipeline)
    earlier = tracking.find_run(client, experiment_id, run_key, MONITORING_STAGE)
    if earlier is not None and (run_dir / REPORT).exists():
        log.info("reusing MLflow monitoring run %s made by an earlier try of this run", earlier.info.run_id)
        return read_result(run_dir / REPORT)

    breaches = assess(spec, data=data, predictions=preds, perf=perf, estimated=estimated)
    history = PredictionStore(predictions_url).performance_history(spec.pipeline, limit=120)
    folder = run_dir / "report"
    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    drift_result = _drift_result(data) if data.get("available") else None
    written = []
    if drift_result is not None:
        written.append(plot_drift(drift_result, plots / "drift_by_feature.png",
                                  title=f"{spec.pipeline}: feature drift, [{scored['window_start']}, {scored['window_end']})"))
    written.append(plot_metric_over_time(spec, history, plots / "metric_over_time.png"))
    written.append(plot_scores(spec, run_dir, scored, plots / "score_distribution.png"))

    summary = {
        "pipeline": spec.pipeline,
        "as_of": scored["as_of"],
        "window_start": scored["window_start"],
        "window_end": scored["window_end"],
        "strategy": scored["strategy"],
        "champion_version": scored["champion"]["version"],
        "challenger_version": (scored.get("challenger") or {}).get("version"),
        "rows_scored": scored["rows"],
        "scoring_seconds_per_1000_rows": scored["scoring_seconds_per_1000_rows"],
        "data_drift": {"available": data.get("available", False), "drifted": data.get("drifted", False),
                       "drifted_share": data.get("drifted_share"), "drifted_columns": data.get("drifted_columns", []),
                       "state": data.get("state", "unavailable") if data.get("available") else "unavailable",
                       "insufficient": data.get("insufficient"), "max_drifted_share": data.get("max_drifted_share"),
                       # The share counts columns by their importance to the champion when weighted.
                       "weighted": any(c.get("weight") is not None for c in data.get("columns", []))},
        "prediction_drift": {"available": preds.get("available", False), "drifted": preds.get("drifted", False),
                             "state": preds.get("state", "unavailable"),
                             **{k: (preds["models"].get("champion") or {}).get(k)
                                for k in ("method", "statistic", "p_value", "insufficient")}},
        "performance": {k: perf.get(k) for k in ("available", "metric", "window_start", "window_end", "rows", "breach")}
        | {"champion": perf["champion"]["value"] if perf.get("champion") else None,
           "champion_estimated": (perf.get("champion") or {}).get("estimated"),
           "challenger": (perf.get("challenger") or {}).get("value"),
           "decision": (perf.get("decision") or {}).get("action"),
           "decision_applied": (perf.get("decision") or {}).get("applied"),
           "decision_reason": (perf.get("decision") or {}).get("reason")},
        "estimated_performance": {k: estimated.get(k) for k in (
            "available", "metric", "method", "value", "reference", "lower", "upper", "calibrated", "breach",
            "enabled", "reason")},
        "breaches": breaches,
        "breach": bool(breaches),
        "seconds": {"score_batch": scored.get("seconds"), "data_drift": data.get("seconds"),
                    "prediction_drift": preds.get("seconds"), "performance": perf.get("seconds")},
    }
    html_path = render_report(spec, summary, scored, data, preds, perf, drift_result, written, folder / "report.html",
                               render_html, estimated=estimated)
    tags = {
        mlflow_tags.RUN_KEY: run_key,
        mlflow_tags.STAGE: MONITORING_STAGE,
        mlflow_tags.PIPELINE: spec.pipeline,
        names.WINDOW_START_TAG: scored["window_start"],
        names.WINDOW_END_TAG: scored["window_end"],
        names.AS_OF_TAG: scored["as_of"],
        names.CHAMPION_VERSION_TAG: str(scored["champion"]["version"]),
        names.BREACH_TAG: names.breach_tag({b["kind"] for b in breaches}),
        names.DATA_STATE_TAG: summary["data_drift"]["state"],
        **({names.CHALLENGER_VERSION_TAG: str(summary["challenger_version"])} if summary["challenger_version"] else {}),
        **_decision_tags(perf.get("decision")),
        **(lineage or {}),
    }
    name = f"{spec.pipeline} monitoring {scored['window_start'][:16]} .. {scored['window_end'][:16]}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
        mlflow.log_metrics(_metrics(summary, scored, data, preds, perf, estimated, time.perf_counter() - started))
        mlflow.log_artifact(str(html_path), names.REPORT_FOLDER)
        for plot in written:
            mlflow.log_artifact(str(plot), names.PLOTS_FOLDER)
        for source in (SCORE, DATA_DRIFT, PREDICTION_DRIFT, PERFORMANCE, ESTIMATED_PERFORMANCE):
            if (run_dir / source).exists():
                mlflow.log_artifact(str(run_dir / source), names.RESULTS_FOLDER)
        mlflow.log_dict(summary, names.SUMMARY_ARTIFACT)
        # What the task returns: the report link (ctflow.links.MonitoringReportLink) reads these.
        summary.update(mlflow_run_id=run.info.run_id, mlflow_experiment_id=experiment_id,
                       report_path=names.REPORT_ARTIFACT)
    summary["report"] = str(html_path)
    write_result(run_dir / REPORT, summary)
    for line in summary_lines(summary):
        log.info("%s", line)
    return summary


def _drift_share_line(data: dict[str, Any]) -> str:
    """"share 0.12 (by importance; breach at 0.30), drifted: a, b": a drifted column the champion
    hardly uses adds little to a weighted share, which a bare "share 0.00, drifted: a" hid."""
    basis = [("by importance" if data.get("weighted") else "unweighted")]
    if data.get("max_drifted_share") is not None:
        basis.append(f"breach at {data['max_drifted_share']:.2f}")
    return (f"share {data['drifted_share']:.2f} ({'; '.join(basis)}), "
            f"drifted: {', '.join(data['drifted_columns']) or 'none'}")


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary for a task log, one fact per line."""
    perf = summary["performance"]
    data = summary["data_drift"]
    estimated = summary.get("estimated_performance") or {}
    lines = [
        f"monitoring {summary['pipeline']} [{summary['window_start']}, {summary['window_end']}): "
        f"{summary['rows_scored']} rows, champion v{summary['champion_version']}"
        + (f", challenger v{summary['challenger_version']} ({summary['strategy']})" if summary["challenger_version"] else ""),
        "  data drift: " + (f"insufficient data, no verdict: {data.get('insufficient')}"
                             if data.get("state") == "insufficient_data" else
                             _drift_share_line(data)
                             if data["available"] else "not available"),
        "  prediction drift: " + _prediction_drift_line(summary["prediction_drift"]),
        "  estimated performance: " + (f"{estimated['metric']} {estimated['value']:.4f}"
                                        + (f" (reference {estimated['reference']:.4f})"
                                           if estimated.get("reference") is not None else "")
                                        if estimated.get("available") else
                                        "not available" + (f": {estimated['reason']}" if estimated.get("reason") else "")),
        "  performance: " + (f"{perf['metric']} champion {perf['champion']:.4f}"
                              + (f" (estimated {perf['champion_estimated']:.4f})"
                                 if perf.get("champion_estimated") is not None else "")
                              + (f", challenger {perf['challenger']:.4f}" if perf.get("challenger") is not None else "")
                              + (f" -> {perf['decision']}" if perf.get("decision") else "")
                              if perf["available"] else "not available yet"),
        "  breaches: " + ("; ".join(f"{b['kind']}: {b['reason']}" for b in summary["breaches"]) or "none"),
    ]
    return lines


def _prediction_drift_line(preds: dict[str, Any]) -> str:
    """The champion's score drift in words: a window too small has no verdict, it is not "ok"."""
    if not preds["available"]:
        return "not available"
    if preds.get("state") == INSUFFICIENT_DATA:
        return f"insufficient data, no verdict: {preds.get('insufficient')}"
    return "DRIFT" if preds["drifted"] else "ok"


def _drift_result(data: dict[str, Any]) -> DriftResult:
    from ctflow.core.drift import ColumnDrift, DriftResult

    columns = [
        ColumnDrift(**{**c, "statistic": math.nan if c["statistic"] is None else c["statistic"]}) for c in data["columns"]
    ]
    return DriftResult(columns, data["drifted_share"], data["drifted"], data["max_drifted_share"],
                       data.get("insufficient"))


def _metrics(summary: dict[str, Any], scored: dict[str, Any], data: dict[str, Any], preds: dict[str, Any],
             perf: dict[str, Any], estimated: dict[str, Any], report_seconds: float) -> dict[str, float]:
    """The monitoring run's metrics: the run's own, then data drift, prediction drift and
    performance (realized and estimated); unknown and non-finite values are left out."""
    metrics = {
        **_run_metrics(summary, scored, report_seconds),
        **_data_drift_metrics(data),
        **_prediction_drift_metrics(preds),
        **_performance_metrics(perf),
    }
    if estimated.get("available"):
        metrics[names.estimated_performance_metric(estimated["metric"])] = estimated["value"]
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def _run_metrics(summary: dict[str, Any], scored: dict[str, Any], report_seconds: float) -> dict[str, float | None]:
    """Rows, timings and breach counts of the window."""
    metrics: dict[str, float | None] = {
        "rows_scored": scored["rows"],
        "predictions_written": scored["predictions_written"],
        "feature_seconds": scored["feature_seconds"],
        "scoring_seconds": scored["scoring_seconds"],
        names.BREACHES_METRIC: len(summary["breaches"]),
        "seconds.report": report_seconds,
    }
    if scored["scoring_seconds_per_1000_rows"] is not None:
        metrics["scoring_seconds_per_1000_rows"] = scored["scoring_seconds_per_1000_rows"]
    for step, seconds in summary["seconds"].items():
        if seconds is not None:
            metrics[f"seconds.{step}"] = seconds
    metrics[names.INSUFFICIENT_METRIC] = float(any(b["kind"] == names.INSUFFICIENT_KIND for b in summary["breaches"]))
    return metrics


def _data_drift_metrics(data: dict[str, Any]) -> dict[str, float | None]:
    """The drifted share and each column's score, or only the insufficient-data flag."""
    metrics: dict[str, float | None] = {}
    if data.get("available") and data.get("insufficient"):
        metrics[names.DRIFT_INSUFFICIENT_METRIC] = 1.0  # and no share: 0 would read as "no drift"
    elif data.get("available"):
        metrics[names.DRIFT_SHARE_METRIC] = data["drifted_share"]
        metrics[names.DRIFTED_COLUMNS_METRIC] = len(data["drifted_columns"])
        for column in data["columns"]:
            value = column["p_value"] if column["p_value"] is not None else column["statistic"]
            if value is not None:
                metrics[names.column_drift_metric(_metric_key(column["column"]))] = value
    return metrics


def _prediction_drift_metrics(preds: dict[str, Any]) -> dict[str, float | None]:
    """Each scored model's drift statistic and p-value."""
    metrics: dict[str, float | None] = {}
    for who, model in (preds.get("models") or {}).items():
        if model.get("available") and model.get("statistic") is not None:
            metrics[names.prediction_drift_metric(who, "statistic")] = model["statistic"]
            if model.get("p_value") is not None:
                metrics[names.prediction_drift_metric(who, "p_value")] = model["p_value"]
    return metrics


def _performance_metrics(perf: dict[str, Any]) -> dict[str, float | None]:
    """The champion's (and challenger's) metric on the ground-truth window."""
    metrics: dict[str, float | None] = {}
    if perf.get("available"):
        metrics[names.performance_metric("champion", perf["metric"])] = perf["champion"]["value"]
        metrics["performance.rows"] = perf["rows"]
        if (perf.get("challenger") or {}).get("value") is not None:
            metrics[names.performance_metric("challenger", perf["metric"])] = perf["challenger"]["value"]
    decision = perf.get("decision") or {}
    if decision.get("rule") == "sequential":
        metrics.update({names.CHALLENGER_ESTIMATE_METRIC: decision["mean"], names.CHALLENGER_LOWER_METRIC: decision["lower"],
                        names.CHALLENGER_UPPER_METRIC: decision["upper"], names.CHALLENGER_ROWS_METRIC: decision["n"],
                        names.CHALLENGER_WINDOWS_METRIC: decision["windows"]})
    return metrics


def _decision_tags(decision: dict[str, Any] | None) -> dict[str, str]:
    """The challenger decision's action and rule, when the window judged a challenger."""
    if not decision:
        return {}
    return {names.CHALLENGER_DECISION_TAG: decision["action"], names.CHALLENGER_TEST_TAG: decision["rule"]}


def _metric_key(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)
