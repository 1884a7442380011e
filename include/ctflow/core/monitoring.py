"""The steps of a monitoring run as plain functions over a run folder (no Airflow here).

``monitor_<name>`` runs, for ``as_of`` (the logical date or ``params.as_of``):

1. :func:`score_batch` — the rows of ``[as_of - monitoring.window, as_of)`` with their
   point-in-time features, scored by the ``champion`` (and the ``challenger``: every row in
   ``shadow``, a deterministic hash-of-entity-key share of rows in ``canary``); predictions
   replace the window's rows in the predictions store (:mod:`ctflow.core.predictions`);
2. :func:`data_drift` — each feature of the window against the champion's reference profile
   (``reference/profile`` of its MLflow run, written at training time);
3. :func:`prediction_drift` — the window's champion scores against its training-time holdout
   scores (``reference/scores.npy``);
4. :func:`performance` — on the **ground-truth window** ``[as_of - ground_truth_delay - window,
   as_of - ground_truth_delay)``: every row there has had ``ground_truth_delay`` for its label to
   arrive, so its label is known at ``as_of``. Those rows (with their labels from the entity table,
   unknown labels dropped) are scored by the champion and the challenger, the *same* rows for
   both whatever the strategy, and the spec's metric compared. The result is recorded per window
   (``ctflow_performance``); a challenger that wins/loses ``registry.promote_after`` windows in a
   row is promoted (registry compare-and-set + alias history) or retired;
5. :func:`report` — HTML report and PNG plots logged to an MLflow monitoring run, the
   computational metrics, and the summary (breaches included);
6. :func:`actions` — whether to alert and to emit the breach event; :func:`deliver_webhook`
   posts an alert and never raises.

Each step writes its full result to ``run_dir`` as JSON and returns a small dict (XCom).
"""

from __future__ import annotations

import base64
import logging
import math
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.contract import monitoring as names
from ctflow.core.drift.sufficiency import insufficient_breaches
from ctflow.core.run_files import read_result as _read
from ctflow.core.run_files import write_result as _write
from ctflow.core.timing import window as time_window
from ctflow.spec.durations import format_duration
from ctflow.contract import mlflow_tags

if TYPE_CHECKING:
    import pandas as pd

    from ctflow.core.drift import DriftResult
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)

WINDOW_FRAME = "window.parquet"
SCORE = "score.json"
DATA_DRIFT = names.DATA_DRIFT_FILE
PREDICTION_DRIFT = "prediction_drift.json"
PERFORMANCE = "performance.json"
REPORT = "report.json"
NO_CHAMPION = "no_champion.json"
DATA_STATE_TAG = names.DATA_STATE_TAG

CHAMPION_SCORE = "ctflow_score_champion"
CHALLENGER_SCORE = "ctflow_score_challenger"
ARM = "ctflow_arm"
MONITORING_STAGE = names.STAGE


# --------------------------------------------------------------------------- 1. scoring


def score_batch(
    spec: PipelineSpec,
    *,
    as_of: datetime,
    run_dir: Path,
    run_key: str | None = None,
    tracking_uri: str | None = None,
    feature_repo: Path | None = None,
    predictions_url: str | None = None,
) -> dict[str, Any]:
    """Score the window with the champion (and challenger); replace the window in the store.

    Returns ``{"skipped": True, "reason"}`` when there is no champion to score with.
    """
    import numpy as np

    from ctflow import settings
    from ctflow.core import tracking
    from ctflow.core.predictions import PredictionStore, entity_keys
    from ctflow.core.registry import ModelRegistry
    from ctflow.core.scoring import ServingModel, canary_mask, join_keys, window_frame

    started = time.perf_counter()
    repo = Path(feature_repo or settings.feature_repo())
    start, end = time_window(as_of, spec.monitoring.window)
    tracking.client(tracking_uri)  # model URIs resolve against this registry
    registry = ModelRegistry(spec.model_name, tracking_uri=tracking_uri)
    champion = ServingModel.resolve(registry, "champion", spec)
    if champion is None:
        reason = (f"no champion yet: registered model {spec.model_name!r} has no 'champion' alias; "
                  f"run {spec.ct_dag_id} first (nothing to monitor)")
        log.info("%s", reason)
        # act_on_breach reads this to ask for a training (schedule.retrain_on: no_champion).
        _write(run_dir / NO_CHAMPION, {"reason": reason, "window_start": start.isoformat(),
                                       "window_end": end.isoformat()})
        return {"skipped": True, "reason": reason}
    (run_dir / NO_CHAMPION).unlink(missing_ok=True)  # a re-run after a champion appeared
    challenger = ServingModel.resolve(registry, "challenger", spec) if spec.registry.strategy != "direct" else None
    if challenger is not None and challenger.number == champion.number:
        challenger = None  # already promoted: one model serves

    fetch_started = time.perf_counter()
    frame, facts = window_frame(spec, start=start, end=end, feature_service=champion.feature_service, feature_repo=repo)
    challenger_frame = frame
    if challenger is not None and challenger.feature_service != champion.feature_service:
        challenger_frame, _ = window_frame(spec, start=start, end=end, feature_service=challenger.feature_service,
                                           feature_repo=repo)
    fetch_seconds = time.perf_counter() - fetch_started
    keys = entity_keys(frame, join_keys(repo, champion.feature_service))

    n = len(frame)
    strategy = spec.registry.strategy
    to_challenger = np.zeros(n, dtype=bool)
    if challenger is not None:
        to_challenger = canary_mask(keys, spec.registry.canary_fraction, salt=spec.model_name) if strategy == "canary" \
            else np.ones(n, dtype=bool)
    champion_rows = ~to_challenger if strategy == "canary" else np.ones(n, dtype=bool)

    timings: dict[str, float] = {}
    champion_scores = np.full(n, np.nan)
    scoring_started = time.perf_counter()
    champion_scores[champion_rows] = champion.score(frame.loc[champion_rows], spec.model.task)
    timings["champion"] = time.perf_counter() - scoring_started
    challenger_scores = np.full(n, np.nan)
    challenger_error = None
    if challenger is not None:
        scoring_started = time.perf_counter()
        try:
            challenger_scores[to_challenger] = challenger.score(challenger_frame.loc[to_challenger], spec.model.task)
        except Exception as err:  # a broken challenger must not stop monitoring of the champion
            challenger_error = f"{type(err).__name__}: {err}"
            log.warning("challenger v%s cannot score the window: %s", challenger.number, challenger_error)
            to_challenger[:] = False
            if strategy == "canary":  # its rows fall back to the champion
                champion_rows[:] = True
                champion_scores = champion.score(frame, spec.model.task)
        timings["challenger"] = time.perf_counter() - scoring_started

    frame[CHAMPION_SCORE] = champion_scores
    frame[CHALLENGER_SCORE] = challenger_scores
    frame[ARM] = np.where(to_challenger & ~champion_rows, "challenger", "champion")
    frame.to_parquet(run_dir / WINDOW_FRAME, index=False)

    timestamps = frame[spec.data.timestamp]
    records: list[dict[str, Any]] = []
    for model, scores, mask in ((champion, champion_scores, champion_rows), (challenger, challenger_scores, to_challenger)):
        if model is None:
            continue
        for i in np.flatnonzero(mask):
            value = float(scores[i])
            records.append({
                "model_name": spec.model_name, "model_version": model.number, "alias": model.alias, "row": int(i),
                "entity_key": keys[i], "event_timestamp": timestamps.iloc[i],
                "score": None if math.isnan(value) else value,
            })
    store = PredictionStore(predictions_url)
    write_started = time.perf_counter()
    written = store.replace_window(pipeline=spec.pipeline, window_start=start, window_end=end, rows=records, run_key=run_key)
    write_seconds = time.perf_counter() - write_started

    scoring_seconds = sum(timings.values())
    scored_rows = int(champion_rows.sum() + to_challenger.sum())
    result = {
        "as_of": as_of.isoformat(),
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "rows": n,
        "entity_rows": facts["entity_rows"],
        "strategy": strategy,
        "champion": {**champion.describe(), "rows": int(champion_rows.sum())},
        "challenger": {**challenger.describe(), "rows": int(to_challenger.sum()), "error": challenger_error}
        if challenger is not None else None,
        "predictions_written": written,
        "feature_seconds": round(fetch_seconds, 3),
        "scoring_seconds": round(scoring_seconds, 3),
        "scoring_seconds_per_1000_rows": round(1000 * scoring_seconds / scored_rows, 4) if scored_rows else None,
        "store_seconds": round(write_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
        "path": str(run_dir / WINDOW_FRAME),
    }
    _write(run_dir / SCORE, result)
    log.info("scored %s rows of [%s, %s) with champion v%s%s; %s predictions stored", n, start, end, champion.number,
             f" and challenger v{challenger.number} ({strategy}, {int(to_challenger.sum())} rows)" if challenger else "",
             written)
    return _small(result)


# --------------------------------------------------------------------------- 2. data drift


def data_drift(spec: PipelineSpec, *, run_dir: Path, tracking_uri: str | None = None) -> dict[str, Any]:
    """Per-feature drift of the window against the champion's reference profile."""
    import pandas as pd

    from ctflow.core import drift

    started = time.perf_counter()
    scored = _read(run_dir / SCORE)
    path = _reference(run_dir, scored["champion"]["run_id"], "profile", tracking_uri=tracking_uri, who="champion")
    if path is None:
        result = {"available": False, "drifted": False,
                  "reason": f"champion v{scored['champion']['version']} has no reference profile (reference/profile)"}
        _write(run_dir / DATA_DRIFT, result)
        return result
    profile = drift.ReferenceProfile.load(path)
    config = spec.monitoring.drift
    columns = config.columns or profile.names
    frame = pd.read_parquet(run_dir / WINDOW_FRAME)
    outcome = drift.dataset_drift_from_profile(profile, frame, columns=columns, method=config.method,
                                               threshold=config.threshold, max_drifted_share=config.max_drifted_share,
                                               min_rows=spec.monitoring.min_rows)
    result = {
        "available": True,
        **outcome.to_dict(),
        "drifted_columns": outcome.drifted_columns,
        "rows": len(frame),
        "seconds": round(time.perf_counter() - started, 3),
    }
    _write(run_dir / DATA_DRIFT, result)
    from ctflow.core.drift.report import summary_line

    log.info("data drift of champion v%s's features: %s", scored["champion"]["version"], summary_line(outcome))
    return {k: v for k, v in result.items() if k != "columns"}


# --------------------------------------------------------------------------- 3. prediction drift


def prediction_drift(spec: PipelineSpec, *, run_dir: Path, tracking_uri: str | None = None) -> dict[str, Any]:
    """Drift of the window's scores against the training-time (holdout) scores, per model."""
    import numpy as np
    import pandas as pd

    from ctflow.core import drift
    from ctflow.core.drift.sufficiency import scores_insufficient, state

    started = time.perf_counter()
    scored = _read(run_dir / SCORE)
    config = spec.monitoring.prediction_drift
    frame = pd.read_parquet(run_dir / WINDOW_FRAME, columns=[CHAMPION_SCORE, CHALLENGER_SCORE])
    result: dict[str, Any] = {"available": False, "drifted": False, "models": {}}
    for who, column in (("champion", CHAMPION_SCORE), ("challenger", CHALLENGER_SCORE)):
        model = scored.get(who)
        if not model:
            continue
        path = _reference(run_dir, model["run_id"], "scores.npy", tracking_uri=tracking_uri, who=who)
        if path is None:
            result["models"][who] = {"version": model["version"], "available": False,
                                     "reason": "no training-time scores (reference/scores.npy)"}
            continue
        reference = np.load(path, allow_pickle=False)
        current = frame[column].dropna().to_numpy(dtype="float64")
        verdict = drift.prediction_drift(reference, current, method=config.method, threshold=config.threshold,
                                         name=f"score ({who} v{model['version']})", kind="numeric")
        share = 1.0 if verdict.drifted else 0.0
        insufficient = scores_insufficient(n_reference=verdict.n_reference, n_current=verdict.n_current,
                                           min_rows=spec.monitoring.min_rows)
        drifted = bool(verdict.drifted and share >= config.max_drifted_share) and not insufficient
        result["models"][who] = {"version": model["version"], "available": True, **verdict.to_dict(),
                                 "drifted": drifted, "state": state(drifted=drifted, insufficient=insufficient),
                                 "insufficient": insufficient,
                                 "reference_mean": float(reference.mean()) if len(reference) else None,
                                 "current_mean": float(current.mean()) if len(current) else None}
    champion = result["models"].get("champion", {})
    result["available"] = bool(champion.get("available"))
    result["drifted"] = bool(champion.get("drifted"))  # the champion serves: its drift is the breach
    result["state"] = champion.get("state", "unavailable")
    result["seconds"] = round(time.perf_counter() - started, 3)
    _write(run_dir / PREDICTION_DRIFT, result)
    if champion.get("available"):
        log.info("prediction drift of champion v%s: %s %s = %s (threshold %s) -> %s", champion["version"],
                 champion["method"], "p" if champion["p_value"] is not None else "distance",
                 champion["p_value"] if champion["p_value"] is not None else champion["statistic"],
                 champion["threshold"], "DRIFT" if champion["drifted"] else "ok")
    return result


# --------------------------------------------------------------------------- 4. performance


def ground_truth_window(spec: PipelineSpec, as_of: datetime) -> tuple[datetime, datetime]:
    """``[as_of - ground_truth_delay - window, as_of - ground_truth_delay)``: labels known by ``as_of``."""
    return time_window(as_of - spec.monitoring.ground_truth_delay, spec.monitoring.window)


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
    """The metric on the ground-truth window for champion and challenger (same rows); record it;
    promote or retire the challenger after ``registry.promote_after`` consecutive wins/losses."""
    from ctflow import settings
    from ctflow.core import tracking
    from ctflow.core import performance as perf
    from ctflow.core.predictions import PerformanceRecord, PredictionStore
    from ctflow.core.registry import ModelRegistry
    from ctflow.core.scoring import ServingModel, window_frame
    from ctflow.core.steps import LABEL

    started = time.perf_counter()
    scored = _read(run_dir / SCORE)
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
    repo = Path(feature_repo or settings.feature_repo())
    frame, facts = window_frame(spec, start=start, end=end, feature_service=champion.feature_service,
                                feature_repo=repo, labelled=True)
    result.update(rows=facts["rows"], unlabelled=facts["unlabelled"], champion={"version": champion.number, "value": None})
    if frame.empty:
        result["reason"] = f"no labelled rows in the ground-truth window [{start}, {end}) yet"
        return _finish_performance(run_dir, result, started)

    y_true = frame[LABEL].to_numpy()
    champion_value = perf.metric_value(spec.model.task, metric, y_true, champion.score(frame, spec.model.task),
                                       threshold=spec.model.threshold)
    result["champion"]["value"] = champion_value
    if spec.model.task == "classification":
        result["positive_share"] = round(float(y_true.mean()), 4)
    if champion_value is None:
        result["reason"] = f"{metric} is undefined on these {len(frame)} rows (e.g. a single class)"
        return _finish_performance(run_dir, result, started)
    result["available"] = True
    if config is not None:
        result["breach"] = perf.bound_breach(champion_value, low=config.min, high=config.max)
        result["bounds"] = {"min": config.min, "max": config.max}

    challenger_value = won = None
    if challenger is not None:
        try:
            challenger_frame = frame
            if challenger.feature_service != champion.feature_service:
                challenger_frame, _ = window_frame(spec, start=start, end=end, feature_service=challenger.feature_service,
                                                   feature_repo=repo, labelled=True)
            challenger_value = perf.metric_value(spec.model.task, metric, challenger_frame[LABEL].to_numpy(),
                                                 challenger.score(challenger_frame, spec.model.task),
                                                 threshold=spec.model.threshold)
        except Exception as err:
            log.warning("challenger v%s cannot score the ground-truth window: %s", challenger.number, err)
            result["challenger_error"] = f"{type(err).__name__}: {err}"
        won = perf.challenger_wins(spec.model.task, metric, challenger_value, champion_value,
                                   spec.evaluation.versus_champion.min_improvement)
        result["challenger"] = {"version": challenger.number, "value": challenger_value, "won": won}

    record = PerformanceRecord(
        pipeline=spec.pipeline, window_start=start, window_end=end, metric=metric, rows=len(frame),
        champion_version=champion.number, champion_value=champion_value,
        challenger_version=challenger.number if challenger else None, challenger_value=challenger_value,
        challenger_won=won,
    )
    result["decision"] = judge_challenger(spec, record, store=PredictionStore(predictions_url), registry=registry,
                                          actor=actor, run_key=run_key, dry_run=dry_run)
    log.info("performance on [%s, %s) (%s labelled rows): %s champion v%s = %.4f%s%s", start, end, len(frame), metric,
             champion.number, champion_value,
             f", challenger v{challenger.number} = {challenger_value}" if challenger else "",
             f" — BREACH: {result['breach']}" if result["breach"] else "")
    return _finish_performance(run_dir, result, started)


def judge_challenger(
    spec: PipelineSpec,
    record: Any,
    *,
    store: Any,
    registry: Any,
    actor: str,
    run_key: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any] | None:
    """Record one ground-truth window's result and act on the challenger's run of results.

    ``record`` (a :class:`~ctflow.core.predictions.PerformanceRecord`) replaces any earlier result
    of the same window, so a re-run is not counted twice. With a challenger that has a result,
    its consecutive wins/losses against this champion (:meth:`PredictionStore.streak`) decide:
    promote (registry compare-and-set against this champion, then the ``challenger`` alias is
    retired since the version is champion now), retire, or keep. ``dry_run`` decides but changes
    nothing in the registry. Returns the decision (None without a challenger result).
    """
    from ctflow.core import performance as perf
    from ctflow.core.registry import RegistryError

    store.record_performance(record, run_key=run_key)
    if record.challenger_version is None or record.challenger_won is None:
        return None
    challenger, champion = record.challenger_version, record.champion_version
    wins, losses = store.streak(spec.pipeline, challenger_version=challenger, champion_version=champion,
                                until=record.window_end)
    verdict = perf.decide_challenger(wins, losses, spec.registry.promote_after, challenger=challenger, champion=champion)
    decision: dict[str, Any] = {**verdict.to_dict(), "applied": False, "change": None}
    why = f"monitoring: {verdict.reason} on {record.metric}"
    if verdict.action != perf.KEEP and dry_run:
        decision["note"] = "dry run: the registry is not changed"
    elif verdict.action == perf.PROMOTE:
        try:
            change = registry.promote(challenger, alias="champion", reason=why, actor=actor,
                                      expected_current=champion, run_key=run_key)
        except RegistryError as err:
            decision["note"] = f"promotion refused: {err}"
        else:
            decision.update(applied=change.moved, change=change.to_dict())
            if change.moved:
                registry.retire("challenger", reason=f"promoted to champion ({verdict.reason})", actor=actor,
                                run_key=run_key)
            else:
                decision["note"] = change.reason
    elif verdict.action == perf.RETIRE:
        change = registry.retire("challenger", reason=why, actor=actor, run_key=run_key)
        decision.update(applied=change.moved, change=change.to_dict())
    log.info("challenger: %s -> %s%s", verdict.reason, verdict.action,
             "" if decision["applied"] or verdict.action == perf.KEEP else f" (not applied: {decision.get('note')})")
    return decision


def _finish_performance(run_dir: Path, result: dict[str, Any], started: float) -> dict[str, Any]:
    result["seconds"] = round(time.perf_counter() - started, 3)
    if not result["available"]:
        log.info("performance not available: %s", result.get("reason"))
    _write(run_dir / PERFORMANCE, result)
    return result


# --------------------------------------------------------------------------- 5. report


def assess(spec: PipelineSpec, *, data: dict[str, Any], predictions: dict[str, Any], perf: dict[str, Any]) -> list[dict[str, Any]]:
    """The breaches of this window: ``[{"kind": "drift" | "performance" | "insufficient_data", "what", "reason"}]``.

    ``insufficient_data`` (too few rows or usable values to judge drift, ``monitoring.min_rows``)
    is alerted like a breach, since the window is not known to be healthy, and never retrains.
    """
    breaches = []
    if data.get("available") and data.get("drifted"):
        breaches.append({"kind": "drift", "what": "data_drift",
                         "reason": f"{len(data.get('drifted_columns', []))} feature(s) drifted "
                                   f"(share {data['drifted_share']:.2f} >= {data['max_drifted_share']}): "
                                   + ", ".join(data.get("drifted_columns", [])[:10])})
    champion = (predictions.get("models") or {}).get("champion") or {}
    breaches.extend(insufficient_breaches(data, champion))
    if champion.get("drifted"):
        score = champion["p_value"] if champion.get("p_value") is not None else champion.get("statistic")
        breaches.append({"kind": "drift", "what": "prediction_drift",
                         "reason": f"champion v{champion['version']} scores drifted ({champion['method']} {score:.4g}, "
                                   f"threshold {champion['threshold']})"})
    if perf.get("available") and perf.get("breach"):
        breaches.append({"kind": "performance", "what": "performance",
                         "reason": f"champion v{perf['champion']['version']} {perf['metric']} {perf['breach']} on "
                                   f"[{perf['window_start']}, {perf['window_end']})"})
    return breaches


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
    scored = _read(run_dir / SCORE)
    data = _read(run_dir / DATA_DRIFT)
    preds = _read(run_dir / PREDICTION_DRIFT)
    perf = _read(run_dir / PERFORMANCE)
    client = tracking.client(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, spec.pipeline)
    earlier = tracking.find_run(client, experiment_id, run_key, MONITORING_STAGE)
    if earlier is not None and (run_dir / REPORT).exists():
        log.info("reusing MLflow monitoring run %s made by an earlier try of this run", earlier.info.run_id)
        return _read(run_dir / REPORT)

    breaches = assess(spec, data=data, predictions=preds, perf=perf)
    history = PredictionStore(predictions_url).performance_history(spec.pipeline, limit=120)
    folder = run_dir / "report"
    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    drift_result = _drift_result(data) if data.get("available") else None
    written = []
    if drift_result is not None:
        written.append(plot_drift(drift_result, plots / "drift_by_feature.png",
                                  title=f"{spec.pipeline}: feature drift, [{scored['window_start']}, {scored['window_end']})"))
    written.append(_plot_metric_over_time(spec, history, plots / "metric_over_time.png"))
    written.append(_plot_scores(spec, run_dir, scored, plots / "score_distribution.png"))

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
                       "insufficient": data.get("insufficient")},
        "prediction_drift": {"available": preds.get("available", False), "drifted": preds.get("drifted", False),
                             "state": preds.get("state", "unavailable"),
                             **{k: (preds["models"].get("champion") or {}).get(k) for k in ("method", "statistic", "p_value")}},
        "performance": {k: perf.get(k) for k in ("available", "metric", "window_start", "window_end", "rows", "breach")}
        | {"champion": perf["champion"]["value"] if perf.get("champion") else None,
           "challenger": (perf.get("challenger") or {}).get("value"),
           "decision": (perf.get("decision") or {}).get("action"),
           "decision_applied": (perf.get("decision") or {}).get("applied")},
        "breaches": breaches,
        "breach": bool(breaches),
        "seconds": {"score_batch": scored.get("seconds"), "data_drift": data.get("seconds"),
                    "prediction_drift": preds.get("seconds"), "performance": perf.get("seconds")},
    }
    html_path = _render_report(spec, summary, scored, data, preds, perf, drift_result, written, folder / "report.html",
                               render_html)
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
        **(lineage or {}),
    }
    name = f"{spec.pipeline} monitoring {scored['window_start'][:16]} .. {scored['window_end'][:16]}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
        mlflow.log_metrics(_metrics(summary, scored, data, preds, perf, time.perf_counter() - started))
        mlflow.log_artifact(str(html_path), names.REPORT_FOLDER)
        for plot in written:
            mlflow.log_artifact(str(plot), names.PLOTS_FOLDER)
        for source in (SCORE, DATA_DRIFT, PREDICTION_DRIFT, PERFORMANCE):
            mlflow.log_artifact(str(run_dir / source), names.RESULTS_FOLDER)
        mlflow.log_dict(summary, names.SUMMARY_ARTIFACT)
        # What the task returns: the report link (ctflow.links.MonitoringReportLink) reads these.
        summary.update(mlflow_run_id=run.info.run_id, mlflow_experiment_id=experiment_id,
                       report_path=names.REPORT_ARTIFACT)
    summary["report"] = str(html_path)
    _write(run_dir / REPORT, summary)
    for line in summary_lines(summary):
        log.info("%s", line)
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary for a task log, one fact per line."""
    perf = summary["performance"]
    data = summary["data_drift"]
    lines = [
        f"monitoring {summary['pipeline']} [{summary['window_start']}, {summary['window_end']}): "
        f"{summary['rows_scored']} rows, champion v{summary['champion_version']}"
        + (f", challenger v{summary['challenger_version']} ({summary['strategy']})" if summary["challenger_version"] else ""),
        "  data drift: " + (f"insufficient data, no verdict: {data.get('insufficient')}"
                             if data.get("state") == "insufficient_data" else
                             f"share {data['drifted_share']:.2f}, drifted: {', '.join(data['drifted_columns']) or 'none'}"
                             if data["available"] else "not available"),
        "  prediction drift: " + ("DRIFT" if summary["prediction_drift"]["drifted"] else "ok"
                                   if summary["prediction_drift"]["available"] else "not available"),
        "  performance: " + (f"{perf['metric']} champion {perf['champion']:.4f}"
                              + (f", challenger {perf['challenger']:.4f}" if perf.get("challenger") is not None else "")
                              + (f" -> {perf['decision']}" if perf.get("decision") else "")
                              if perf["available"] else "not available yet"),
        "  breaches: " + ("; ".join(f"{b['kind']}: {b['reason']}" for b in summary["breaches"]) or "none"),
    ]
    return lines


# --------------------------------------------------------------------------- 6. actions


def actions(spec: PipelineSpec, *, run_dir: Path, dry_run: bool = False,
            last_trained: datetime | None = None) -> dict[str, Any]:
    """What the window's breaches call for: alerts, and the breach event (which retrains).

    A window that was not scored because there is no champion yet asks for a training when
    ``schedule.retrain_on`` has ``no_champion``: a cold start whose first candidates failed
    (data quality, floors) retries with every monitoring run instead of waiting for the cron.

    :param last_trained: the data time of the newest training
        (:func:`ctflow.core.tracking.latest_training_as_of`), for ``schedule.retrain_cooldown``.
    """
    if not (run_dir / REPORT).exists():
        return _without_report(spec, run_dir=run_dir, dry_run=dry_run)
    summary = _read(run_dir / REPORT)
    kinds = sorted({b["kind"] for b in summary["breaches"]})
    retrain_kinds = [k for k in kinds if k in spec.schedule.retrain_on]
    cooling = cooldown_reason(spec, datetime.fromisoformat(summary["window_end"]), last_trained) if retrain_kinds else None
    if cooling:
        retrain_kinds = []
    decision = {
        "breach": bool(kinds),
        "kinds": kinds,
        "alert": bool(kinds) and not dry_run,
        "emit": bool(retrain_kinds) and not dry_run,
        "retrain_kinds": retrain_kinds,
        "dry_run": dry_run,
        "window_start": summary["window_start"],
        "window_end": summary["window_end"],
        "champion_version": summary["champion_version"],
        "mlflow_run_id": summary.get("mlflow_run_id"),
    }
    if not kinds:
        decision["reason"] = "no breach in this window"
    elif dry_run:
        decision["reason"] = f"dry run: breach ({', '.join(kinds)}) reported, no alert and no retraining"
    elif cooling:
        decision["reason"] = f"breach ({', '.join(kinds)}) alerted, not retrained: {cooling}"
    elif not retrain_kinds:
        decision["reason"] = (f"breach ({', '.join(kinds)}) alerted; schedule.retrain_on "
                              f"({', '.join(spec.schedule.retrain_on) or 'empty'}) does not retrain on it")
    else:
        decision["reason"] = f"breach ({', '.join(kinds)}): alert and trigger {spec.ct_dag_id}"
    return decision


def cooldown_reason(spec: PipelineSpec, window_end: datetime, last_trained: datetime | None) -> str | None:
    """Why a breach of the window ending at ``window_end`` does not retrain yet
    (``schedule.retrain_cooldown``), or None if it may. The replay applies the same rule."""
    cooldown = spec.schedule.retrain_cooldown
    if cooldown is None or last_trained is None or window_end - last_trained >= cooldown:
        return None
    age = window_end - last_trained
    when = f"{format_duration(age)} before" if age >= timedelta(0) else f"{format_duration(-age)} after"
    return (f"the newest training is as of {last_trained.isoformat()}, {when} this window's end; "
            f"schedule.retrain_cooldown is {format_duration(cooldown)}")


def _without_report(spec: PipelineSpec, *, run_dir: Path, dry_run: bool) -> dict[str, Any]:
    decision: dict[str, Any] = {"breach": False, "kinds": [], "alert": False, "emit": False, "retrain_kinds": [],
                                "dry_run": dry_run}
    if not (run_dir / NO_CHAMPION).exists():
        return {**decision, "reason": "nothing to act on: the window was neither scored nor reported"}
    facts = _read(run_dir / NO_CHAMPION)
    wanted = "no_champion" in spec.schedule.retrain_on
    decision.update(kinds=["no_champion"], retrain_kinds=["no_champion"] if wanted else [],
                    emit=wanted and not dry_run, window_start=facts["window_start"], window_end=facts["window_end"],
                    champion_version=None, mlflow_run_id=None)
    if not wanted:
        decision["reason"] = (f"no champion to monitor; schedule.retrain_on has no 'no_champion', so the next "
                              f"training is {spec.ct_dag_id}'s schedule or a manual run")
    elif dry_run:
        decision["reason"] = "dry run: no champion to monitor, no training requested"
    else:
        decision["reason"] = f"no champion to monitor: trigger {spec.ct_dag_id} as of {facts['window_end']}"
    return decision


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


# --------------------------------------------------------------------------- helpers


def _reference(run_dir: Path, run_id: str | None, name: str, *, tracking_uri: str | None, who: str) -> Path | None:
    """``reference/<name>`` of a model's training run, downloaded once per DAG run; None if absent."""
    if not run_id:
        return None
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from ctflow import settings

    folder = run_dir / "reference" / who
    local = folder / name  # where MLflow puts a single downloaded file
    if local.exists():
        return local
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"reference/{name}", dst_path=str(folder),
                                                        tracking_uri=tracking_uri or settings.mlflow_tracking_uri()))
    except (MlflowException, OSError) as err:
        log.warning("run %s has no reference/%s: %s", run_id, name, err)
        return None


def _drift_result(data: dict[str, Any]) -> DriftResult:
    from ctflow.core.drift import ColumnDrift, DriftResult

    columns = [
        ColumnDrift(**{**c, "statistic": math.nan if c["statistic"] is None else c["statistic"]}) for c in data["columns"]
    ]
    return DriftResult(columns, data["drifted_share"], data["drifted"], data["max_drifted_share"],
                       data.get("insufficient"))


def _metrics(summary, scored, data, preds, perf, report_seconds: float) -> dict[str, float]:
    metrics: dict[str, float] = {
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
    if data.get("available") and data.get("insufficient"):
        metrics[names.DRIFT_INSUFFICIENT_METRIC] = 1.0  # and no share: 0 would read as "no drift"
    elif data.get("available"):
        metrics[names.DRIFT_SHARE_METRIC] = data["drifted_share"]
        metrics[names.DRIFTED_COLUMNS_METRIC] = len(data["drifted_columns"])
        for column in data["columns"]:
            value = column["p_value"] if column["p_value"] is not None else column["statistic"]
            if value is not None:
                metrics[names.column_drift_metric(_metric_key(column["column"]))] = value
    for who, model in (preds.get("models") or {}).items():
        if model.get("available") and model.get("statistic") is not None:
            metrics[names.prediction_drift_metric(who, "statistic")] = model["statistic"]
            if model.get("p_value") is not None:
                metrics[names.prediction_drift_metric(who, "p_value")] = model["p_value"]
    if perf.get("available"):
        metrics[names.performance_metric("champion", perf["metric"])] = perf["champion"]["value"]
        metrics["performance.rows"] = perf["rows"]
        if (perf.get("challenger") or {}).get("value") is not None:
            metrics[names.performance_metric("challenger", perf["metric"])] = perf["challenger"]["value"]
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def _metric_key(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def _plot_metric_over_time(spec: PipelineSpec, history: list, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    if history:
        ends = [r.window_end for r in history]
        ax.plot(ends, [r.champion_value for r in history], marker="o", label="champion")
        challenger = [(r.window_end, r.challenger_value) for r in history if r.challenger_value is not None]
        if challenger:
            ax.plot(*zip(*challenger), marker="s", linestyle="--", label="challenger")
        config = spec.monitoring.performance
        for bound, label in ((config.min if config else None, "min"), (config.max if config else None, "max")):
            if bound is not None:
                ax.axhline(bound, color="#c0392b", linestyle=":", label=f"{label} {bound}")
        if len(history) == 1:  # one point: a few days around it, not matplotlib's default of years
            ax.set_xlim(ends[0] - timedelta(days=3), ends[0] + timedelta(days=3))
        ax.legend(fontsize=8)
        fig.autofmt_xdate()
        metric = history[-1].metric
    else:
        metric = (spec.monitoring.performance.metric if spec.monitoring.performance else spec.evaluation.metric)
        ax.text(0.5, 0.5, "no ground-truth window evaluated yet", ha="center", va="center", transform=ax.transAxes)
    ax.set(title=f"{spec.pipeline}: {metric} per ground-truth window", ylabel=metric, xlabel="window end (UTC)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_scores(spec: PipelineSpec, run_dir: Path, scored: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(run_dir / WINDOW_FRAME, columns=[CHAMPION_SCORE, CHALLENGER_SCORE])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    series = []
    reference = run_dir / "reference" / "champion" / "scores.npy"  # prediction_drift downloaded it
    if reference.exists():
        series.append((f"champion v{scored['champion']['version']}, training holdout", np.load(reference)))
    series.append((f"champion v{scored['champion']['version']}, this window", frame[CHAMPION_SCORE].dropna().to_numpy()))
    if scored.get("challenger"):
        series.append((f"challenger v{scored['challenger']['version']}, this window",
                       frame[CHALLENGER_SCORE].dropna().to_numpy()))
    values = [v for _, v in series if len(v)]
    if values:
        low = min(float(v.min()) for v in values)
        high = max(float(v.max()) for v in values)
        bins = np.linspace(low, high if high > low else low + 1, 41)
        for label, v in series:
            if len(v):
                ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.5, label=f"{label} ({len(v)})")
        ax.legend(fontsize=7)
    ax.set(title=f"{spec.pipeline}: score distributions", xlabel="score", ylabel="density")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _render_report(spec, summary, scored, data, preds, perf, drift_result, plots, path: Path, render_html) -> Path:
    import html as h

    title = f"ctflow monitoring: {spec.pipeline}, [{scored['window_start']}, {scored['window_end']})"
    if drift_result is not None:
        render_html(drift_result, path, title=title)
        page = path.read_text(encoding="utf-8")
    else:
        page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{h.escape(title)}</title></head>"
                f"<body><h1>{h.escape(title)}</h1><p>Data drift not available: {h.escape(str(data.get('reason')))}</p>"
                "</body></html>")

    def row(*cells: Any) -> str:
        return "<tr>" + "".join(f"<td>{h.escape('-' if c is None else str(c))}</td>" for c in cells) + "</tr>"

    breaches = "".join(f"<li><b>{h.escape(b['kind'])}</b>: {h.escape(b['reason'])}</li>" for b in summary["breaches"])
    perf_rows = [row("champion", perf["champion"]["version"] if perf.get("champion") else None,
                     _rounded(perf["champion"]["value"]) if perf.get("champion") else None)]
    if perf.get("challenger"):
        perf_rows.append(row("challenger", perf["challenger"]["version"], _rounded(perf["challenger"]["value"])))
    decision = perf.get("decision") or {}
    preds_rows = [row(who, m.get("version"), m.get("method"), _rounded(m.get("statistic")), _rounded(m.get("p_value")),
                      m.get("threshold"), "drift" if m.get("drifted") else "ok")
                  for who, m in (preds.get("models") or {}).items() if m.get("available")]
    images = "".join(
        f"<h3>{h.escape(p.stem.replace('_', ' '))}</h3><img alt=\"{h.escape(p.stem)}\" "
        f"src=\"data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}\">" for p in plots
    )
    extra = f"""
<h2>Breaches</h2><ul>{breaches or '<li>none</li>'}</ul>
<h2>Performance</h2>
<p>{h.escape(perf['metric'])} on the ground-truth window [{h.escape(perf['window_start'])}, {h.escape(perf['window_end'])})
({perf.get('rows', 0)} labelled rows{'' if perf.get('available') else ': ' + h.escape(str(perf.get('reason')))}).
{h.escape('Breach: ' + perf['breach']) if perf.get('breach') else ''}</p>
<table><thead><tr><th>model</th><th>version</th><th>{h.escape(perf['metric'])}</th></tr></thead><tbody>{''.join(perf_rows)}</tbody></table>
<p>{h.escape(decision.get('reason', '')) + (' &rarr; ' + h.escape(decision['action']) if decision else '')}</p>
<h2>Prediction drift</h2>
<table><thead><tr><th>model</th><th>version</th><th>method</th><th>statistic</th><th>p-value</th><th>threshold</th>
<th>verdict</th></tr></thead><tbody>{''.join(preds_rows) or row('not available')}</tbody></table>
<h2>Computation</h2>
<table><tbody>{row('rows scored', scored['rows'])}{row('scoring seconds per 1,000 rows', scored['scoring_seconds_per_1000_rows'])}
{row('feature retrieval seconds', scored['feature_seconds'])}{''.join(row(f'{k} seconds', v) for k, v in summary['seconds'].items())}</tbody></table>
<h2>Plots</h2>{images}
"""
    page = page.replace("</body>", extra + "</body>", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _small(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "path"}


def _short(err: Exception, limit: int = 200) -> str:
    text = str(err)
    return text if len(text) <= limit else text[: limit - 3] + "..."




def read_frame(run_dir: Path) -> pd.DataFrame:
    """The scored window (entity rows, features, scores) a run left behind."""
    import pandas as pd

    return pd.read_parquet(run_dir / WINDOW_FRAME)
