"""The champion's performance estimated from its scores before their labels arrive (monitoring step 3b).

The estimate itself is :mod:`ctflow.core.monitoring.estimate`'s (CBPE, classification) or
:mod:`ctflow.core.monitoring.estimate_loss`'s (DLE, regression); here it meets the run folder, the
champion's labelled holdout (``reference/scores.npy``, ``reference/labels.npy`` and, for
regression, ``reference/features.parquet`` of its training run) and the spec. :func:`judge_window`
is the pure verdict on arrays, shared with the replay's ``ctflow`` policy
(:mod:`ctflow.core.replay.policies`), which fits the same reference from its models' holdouts.
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
    from ctflow.core.monitoring.estimate import EstimateReference
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


def estimated_performance(spec: PipelineSpec, *, run_dir: Path, tracking_uri: str | None = None) -> dict[str, Any]:
    """The champion's metric estimated on the scoring window before its labels arrive (CBPE or DLE),
    against its labelled holdout (``reference/labels.npy``): :func:`judge_window` on the window
    frame's champion scores (and, for DLE, the same rows' features), written to
    ``estimated_performance.json``.

    Rides in the prediction-drift task: same inputs.
    """
    import pandas as pd

    started = time.perf_counter()
    scored = read_result(run_dir / SCORE)
    champion = scored["champion"]
    scores = pd.read_parquet(run_dir / WINDOW_FRAME, columns=[CHAMPION_SCORE])[CHAMPION_SCORE]
    current = scores.dropna().to_numpy(float)
    reference, reason = champion_reference(spec, champion, len(current), run_dir=run_dir, tracking_uri=tracking_uri)
    features = None
    if reference is not None and reference.columns:
        features, reason = _window_features(run_dir, reference.columns, scores.notna().to_numpy())
        reference = reference if features is not None else None
    result = judge_window(spec, reference, current, features=features, version=champion["version"], reason=reason,
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


def _window_features(run_dir: Path, columns: tuple[str, ...], scored: Any) -> tuple[Any, str | None]:
    """The window frame's ``columns`` on its ``scored`` rows (the loss model's inputs), or why not."""
    import pandas as pd

    try:
        frame = pd.read_parquet(run_dir / WINDOW_FRAME, columns=list(columns))
    except (KeyError, ValueError) as err:  # pyarrow names a missing column with one or the other
        return None, f"the window lacks the champion's holdout features: {type(err).__name__}: {err}"
    return frame[scored].reset_index(drop=True), None


def estimate_kind(task: str) -> type[EstimateReference]:
    """How ``task``'s performance is estimated: CBPE for classification, DLE for regression (the
    one place a task picks its estimate: its metrics, its holdout needs and its fit)."""
    from ctflow.core.monitoring.estimate import Reference
    from ctflow.core.monitoring.estimate_loss import LossReference

    return LossReference if task == "regression" else Reference


def estimation_problem(spec: PipelineSpec, rows: int) -> str | None:
    """Why a window of ``rows`` scored rows gets no estimate under ``spec``, or None."""
    metric, supported = estimated_metric(spec), estimate_kind(spec.model.task).metrics
    if metric not in supported:
        return (f"performance estimation of {metric} is not supported for {spec.model.task} "
                f"(estimated: {', '.join(supported)})")
    if rows < spec.monitoring.min_rows:
        return f"{rows} scored rows < monitoring.min_rows {spec.monitoring.min_rows}"
    return None


def holdout_order(times: Any) -> Any:
    """The holdout's rows in time order (ties as they come): the order the estimate's band cuts
    into contiguous chunks, as training stores the holdout and the replay fits it."""
    import numpy as np

    return np.argsort(np.asarray(times), kind="stable")


def write_holdout(folder: Path, task: str, *, scores: Any, labels: Any, times: Any, features: Any) -> None:
    """A trained model's labelled holdout in ``folder`` (its ``reference/``), in time order, as
    :func:`champion_reference` reads it: the scores, the labels and, when ``task``'s estimate reads
    them (:func:`estimate_kind`), the model ``features``; a file an earlier try left is removed."""
    import numpy as np

    order = holdout_order(times)
    np.save(folder / names.REFERENCE_SCORES_FILE, np.asarray(scores, dtype="float64")[order])
    np.save(folder / names.REFERENCE_LABELS_FILE, np.asarray(labels, dtype="float64")[order])
    if estimate_kind(task).uses_features:
        features.iloc[order].reset_index(drop=True).to_parquet(folder / names.REFERENCE_FEATURES_FILE, index=False)
    else:
        (folder / names.REFERENCE_FEATURES_FILE).unlink(missing_ok=True)


def reference_problem(spec: PipelineSpec, rows: int) -> str | None:
    """Why the champion's labelled holdout of ``rows`` rows cannot be fitted for the estimate, or None."""
    return estimate_kind(spec.model.task).problem(rows)


def fit_reference(spec: PipelineSpec, scores: Any, labels: Any, *, threshold: float,
                  features: Any = None) -> EstimateReference:
    """The champion's labelled holdout (time-ordered, as ``steps.train`` stores it) fitted for the
    estimate of :func:`estimated_metric`: CBPE's calibration, or (regression) DLE's loss model on
    the holdout's ``features``."""
    return estimate_kind(spec.model.task).fit(estimated_metric(spec), scores, labels, features, threshold=threshold)


def judge_window(spec: PipelineSpec, reference: EstimateReference | None, current: Any, *, version: Any,
                 window_start: str | None, window_end: str | None, reason: str | None = None,
                 features: Any = None) -> dict[str, Any]:
    """The estimate of a window as ``estimated_performance.json`` records it. Pure: the monitoring
    DAG (:func:`estimated_performance`) and the replay's ``ctflow`` policy both judge here.

    :param reference: the champion's :func:`fit_reference`, or None with ``reason`` why there is none.
    :param current: the champion's scores on the window, missing ones dropped.
    :param features: for DLE, the same rows' ``reference.columns`` (a frame, row for row).

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
        estimate = estimate_window(reference, current, features=features,
                                   higher_is_better=higher_is_better(spec.model.task, metric))
        result.update(estimate.to_dict(), available=estimate.value is not None,
                      breach=(config.breach(estimate.value) if config else None) or estimate.drop)
        reason = None if estimate.value is not None else f"{metric} has no expected value on these scores"
    if reason:
        result["reason"] = reason
    return result


def realized_breach(spec: PipelineSpec, reference: EstimateReference | None, realized: float | None, rows: int) -> str | None:
    """The estimate's rule (:func:`judge_window`) on the metric the labels give for a window of
    ``rows`` once they come: outside ``monitoring.performance``'s bounds, or worse than the
    reference's own realized metric by more than the band of realized metrics
    (:meth:`~ctflow.core.monitoring.estimate.EstimateReference.band`). What the estimate's breaches are
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
                       tracking_uri: str | None) -> tuple[EstimateReference | None, str | None]:
    """The champion's labelled holdout fitted for the monitored metric's estimate, or why there is none."""
    import numpy as np
    import pandas as pd

    problem = estimation_problem(spec, rows)
    if problem:
        return None, problem
    scores, labels = (_reference(run_dir, champion["run_id"], name, tracking_uri=tracking_uri, who="champion")
                      for name in (names.REFERENCE_SCORES_FILE, names.REFERENCE_LABELS_FILE))
    if scores is None or labels is None:
        return None, (f"champion v{champion['version']} has no labelled holdout ({names.REFERENCE_FOLDER}/"
                      f"{names.REFERENCE_LABELS_FILE}): it was trained before ctflow kept one")
    holdout_labels = np.load(labels)
    problem = reference_problem(spec, len(holdout_labels))
    if problem:
        return None, problem
    features = None
    if estimate_kind(spec.model.task).uses_features:
        path = _reference(run_dir, champion["run_id"], names.REFERENCE_FEATURES_FILE, tracking_uri=tracking_uri,
                          who="champion")
        if path is None:
            return None, (f"champion v{champion['version']} has no holdout features ({names.REFERENCE_FOLDER}/"
                          f"{names.REFERENCE_FEATURES_FILE}): it was trained before ctflow kept them")
        features = pd.read_parquet(path)
    threshold = _threshold(spec, estimated_metric(spec), champion, tracking_uri)
    return fit_reference(spec, np.load(scores), holdout_labels, threshold=threshold, features=features), None


def _threshold(spec: PipelineSpec, metric: str, champion: dict[str, Any], tracking_uri: str | None) -> float:
    """The champion's decision threshold for a label metric (its version's tag, else the spec's)."""
    from ctflow.core.monitoring.estimate import ESTIMATORS
    from ctflow.core.registry import ModelRegistry
    from ctflow.core.threshold import DEFAULT, of_version

    if metric not in ESTIMATORS or not ESTIMATORS[metric][1]:
        return DEFAULT  # a ranking or loss metric: no threshold involved
    version = ModelRegistry(spec.model_name, tracking_uri=tracking_uri).get_version(champion["version"])
    threshold = of_version(spec.model, version.tags)
    return DEFAULT if threshold is None else threshold


def estimated_on(spec: PipelineSpec, champion: dict[str, Any], scores: Any, *, run_dir: Path,
                 tracking_uri: str | None, frame: Any = None) -> float | None:
    """What the estimate says of these labelled rows' scores (and, for DLE, their ``frame``'s
    features, row for row): estimated beside realized, same rows."""
    try:
        reference, _ = champion_reference(spec, champion, len(scores), run_dir=run_dir, tracking_uri=tracking_uri)
        if reference is None:
            return None
        return reference.estimate(scores, frame[list(reference.columns)] if reference.columns else None)
    except Exception as err:  # noqa: BLE001 - the estimate is a hint: it must not stop judging the champion
        log.warning("no performance estimate of the labelled rows: %s: %s", type(err).__name__, err)
        return None
