"""Performance before labels arrive, for regression: direct loss estimation (DLE).

A regression model's error on a row is unknown until its label comes, but how large it tends to
be where the row lies is not: on the champion's labelled holdout (the *reference*), a small
gradient-boosted model learns each row's loss (``|error|`` for mae, the squared error for rmse,
``|error| / |label|`` for mape) from the row's model features and the champion's prediction. A
window's estimated metric is the mean loss that model predicts for its rows (its square root for
rmse): NannyML's DLE. A window that moves into a region where the model errs more gets a worse
estimate before a single label.

The reference's own estimate is cross-fitted (each row's loss predicted by a model fitted on the
other folds), so it is not optimistic, as CBPE's calibration is; the band is CBPE's, from the
reference's contiguous chunks (:meth:`ctflow.core.monitoring.estimate.EstimateReference.band`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ctflow.core.monitoring.estimate import EstimateReference

#: A reference with fewer labelled rows cannot fit a loss model worth trusting.
MIN_ROWS = 50
_FOLDS = 5
_SEED = 42


def _absolute(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return np.abs(scores - labels)


def _squared(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return (scores - labels) ** 2


def _percentage(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    # as sklearn.metrics.mean_absolute_percentage_error, the catalog's mape
    return np.abs(scores - labels) / np.maximum(np.abs(labels), np.finfo(np.float64).eps)


def _same(mean_loss: float) -> float:
    return mean_loss


#: metric -> (its per-row loss, the metric from the mean loss): the regression metrics of
#: :data:`ctflow.spec.catalog.METRIC_REGISTRY` that are a function of a mean per-row loss
#: (r2 is not: it divides by the labels' own spread, which the window's rows do not reveal).
LOSSES: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], Callable[[float], float]]] = {
    "mae": (_absolute, _same),
    "rmse": (_squared, lambda mean: float(np.sqrt(mean))),
    "mape": (_percentage, _same),
}


@dataclass(frozen=True)
class _Encoding:
    """The loss model's inputs from a frame of model features: numeric columns as they are,
    the others as the codes of the reference's categories (an unseen one is missing)."""

    numeric: tuple[str, ...]
    categories: dict[str, list[str]]

    @classmethod
    def of(cls, frame: Any) -> _Encoding:
        import pandas as pd

        numeric = tuple(c for c in frame.columns
                        if pd.api.types.is_numeric_dtype(frame[c].dtype) and not isinstance(frame[c].dtype, pd.CategoricalDtype))
        return cls(numeric, {str(c): sorted(set(frame[c].astype(str))) for c in frame.columns if c not in numeric})

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categories)

    def matrix(self, frame: Any, scores: np.ndarray) -> np.ndarray:
        import pandas as pd

        parts = [frame[list(self.numeric)].to_numpy(dtype="float64", na_value=np.nan)] if self.numeric else []
        for column, known in self.categories.items():
            codes = pd.Categorical(frame[column].astype(str), categories=known).codes.astype("float64")
            parts.append(np.where(codes < 0, np.nan, codes)[:, None])
        return np.column_stack([*parts, scores])


def _loss_model() -> Any:
    """Small, fast and deterministic: few shallow trees, no early-stopping split, a fixed seed."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=50, learning_rate=0.1, max_leaf_nodes=8, min_samples_leaf=20,
                                         early_stopping=False, random_state=_SEED)


def _one_thread() -> Any:
    """The loss model is small: one OpenMP thread fits it fastest, and never spin-waits on a busy
    machine (5,000 rows: 0.1 s, against 17 to 33 s with the default threads on a shared 2-core host)."""
    from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: F401 - threadpoolctl limits loaded libraries only
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _predicted(model: Any, inputs: np.ndarray) -> np.ndarray:
    with _one_thread():
        return np.clip(model.predict(inputs), 0.0, None)  # a loss is never negative


@dataclass(frozen=True)
class LossReference(EstimateReference):
    """DLE's reference: the loss model learnt on the holdout's model features and predictions."""

    method: ClassVar[str] = "DLE"
    metrics: ClassVar[tuple[str, ...]] = tuple(LOSSES)
    uses_features: ClassVar[bool] = True
    encoding: _Encoding
    model: Any  # the loss model fitted on the whole reference
    losses: np.ndarray  # each reference row's predicted loss, cross-fitted

    @classmethod
    def problem(cls, rows: int) -> str | None:
        """Why a labelled holdout of ``rows`` rows cannot fit the loss model, or None."""
        if rows < MIN_ROWS:
            return f"the champion's labelled holdout has {rows} rows < {MIN_ROWS}, too few to fit a loss model (DLE)"
        return None

    @classmethod
    def fit(cls, metric: str, scores: Any, labels: Any, features: Any = None, *,
            threshold: float = 0.5) -> LossReference:
        """The reference of ``metric``: fits the loss model, and cross-fits the reference's own
        losses (no threshold: a loss involves none)."""
        from sklearn.model_selection import KFold

        if metric not in LOSSES:
            raise ValueError(f"no performance estimate for {metric!r}; estimated: {', '.join(LOSSES)}")
        if features is None:
            raise ValueError("direct loss estimation needs the holdout's model features")
        scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
        if not len(scores) == len(labels) == len(features):
            raise ValueError(f"{len(scores)} reference scores, {len(labels)} labels and {len(features)} feature rows")
        problem = cls.problem(len(scores))
        if problem:
            raise ValueError(problem)
        encoding = _Encoding.of(features)
        inputs, target = encoding.matrix(features, scores), LOSSES[metric][0](labels, scores)
        losses = np.empty_like(target)
        with _one_thread():
            for fit, rest in KFold(n_splits=_FOLDS, shuffle=True, random_state=_SEED).split(inputs):
                losses[rest] = _predicted(_loss_model().fit(inputs[fit], target[fit]), inputs[rest])
            model = _loss_model().fit(inputs, target)
        return cls(metric, scores, labels, encoding, model, losses)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.encoding.columns

    def _metric(self, losses: np.ndarray) -> float | None:
        return LOSSES[self.metric][1](float(losses.mean())) if len(losses) else None

    def estimate(self, scores: Any, features: Any = None) -> float | None:
        """The metric expected on a window's ``scores`` given its rows' ``features`` (row for row)."""
        if features is None:
            raise ValueError(f"direct loss estimation needs the window's features ({', '.join(self.columns)})")
        scores = np.asarray(scores, dtype=float)
        if not len(scores):
            return None
        return self._metric(_predicted(self.model, self.encoding.matrix(features, scores)))

    def own_estimate(self, rows: slice = slice(None)) -> float | None:
        """The metric expected on the reference's own ``rows`` (cross-fitted losses)."""
        return self._metric(self.losses[rows])

    def own_realized(self, rows: slice = slice(None)) -> float | None:
        """The metric the reference's labels give on its own ``rows``."""
        return self._metric(LOSSES[self.metric][0](self.labels[rows], self.scores[rows]))


__all__ = ["LOSSES", "MIN_ROWS", "LossReference"]
