"""The champion's performance estimated from its scores before their labels arrive (monitoring step 3b).

The estimate itself is :mod:`ctflow.core.monitoring.estimate`'s (CBPE); here it meets the run
folder, the champion's labelled holdout (``reference/scores.npy`` and ``reference/labels.npy`` of
its training run) and the spec. :func:`judge_window` is the pure verdict on arrays, shared with
the replay's ``ctflow`` policy (:mod:`ctflow.core.replay.policies`), which fits the same reference
from its models' holdouts.
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
    :mod:`ctflow.core.monitoring.estimate`), against its labelled holdout (``reference/labels.npy``):
    :func:`judge_window` on the window frame's champion scores, written to ``estimated_performance.json``.

    Rides in the prediction-drift task: same inputs.
    """
    import pandas as pd

    started = time.perf_counter()
    scored = read_result(run_dir / SCORE)
    champion = scored["champion"]
    current = pd.read_parquet(run_dir / WINDOW_FRAME, columns=[CHAMPION_SCORE])[CHAMPION_SCORE].dropna().to_numpy(float)
    reference, reason = champion_reference(spec, champion, len(current), run_dir=run_dir, tracking_uri=tracking_uri)
    result = judge_window(spec, reference, current, version=champion["version"], reason=reason,
                          window_start=scored.get("window_start"), window_end=scored.get("window_end"))
    result["seconds"] = round(time.perf_counter() - started, 3)
    write_result(run_dir / ESTIMATED_PERFORMANCE, result)
    log.info("estimated performance of champion v%s: %s", champion["version"],
             f"{result['metric']} {result['value']:.4f}" + (f" - BREACH: {result['breach']}" if result["breach"] else "")
             if result["available"] else f"not available: {result.get('reason')}")
    return result


def estimated_metric(spec: PipelineSpec) -> str:
    """The metric the estimate is of: ``monitoring.performance``'s, else ``evaluation.metric``."""
    config = spec.monitoring.performance
    return config.metric if config else spec.evaluation.metric


def estimation_problem(spec: PipelineSpec, rows: int) -> str | None:
    """Why a window of ``rows`` scored rows gets no estimate under ``spec``, or None."""
    from ctflow.core.monitoring.estimate import SUPPORTED_TASKS

    if spec.model.task not in SUPPORTED_TASKS:
        return f"performance estimation is not supported for {spec.model.task} yet"
    if rows < spec.monitoring.min_rows:
        return f"{rows} scored rows < monitoring.min_rows {spec.monitoring.min_rows}"
    return None


def fit_reference(spec: PipelineSpec, scores: Any, labels: Any, *, threshold: float) -> Reference:
    """The champion's labelled holdout (time-ordered, as ``steps.train`` stores it) fitted for the
    estimate of :func:`estimated_metric`."""
    from ctflow.core.monitoring.estimate import Reference

    return Reference.fit(estimated_metric(spec), scores, labels, threshold=threshold)


def judge_window(spec: PipelineSpec, reference: Reference | None, current: Any, *, version: Any,
                 window_start: str | None, window_end: str | None, reason: str | None = None) -> dict[str, Any]:
    """The estimate of a window as ``estimated_performance.json`` records it. Pure: the monitoring
    DAG (:func:`estimated_performance`) and the replay's ``ctflow`` policy both judge here.

    :param reference: the champion's :func:`fit_reference`, or None with ``reason`` why there is none.
    :param current: the champion's scores on the window, missing ones dropped.

    ``breach``: the estimate is outside ``monitoring.performance``'s bounds, or worse than the
    holdout's estimate by more than the band; the policy acts on it only when
    ``monitoring.estimated_performance`` is on (``enabled``).
    """
    from ctflow.core.monitoring.estimate import estimate_window
    from ctflow.spec.catalog import higher_is_better

    config = spec.monitoring.performance
    metric = estimated_metric(spec)
    result: dict[str, Any] = {"available": False, "metric": metric, "version": version, "value": None,
                              "breach": None, "enabled": spec.monitoring.estimated_performance,
                              "window_start": window_start, "window_end": window_end}
    if reference is not None:
        estimate = estimate_window(reference, current, higher_is_better=higher_is_better(spec.model.task, metric))
        result.update(estimate.to_dict(), available=estimate.value is not None,
                      breach=(config.breach(estimate.value) if config else None) or estimate.drop)
        reason = None if estimate.value is not None else f"{metric} has no expected value on these scores"
    if reason:
        result["reason"] = reason
    return result


def realized_breach(spec: PipelineSpec, reference: Reference | None, realized: float | None, rows: int) -> str | None:
    """The estimate's rule (:func:`judge_window`) on the metric the labels give for a window of
    ``rows`` once they come: outside ``monitoring.performance``'s bounds, or worse than the
    reference's own realized metric by more than the band of realized metrics
    (:meth:`~ctflow.core.monitoring.estimate.Reference.band`). What the estimate's breaches are
    compared with: without a floor, a drop the labels confirm is a breach, not a false alarm."""
    from ctflow.core.monitoring.estimate import significant_drop
    from ctflow.spec.catalog import higher_is_better

    config = spec.monitoring.performance
    bounds = config.breach(realized) if config else None
    if bounds or reference is None:
        return bounds
    return significant_drop(realized, reference.own_realized(), reference.band(rows, realized=True),
                            higher_is_better=higher_is_better(spec.model.task, reference.metric), what="realized")


def champion_reference(spec: PipelineSpec, champion: dict[str, Any], rows: int, *, run_dir: Path,
                       tracking_uri: str | None) -> tuple[Reference | None, str | None]:
    """The champion's labelled holdout fitted for the monitored metric's estimate, or why there is none."""
    import numpy as np

    problem = estimation_problem(spec, rows)
    if problem:
        return None, problem
    scores, labels = (_reference(run_dir, champion["run_id"], name, tracking_uri=tracking_uri, who="champion")
                      for name in (names.REFERENCE_SCORES_FILE, names.REFERENCE_LABELS_FILE))
    if scores is None or labels is None:
        return None, (f"champion v{champion['version']} has no labelled holdout ({names.REFERENCE_FOLDER}/"
                      f"{names.REFERENCE_LABELS_FILE}): it was trained before ctflow kept one")
    threshold = _threshold(spec, estimated_metric(spec), champion, tracking_uri)
    return fit_reference(spec, np.load(scores), np.load(labels), threshold=threshold), None


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
