"""Monitoring steps 2 to 4: data drift, prediction drift (with the performance estimate) and performance on the
ground-truth window."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.contract import monitoring as names
from ctflow.core.monitoring.challenger import judge_challenger
from ctflow.core.monitoring.estimated import estimated_on, estimated_performance
from ctflow.core.monitoring.files import (
    CHALLENGER_SCORE,
    CHAMPION_SCORE,
    DATA_DRIFT,
    ESTIMATED_PERFORMANCE,
    PERFORMANCE,
    PREDICTION_DRIFT,
    SCORE,
    WINDOW_FRAME,
    _reference,
    read_result,
    write_result,
)

if TYPE_CHECKING:
    from ctflow.core.drift.calibration import Null
    from ctflow.core.monitoring.sequential import Evidence
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


def data_drift(spec: PipelineSpec, *, run_dir: Path, tracking_uri: str | None = None) -> dict[str, Any]:
    """Per-feature drift of the window against the champion's reference profile."""
    import pandas as pd

    from ctflow.core import drift

    started = time.perf_counter()
    scored = read_result(run_dir / SCORE)
    path = _reference(run_dir, scored["champion"]["run_id"], "profile", tracking_uri=tracking_uri, who="champion")
    if path is None:
        result = {"available": False, "drifted": False,
                  "reason": f"champion v{scored['champion']['version']} has no reference profile (reference/profile)"}
        write_result(run_dir / DATA_DRIFT, result)
        return result
    profile = drift.ReferenceProfile.load(path)
    config = spec.monitoring.drift
    columns = config.columns or profile.names
    frame = pd.read_parquet(run_dir / WINDOW_FRAME)
    outcome = drift.dataset_drift_from_profile(profile, frame, columns=columns, method=config.method,
                                               threshold=config.threshold, max_drifted_share=config.max_drifted_share,
                                               min_rows=spec.monitoring.min_rows, calibration=config.calibration,
                                               quantile=config.calibration_quantile, weighting=config.weighting)
    result = {
        "available": True,
        **outcome.to_dict(),
        "drifted_columns": outcome.drifted_columns,
        "rows": len(frame),
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_result(run_dir / DATA_DRIFT, result)
    from ctflow.core.drift.report import summary_line

    log.info("data drift of champion v%s's features: %s", scored["champion"]["version"], summary_line(outcome))
    return {k: v for k, v in result.items() if k != "columns"}


def prediction_drift(spec: PipelineSpec, *, run_dir: Path, tracking_uri: str | None = None) -> dict[str, Any]:
    """Drift of the window's scores against the training-time (holdout) scores, per model; then
    what the champion's scores say of its performance (:func:`estimated_performance`)."""
    import numpy as np
    import pandas as pd

    from ctflow.core.drift.scores import score_drift

    started = time.perf_counter()
    scored = read_result(run_dir / SCORE)
    config = spec.monitoring.prediction_drift
    frame = pd.read_parquet(run_dir / WINDOW_FRAME, columns=[CHAMPION_SCORE, CHALLENGER_SCORE])
    result: dict[str, Any] = {"available": False, "drifted": False, "models": {}}
    for who, column in (("champion", CHAMPION_SCORE), ("challenger", CHALLENGER_SCORE)):
        model = scored.get(who)
        if not model:
            continue
        path = _reference(run_dir, model["run_id"], names.REFERENCE_SCORES_FILE, tracking_uri=tracking_uri, who=who)
        if path is None:
            result["models"][who] = {"version": model["version"], "available": False,
                                     "reason": "no training-time scores (reference/scores.npy)"}
            continue
        reference = np.load(path, allow_pickle=False)
        current = frame[column].dropna().to_numpy(dtype="float64")
        result["models"][who] = score_drift(reference, current, config=config, min_rows=spec.monitoring.min_rows,
                                            version=model["version"], who=who,
                                            null=_score_null(run_dir, model["run_id"], tracking_uri=tracking_uri, who=who)
                                            if config.calibration == "reference" else None)
    champion = result["models"].get("champion", {})
    result["available"] = bool(champion.get("available"))
    result["drifted"] = bool(champion.get("drifted"))  # the champion serves: its drift is the breach
    result["state"] = champion.get("state", "unavailable")
    result["seconds"] = round(time.perf_counter() - started, 3)
    write_result(run_dir / PREDICTION_DRIFT, result)
    if champion.get("available"):
        log.info("prediction drift of champion v%s: %s %s = %s (threshold %s) -> %s", champion["version"],
                 champion["method"], "p" if champion["p_value"] is not None else "distance",
                 champion["p_value"] if champion["p_value"] is not None else champion["statistic"],
                 champion["threshold"], "DRIFT" if champion["drifted"] else "ok")
    try:
        estimated = estimated_performance(spec, run_dir=run_dir, tracking_uri=tracking_uri)
    except Exception as err:  # noqa: BLE001 - the estimate is a hint: a failure of it must not hide the drift verdict
        log.warning("no performance estimate for champion v%s: %s: %s", champion.get("version"), type(err).__name__, err)
        estimated = {"available": False, "reason": f"{type(err).__name__}: {err}"}
        (run_dir / ESTIMATED_PERFORMANCE).unlink(missing_ok=True)  # no earlier try's estimate for this one
    result["estimated"] = {k: v for k, v in estimated.items() if k in ("available", "metric", "value", "breach", "reason")}
    return result


def _score_null(run_dir: Path, run_id: str, *, tracking_uri: str | None, who: str) -> Null | None:
    """The model's stored score null (``reference/scores_null.json``); None for a model trained
    before it was stored or on too short a window (its scores are then judged raw)."""
    import json

    from ctflow.core.drift.calibration import Null

    path = _reference(run_dir, run_id, names.REFERENCE_SCORES_NULL_FILE, tracking_uri=tracking_uri, who=who)
    return None if path is None else Null.from_dict(json.loads(path.read_text()))


def ground_truth_window(spec: PipelineSpec, as_of: datetime) -> tuple[datetime, datetime]:
    """``[as_of - available_after - window, as_of - available_after)``: :func:`ctflow.core.labels.ground_truth_window`."""
    from ctflow.core.labels import ground_truth_window as window

    return window(spec, as_of)


def performance(
    spec: PipelineSpec,
    *,
    as_of: datetime,
    run_dir: Path,
    actor: str,
    run_key: str | None = None,
    tracking_uri: str | None = None,
    feature_repo: Path | None = None,
    predictions_url: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """The metric on the ground-truth window for champion and challenger (same rows) and their per-row
    loss differences; record them; promote, retire or keep the challenger as ``registry.challenger_test``
    decides (:func:`ctflow.core.monitoring.challenger.judge_challenger`)."""
    from ctflow.core import performance as perf
    from ctflow.core import tracking
    from ctflow.core.features import pipeline_repo
    from ctflow.core.predictions import PerformanceRecord, PredictionStore
    from ctflow.core.registry import ModelRegistry
    from ctflow.core.scoring import ServingModel, window_frame
    from ctflow.core.steps import LABEL
    from ctflow.core.threshold import of_version

    started = time.perf_counter()
    scored = read_result(run_dir / SCORE)
    config = spec.monitoring.performance
    metric = config.metric if config else spec.evaluation.metric
    start, end = ground_truth_window(spec, as_of)
    result: dict[str, Any] = {"metric": metric, "window_start": start.isoformat(), "window_end": end.isoformat(),
                              "available": False, "breach": None, "challenger": None, "decision": None}

    tracking.client(tracking_uri)
    registry = ModelRegistry(spec.model_name, tracking_uri=tracking_uri)
    champion = ServingModel.of(registry, registry.get_version(scored["champion"]["version"]), "champion", spec)
    challenger = None
    if scored.get("challenger"):
        challenger = ServingModel.of(registry, registry.get_version(scored["challenger"]["version"]), "challenger", spec)
    repo = pipeline_repo(spec, feature_repo)
    frame, facts = window_frame(spec, start=start, end=end, feature_service=champion.feature_service,
                                feature_repo=repo, labelled=True, known_by=as_of)
    result.update(rows=facts["rows"], unlabelled=facts["unlabelled"], label_pending=facts["label_pending"],
                  champion={"version": champion.number, "value": None})
    if frame.empty:
        result["reason"] = f"no labelled rows in the ground-truth window [{start}, {end}) yet"
        return _finish_performance(run_dir, result, started)

    y_true = frame[LABEL].to_numpy()
    champion_scores = champion.score(frame, spec.model.task)
    champion_value = perf.metric_value(spec.model.task, metric, y_true, champion_scores,
                                       threshold=of_version(spec.model, champion.version.tags))
    result["champion"]["value"] = champion_value
    result["champion"]["estimated"] = estimated_on(spec, scored["champion"], champion_scores, run_dir=run_dir,
                                                   tracking_uri=tracking_uri, frame=frame)
    if spec.model.task == "classification":
        result["positive_share"] = round(float(y_true.mean()), 4)
    if champion_value is None:
        result["reason"] = f"{metric} is undefined on these {len(frame)} rows (e.g. a single class)"
        return _finish_performance(run_dir, result, started)
    result["available"] = True
    if config is not None:
        result["breach"] = config.breach(champion_value)
        result["bounds"] = {"min": config.min, "max": config.max}

    challenger_value = won = evidence = None
    if challenger is not None:
        try:
            challenger_frame = frame
            if challenger.feature_service != champion.feature_service:
                challenger_frame, _ = window_frame(spec, start=start, end=end, feature_service=challenger.feature_service,
                                                   feature_repo=repo, labelled=True, known_by=as_of)
            challenger_scores = challenger.score(challenger_frame, spec.model.task)
            challenger_value = perf.metric_value(spec.model.task, metric, challenger_frame[LABEL].to_numpy(),
                                                 challenger_scores, threshold=of_version(spec.model, challenger.version.tags))
            evidence = _loss_differences(spec, frame, champion_scores, challenger_scores, repo=repo,
                                         feature_service=champion.feature_service)
        except Exception as err:  # noqa: BLE001 - a broken challenger must not stop judging the champion
            log.warning("challenger v%s cannot score the ground-truth window: %s", challenger.number, err)
            result["challenger_error"] = f"{type(err).__name__}: {err}"
        won = perf.challenger_wins(spec.model.task, metric, challenger_value, champion_value,
                                   spec.evaluation.versus_champion.min_improvement)
        result["challenger"] = {"version": challenger.number, "value": challenger_value, "won": won,
                                "loss_difference": evidence.mean if evidence and evidence.n else None}

    record = PerformanceRecord(
        pipeline=spec.pipeline, window_start=start, window_end=end, metric=metric, rows=len(frame),
        champion_version=champion.number, champion_value=champion_value,
        challenger_version=challenger.number if challenger else None, challenger_value=challenger_value,
        challenger_won=won, loss_diff_rows=evidence.n if evidence else None,
        loss_diff_sum=evidence.total if evidence else None, loss_diff_sum_sq=evidence.total_sq if evidence else None,
    )
    result["decision"] = judge_challenger(spec, record, store=PredictionStore(predictions_url), registry=registry,
                                          actor=actor, run_key=run_key, dry_run=dry_run)
    log.info("performance on [%s, %s) (%s labelled rows): %s champion v%s = %.4f%s%s", start, end, len(frame), metric,
             champion.number, champion_value,
             f", challenger v{challenger.number} = {challenger_value}" if challenger else "",
             f" — BREACH: {result['breach']}" if result["breach"] else "")
    return _finish_performance(run_dir, result, started)


def _loss_differences(spec: PipelineSpec, frame: Any, champion_scores: Any, challenger_scores: Any, *,
                      repo: Path, feature_service: str) -> Evidence | None:
    """The window's per-row loss differences for the sequential test: paired on every row (shadow),
    or each row's loss under the model the canary's hash gave it, inverse-propensity weighted."""
    from ctflow.core.monitoring.sequential import window_evidence
    from ctflow.core.predictions import entity_keys
    from ctflow.core.scoring import canary_mask, join_keys
    from ctflow.core.steps import LABEL

    if len(challenger_scores) != len(frame):  # another feature service keeps every row in order; if not, no pairs
        log.warning("challenger scored %s rows, champion %s: no loss differences this window",
                    len(challenger_scores), len(frame))
        return None
    y_true = frame[LABEL].to_numpy(dtype="float64")
    if spec.registry.strategy != "canary":
        return window_evidence(y_true, champion_scores, challenger_scores)
    keys = entity_keys(frame, join_keys(repo, feature_service))
    served = canary_mask(keys, spec.registry.canary_fraction, salt=spec.model_name)  # as the scoring step routed
    return window_evidence(y_true, champion_scores, challenger_scores, served_by_challenger=served,
                           fraction=spec.registry.canary_fraction, clusters=keys)  # one coin flip per key


def _finish_performance(run_dir: Path, result: dict[str, Any], started: float) -> dict[str, Any]:
    result["seconds"] = round(time.perf_counter() - started, 3)
    if not result["available"]:
        log.info("performance not available: %s", result.get("reason"))
    write_result(run_dir / PERFORMANCE, result)
    return result
