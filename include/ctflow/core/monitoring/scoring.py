"""Monitoring step 1: score the window with the champion (and the challenger) and store the predictions."""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.core.monitoring.files import (
    ARM,
    CHALLENGER_SCORE,
    CHAMPION_SCORE,
    NO_CHAMPION,
    SCORE,
    WINDOW_FRAME,
    _small,
    write_result,
)
from ctflow.core.timing import window as time_window

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ctflow.core.registry import ModelRegistry
    from ctflow.core.scoring import ServingModel
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


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

    from ctflow.core import tracking
    from ctflow.core.features import pipeline_repo
    from ctflow.core.predictions import PredictionStore, entity_keys
    from ctflow.core.registry import ModelRegistry
    from ctflow.core.scoring import ServingModel, canary_mask, join_keys, window_frame

    started = time.perf_counter()
    repo = pipeline_repo(spec, feature_repo)
    start, end = time_window(as_of, spec.monitoring.window)
    tracking.client(tracking_uri)  # model URIs resolve against this registry
    registry = ModelRegistry(spec.model_name, tracking_uri=tracking_uri)
    champion = ServingModel.resolve(registry, "champion", spec)
    if champion is None:
        reason = (f"no champion yet: registered model {spec.model_name!r} has no 'champion' alias; "
                  f"run {spec.ct_dag_id} first (nothing to monitor)")
        log.info("%s", reason)
        # act_on_breach reads this to ask for a training (schedule.retrain_on: no_champion).
        write_result(run_dir / NO_CHAMPION, {"reason": reason, "window_start": start.isoformat(),
                                       "window_end": end.isoformat()})
        return {"skipped": True, "reason": reason}
    (run_dir / NO_CHAMPION).unlink(missing_ok=True)  # a re-run after a champion appeared
    challenger = _challenger(spec, registry, champion)

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
        except Exception as err:  # noqa: BLE001 - a broken challenger must not stop monitoring of the champion
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

    records = _prediction_records(spec, keys, frame[spec.data.timestamp],
                                  ((champion, champion_scores, champion_rows), (challenger, challenger_scores, to_challenger)))
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
    write_result(run_dir / SCORE, result)
    log.info("scored %s rows of [%s, %s) with champion v%s%s; %s predictions stored", n, start, end, champion.number,
             f" and challenger v{challenger.number} ({strategy}, {int(to_challenger.sum())} rows)" if challenger else "",
             written)
    return _small(result)


def _challenger(spec: PipelineSpec, registry: ModelRegistry, champion: ServingModel) -> ServingModel | None:
    """The model scoring beside the champion (shadow or canary), or None."""
    from ctflow.core.scoring import ServingModel

    challenger = ServingModel.resolve(registry, "challenger", spec) if spec.registry.strategy != "direct" else None
    if challenger is not None and challenger.number == champion.number:
        return None  # already promoted: one model serves
    return challenger


def _prediction_records(
    spec: PipelineSpec,
    keys: list[str],
    timestamps: pd.Series,
    arms: tuple[tuple[ServingModel | None, np.ndarray, np.ndarray], ...],
) -> list[dict[str, Any]]:
    """The rows for the prediction store: one per row each model scored (``arms``: model, scores, row mask)."""
    import numpy as np

    records: list[dict[str, Any]] = []
    for model, scores, mask in arms:
        if model is None:
            continue
        for i in np.flatnonzero(mask):
            value = float(scores[i])
            records.append({
                "model_name": spec.model_name, "model_version": model.number, "alias": model.alias, "row": int(i),
                "entity_key": keys[i], "event_timestamp": timestamps.iloc[i],
                "score": None if math.isnan(value) else value,
            })
    return records
