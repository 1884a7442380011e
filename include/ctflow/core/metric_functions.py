"""The metric functions the registry (:data:`ctflow.spec.catalog.METRIC_REGISTRY`) names where
scikit-learn has none that computes exactly ctflow's metric.

Each takes ``(y_true, scores)`` as arrays and returns a float; NaN means "not defined for
these rows" and :func:`ctflow.core.evaluation.compute_metrics` drops it.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def rmse(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((scores - y_true) ** 2)))


def mae(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(scores - y_true)))


def r2(y_true: np.ndarray, scores: np.ndarray) -> float:
    """R²; NaN for a single row, where it is undefined (scikit-learn would warn and return NaN)."""
    return float(skm.r2_score(y_true, scores)) if len(y_true) > 1 else float("nan")


def log_loss(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Log loss of binary scores; a score of exactly 0 or 1 is clipped so one confident miss
    gives a large finite loss instead of infinity."""
    return float(skm.log_loss(y_true, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1]))
