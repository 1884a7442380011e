"""The champion's performance estimated from its scores before their labels arrive (monitoring step 3b).

The estimate itself is :mod:`ctflow.core.monitoring.estimate`'s (CBPE); here it meets the run
folder, the champion's labelled holdout (``reference/scores.npy`` and ``reference/labels.npy`` of
its training run) and the spec.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.contract import monitoring as names
from ctflow.core.monitoring.files import CHAMPION_SCORE, ESTIMATED_PERFORMANCE, SCORE, WINDOW_FRAME, _reference
from ctflow.core.run_files import read_result, write_result

if TYPE_CHECKING:
    from ctflow.core.monitoring.estimate import Reference
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


def estimated_performance(spec: PipelineSpec, *, run_dir: Path, tracking_uri: str | None = None) -> dict[str, Any]:
    """The champion's metric estimated on the scoring window before its labels arrive (CBPE,
    :mod:`ctflow.core.monitoring.estimate`), against its labelled holdout (``reference/labels.npy``).

    ``breach``: the estimate is outside ``monitoring.performance``'s bounds, or worse than the
    holdout's estimate by more than the band; the policy acts on it only when
    ``monitoring.estimated_performance`` is on (``enabled``). Rides in the prediction-drift task:
    same inputs.
    """
    import pandas as pd

    from ctflow.core.monitoring.estimate import estimate_window
    from ctflow.spec.catalog import higher_is_better

    started = time.perf_counter()
    scored = read_result(run_dir / SCORE)
    champion = scored["champion"]
    config = spec.monitoring.performance
    metric = config.metric if config else spec.evaluation.metric
    result: dict[str, Any] = {"available": False, "metric": metric, "version": champion["version"], "value": None,
                              "breach": None, "enabled": spec.monitoring.estimated_performance,
                              "window_start": scored.get("window_start"), "window_end": scored.get("window_end")}
    current = pd.read_parquet(run_dir / WINDOW_FRAME, columns=[CHAMPION_SCORE])[CHAMPION_SCORE].dropna().to_numpy(float)
    reference, reason = champion_reference(spec, champion, len(current), run_dir=run_dir, tracking_uri=tracking_uri)
    if reference is not None:
        estimate = estimate_window(reference, current, higher_is_better=higher_is_better(spec.model.task, metric))
        result.update(estimate.to_dict(), available=estimate.value is not None,
                      breach=(config.breach(estimate.value) if config else None) or estimate.drop)
        reason = None if estimate.value is not None else f"{metric} has no expected value on these scores"
    if reason:
        result["reason"] = reason
    result["seconds"] = round(time.perf_counter() - started, 3)
    write_result(run_dir / ESTIMATED_PERFORMANCE, result)
    log.info("estimated performance of champion v%s: %s", champion["version"],
             f"{metric} {result['value']:.4f}" + (f" - BREACH: {result['breach']}" if result["breach"] else "")
             if result["available"] else f"not available: {reason}")
    return result


def champion_reference(spec: PipelineSpec, champion: dict[str, Any], rows: int, *, run_dir: Path,
                       tracking_uri: str | None) -> tuple[Reference | None, str | None]:
    """The champion's labelled holdout fitted for the monitored metric's estimate, or why there is none."""
    import numpy as np

    from ctflow.core.monitoring.estimate import SUPPORTED_TASKS, Reference

    if spec.model.task not in SUPPORTED_TASKS:
        return None, f"performance estimation is not supported for {spec.model.task} yet"
    if rows < spec.monitoring.min_rows:
        return None, f"{rows} scored rows < monitoring.min_rows {spec.monitoring.min_rows}"
    scores, labels = (_reference(run_dir, champion["run_id"], name, tracking_uri=tracking_uri, who="champion")
                      for name in (names.REFERENCE_SCORES_FILE, names.REFERENCE_LABELS_FILE))
    if scores is None or labels is None:
        return None, (f"champion v{champion['version']} has no labelled holdout ({names.REFERENCE_FOLDER}/"
                      f"{names.REFERENCE_LABELS_FILE}): it was trained before ctflow kept one")
    metric = spec.monitoring.performance.metric if spec.monitoring.performance else spec.evaluation.metric
    threshold = _threshold(spec, metric, champion, tracking_uri)
    return Reference.fit(metric, np.load(scores), np.load(labels), threshold=threshold), None


def _threshold(spec: PipelineSpec, metric: str, champion: dict[str, Any], tracking_uri: str | None) -> float:
    """The champion's decision threshold for a label metric (its version's tag, else the spec's)."""
    from ctflow.core.monitoring.estimate import ESTIMATORS
    from ctflow.core.registry import ModelRegistry
    from ctflow.core.threshold import DEFAULT, of_version

    if not ESTIMATORS[metric][1]:
        return DEFAULT  # a ranking or loss metric: no threshold involved
    version = ModelRegistry(spec.model_name, tracking_uri=tracking_uri).get_version(champion["version"])
    threshold = of_version(spec.model, version.tags)
    return DEFAULT if threshold is None else threshold


def estimated_on(spec: PipelineSpec, champion: dict[str, Any], scores: Any, *, run_dir: Path,
                  tracking_uri: str | None) -> float | None:
    """What the estimate says of these labelled rows' scores: estimated beside realized, same rows."""
    try:
        reference, _ = champion_reference(spec, champion, len(scores), run_dir=run_dir, tracking_uri=tracking_uri)
        return reference.estimate(scores) if reference is not None else None
    except Exception as err:  # noqa: BLE001 - the estimate is a hint: it must not stop judging the champion
        log.warning("no performance estimate of the labelled rows: %s: %s", type(err).__name__, err)
        return None
