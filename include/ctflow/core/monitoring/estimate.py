"""Performance before labels arrive: confidence-based performance estimation (CBPE).

A calibrated classifier's score *is* the probability of the positive class, so a window's
confusion matrix and ROC curve have an expected value without a single label: each row counts as
``p`` of a positive and ``1 - p`` of a negative (NannyML's CBPE, Kivimäki et al.). When the
model's scores are not calibrated on its labelled holdout (the *reference*), an isotonic
calibration fitted on that holdout maps them first, as NannyML does; the ranking metrics still
rank by the model's own scores.

How far a window's estimate may move by chance comes from the reference itself: its estimate on
contiguous (time-ordered) chunks, whose spread is scaled to the window's row count
(:meth:`EstimateReference.band`, shared with regression's estimate). Pure functions over arrays:
:func:`ctflow.core.monitoring.estimated.estimated_performance` feeds them.

Regression is estimated by direct loss estimation (:mod:`ctflow.core.monitoring.estimate_loss`);
:func:`estimate_window` judges either kind of :class:`EstimateReference`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

#: The band is this many standard deviations of the reference chunks' estimates (NannyML's default).
BAND_STDS = 3.0
#: The reference is cut into at least this many chunks to measure its spread.
MIN_CHUNKS = 10
#: Chunks with fewer rows say little about a window's spread: no band then.
MIN_CHUNK_ROWS = 50
_BINS = 10
_SPLITS = 10


def _expected_counts(prob: np.ndarray, decisions: np.ndarray) -> tuple[float, float, float, float]:
    """Expected ``(tp, fp, fn, tn)`` when row ``i`` is positive with probability ``prob[i]``."""
    tp = float(prob[decisions].sum())
    fp = float((1 - prob[decisions]).sum())
    fn = float(prob[~decisions].sum())
    tn = float((1 - prob[~decisions]).sum())
    return tp, fp, fn, tn


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


def _roc_auc(prob: np.ndarray, scores: np.ndarray) -> float:
    """The area under the expected ROC curve, ranking by ``scores`` (ties count half)."""
    order = np.argsort(scores, kind="mergesort")
    ranked, pos = scores[order], prob[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    pos_per = np.add.reduceat(pos, starts)
    neg_per = np.add.reduceat(1 - pos, starts)
    below = np.cumsum(neg_per) - neg_per  # negatives ranked strictly below each tie group
    return _ratio(float((pos_per * (below + 0.5 * neg_per)).sum()), float(pos_per.sum() * neg_per.sum()))


def _average_precision(prob: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of the expected precision-recall curve (scikit-learn's step sum)."""
    order = np.argsort(-scores, kind="mergesort")
    ranked, pos = scores[order], prob[order]
    ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    tp = np.cumsum(pos)[ends]
    seen = ends + 1.0
    recall_steps = np.diff(np.r_[0.0, tp]) / tp[-1] if tp[-1] > 0 else np.zeros_like(tp)
    return float((recall_steps * tp / seen).sum()) if tp[-1] > 0 else float("nan")


def _on_counts(formula: Callable[[float, float, float, float], float]) -> Callable[..., float]:
    def metric(prob: np.ndarray, scores: np.ndarray, threshold: float) -> float:
        return formula(*_expected_counts(prob, scores >= threshold))
    return metric


def _loss(formula: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., float]:
    def metric(prob: np.ndarray, scores: np.ndarray) -> float:
        return float(formula(prob, scores).mean())
    return metric


def _log_loss(prob: np.ndarray, scores: np.ndarray) -> np.ndarray:
    s = np.clip(scores, 1e-15, 1 - 1e-15)  # as ctflow.core.metric_functions.log_loss
    return -(prob * np.log(s) + (1 - prob) * np.log(1 - s))


#: metric -> (estimator, uses the decision threshold): the expected value of every classification
#: metric of :data:`ctflow.spec.catalog.METRIC_REGISTRY` under calibration.
ESTIMATORS: dict[str, tuple[Callable[..., float], bool]] = {
    "roc_auc": (_roc_auc, False),
    "average_precision": (_average_precision, False),
    "accuracy": (_on_counts(lambda tp, fp, fn, tn: _ratio(tp + tn, tp + fp + fn + tn)), True),
    "balanced_accuracy": (_on_counts(lambda tp, fp, fn, tn: (_ratio(tp, tp + fn) + _ratio(tn, tn + fp)) / 2), True),
    "precision": (_on_counts(lambda tp, fp, fn, tn: _ratio(tp, tp + fp) if tp + fp > 0 else 0.0), True),
    "recall": (_on_counts(lambda tp, fp, fn, tn: _ratio(tp, tp + fn) if tp + fn > 0 else 0.0), True),
    "f1": (_on_counts(lambda tp, fp, fn, tn: _ratio(2 * tp, 2 * tp + fp + fn) if tp > 0 else 0.0), True),
    "log_loss": (_loss(_log_loss), False),
    "brier": (_loss(lambda prob, s: prob * (1 - s) ** 2 + (1 - prob) * s**2), False),
}


def expected_metric(metric: str, prob: np.ndarray, scores: np.ndarray, *, threshold: float = 0.5) -> float | None:
    """``metric``'s expected value when row ``i`` is positive with probability ``prob[i]`` and the
    model scored it ``scores[i]``; None when undefined (no rows, no expected positive or negative)."""
    estimator, thresholded = ESTIMATORS[metric]
    if len(prob) == 0:
        return None
    value = estimator(prob, scores, threshold) if thresholded else estimator(prob, scores)
    return float(value) if np.isfinite(value) else None


def calibration_error(labels: np.ndarray, prob: np.ndarray, bins: int = _BINS) -> float:
    """Expected calibration error over equal-frequency bins of ``prob``."""
    order = np.argsort(prob, kind="mergesort")
    gaps = [abs(float(labels[b].mean()) - float(prob[b].mean())) * len(b) for b in np.array_split(order, bins) if len(b)]
    return float(sum(gaps) / len(prob))


def needs_calibration(scores: np.ndarray, labels: np.ndarray) -> bool:
    """Does an isotonic calibration fitted on part of the reference lower the calibration error on
    the rest (the held-out parts of shuffled stratified splits, pooled)? NannyML's rule."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit

    if len(np.unique(labels)) < 2 or roc_auc_score(labels, scores) > 0.999:
        return False
    splits = StratifiedShuffleSplit(n_splits=_SPLITS, test_size=0.1, random_state=42)
    tests = [(test, _isotonic(scores[fit], labels[fit]).predict(scores[test]))
             for fit, test in splits.split(scores, labels)]
    held_out = np.concatenate([test for test, _ in tests])
    calibrated = np.concatenate([prob for _, prob in tests])
    return calibration_error(labels[held_out], calibrated) < calibration_error(labels[held_out], scores[held_out])


def _isotonic(scores: np.ndarray, labels: np.ndarray) -> Any:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)


def _cross_fitted(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each reference row's calibrated probability from an isotonic fit on the other folds: the
    reference's own estimate without the optimism of judging a calibration on its own rows."""
    from sklearn.model_selection import KFold

    prob = np.empty_like(scores)
    for fit, rest in KFold(n_splits=5, shuffle=True, random_state=42).split(scores):
        prob[rest] = _isotonic(scores[fit], labels[fit]).predict(scores[rest])
    return prob


@dataclass(frozen=True)
class EstimateReference:
    """A labelled holdout (scores and labels in time order) fitted for a window's estimate: what
    :func:`estimate_window` asks of CBPE's :class:`Reference` and of DLE's
    :class:`ctflow.core.monitoring.estimate_loss.LossReference`, and the band both share."""

    #: ``CBPE`` or ``DLE``: how the estimate is made (the report names it).
    method: ClassVar[str]
    #: The metrics it estimates.
    metrics: ClassVar[tuple[str, ...]]
    #: Whether it reads the rows' model features besides the scores (the holdout's too, so
    #: training stores them: ``reference/features.parquet``).
    uses_features: ClassVar[bool] = False
    metric: str
    scores: np.ndarray
    labels: np.ndarray
    #: (chunk size, realized) -> spread of the estimate (or of the realized metric) over the
    #: reference's chunks of that size (computed once).
    _spreads: dict[tuple[int, bool], float | None] = field(default_factory=dict, repr=False, compare=False,
                                                           kw_only=True)

    @classmethod
    def problem(cls, rows: int) -> str | None:
        """Why a labelled holdout of ``rows`` rows cannot be fitted, or None."""
        return None

    @classmethod
    def fit(cls, metric: str, scores: Any, labels: Any, features: Any = None, *,
            threshold: float = 0.5) -> EstimateReference:
        """The reference of ``metric`` fitted on a holdout's ``scores``, ``labels`` and (when it
        :attr:`uses_features`) model ``features``; ``threshold`` for the metrics that decide."""
        raise NotImplementedError

    @property
    def calibrated(self) -> bool:
        return False

    @property
    def columns(self) -> tuple[str, ...]:
        """The window's feature columns the estimate reads besides the scores (none for CBPE)."""
        return ()

    def estimate(self, scores: Any, features: Any = None) -> float | None:
        """The metric expected on a window's ``scores`` (and, for DLE, its rows' ``features``)."""
        raise NotImplementedError

    def own_estimate(self, rows: slice = slice(None)) -> float | None:
        """The metric expected on the reference's own ``rows``, without the optimism of judging a
        fit on its own rows."""
        raise NotImplementedError

    def own_realized(self, rows: slice = slice(None)) -> float | None:
        """The metric the reference's labels give on its own ``rows`` (the realized one)."""
        raise NotImplementedError

    def band(self, rows: int, *, realized: bool = False) -> float | None:
        """How far a window of ``rows`` rows may stray from the reference's estimate by chance:
        :data:`BAND_STDS` standard deviations of the difference of the two, from the spread of
        the estimate over the reference's contiguous chunks (a spread that shrinks as
        ``1/sqrt(rows)``, for the window's rows and for the whole reference's). None when the
        reference is too small. ``realized``: the same for the metric the labels give
        (:meth:`own_realized`), which the labels' own chance makes spread wider than the
        estimate, an expectation over them."""
        reference_rows = len(self.scores)
        size = min(rows, reference_rows // MIN_CHUNKS)
        if rows < 1 or size < MIN_CHUNK_ROWS:
            return None
        if (size, realized) not in self._spreads:
            value_of = self.own_realized if realized else self.own_estimate
            chunks = [value_of(slice(i, i + size)) for i in range(0, reference_rows - size + 1, size)]
            values = [v for v in chunks if v is not None]
            self._spreads[size, realized] = float(np.std(values, ddof=1)) if len(values) >= 3 else None
        spread = self._spreads[size, realized]
        return None if spread is None else BAND_STDS * spread * float(np.sqrt(size / rows + size / reference_rows))


@dataclass(frozen=True)
class Reference(EstimateReference):
    """CBPE's reference: the calibration of the holdout's scores, if they need one."""

    method: ClassVar[str] = "CBPE"
    metrics: ClassVar[tuple[str, ...]] = tuple(ESTIMATORS)
    threshold: float
    calibrator: Any | None  # a fitted IsotonicRegression, or None when the scores are calibrated
    probabilities: np.ndarray  # of the reference rows (cross-fitted when calibrated)

    @classmethod
    def fit(cls, metric: str, scores: Any, labels: Any, features: Any = None, *,
            threshold: float = 0.5) -> Reference:
        """The reference of ``metric``: decides (and fits) the calibration (no features)."""
        if metric not in ESTIMATORS:
            raise ValueError(f"no performance estimate for {metric!r}; estimated: {', '.join(ESTIMATORS)}")
        scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
        if scores.shape != labels.shape:
            raise ValueError(f"{len(scores)} reference scores but {len(labels)} labels")
        if needs_calibration(scores, labels):
            return cls(metric, scores, labels, threshold, _isotonic(scores, labels), _cross_fitted(scores, labels))
        return cls(metric, scores, labels, threshold, None, scores)

    @property
    def calibrated(self) -> bool:
        return self.calibrator is not None

    def estimate(self, scores: Any, features: Any = None) -> float | None:
        """The metric expected on a window's ``scores`` (calibrated first if needed; no features)."""
        scores = np.asarray(scores, dtype=float)
        prob = np.asarray(self.calibrator.predict(scores), dtype=float) if self.calibrator is not None else scores
        return expected_metric(self.metric, prob, scores, threshold=self.threshold)

    def own_estimate(self, rows: slice = slice(None)) -> float | None:
        """The metric expected on the reference's own ``rows``."""
        return expected_metric(self.metric, self.probabilities[rows], self.scores[rows], threshold=self.threshold)

    def own_realized(self, rows: slice = slice(None)) -> float | None:
        """The metric the reference's labels give on its own ``rows`` (the expected metric when
        each row's probability is its label: the realized one)."""
        return expected_metric(self.metric, self.labels[rows], self.scores[rows], threshold=self.threshold)


@dataclass(frozen=True)
class Estimate:
    """A window's estimated metric beside the reference's, and whether it dropped significantly."""

    metric: str
    value: float | None
    reference: float | None
    band: float | None
    rows: int
    calibrated: bool
    drop: str | None  # why the estimate is significantly worse than the reference, or None
    method: str  # CBPE or DLE

    @property
    def lower(self) -> float | None:
        return None if self.reference is None or self.band is None else self.reference - self.band

    @property
    def upper(self) -> float | None:
        return None if self.reference is None or self.band is None else self.reference + self.band

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lower": self.lower, "upper": self.upper}


def estimate_window(reference: EstimateReference, scores: Any, *, higher_is_better: bool,
                    features: Any = None) -> Estimate:
    """``reference.metric`` estimated on a window's ``scores`` (and, for DLE, its rows' ``features``:
    a frame with ``reference.columns``, row for row); a *drop* is an estimate worse than the
    reference's estimate by more than the band (in the metric's direction)."""
    scores = np.asarray(scores, dtype=float)
    value = reference.estimate(scores, features)
    base, band = reference.own_estimate(), reference.band(len(scores))
    drop = significant_drop(value, base, band, higher_is_better=higher_is_better)
    return Estimate(reference.metric, value, base, band, len(scores), reference.calibrated, drop, reference.method)


def significant_drop(value: float | None, base: float | None, band: float | None, *, higher_is_better: bool,
                     what: str = "estimated") -> str | None:
    """Why ``value`` is worse than the reference's ``base`` by more than ``band`` (in the metric's
    direction), or None (also when one of them is unknown)."""
    if value is None or base is None or band is None:
        return None
    gap = base - value if higher_is_better else value - base
    if gap <= band:
        return None
    return (f"{what} {value:.4f} is {gap:.4f} {'below' if higher_is_better else 'above'} the reference's "
            f"{base:.4f} (band ±{band:.4f})")


__all__ = ["ESTIMATORS", "Estimate", "EstimateReference", "Reference", "calibration_error", "estimate_window",
           "expected_metric", "needs_calibration", "significant_drop"]
