"""A classifier's decision threshold, fixed by the spec or chosen on the holdout by its rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ctflow.spec.models import Model

#: When a rule's target is reached by no threshold, and when there is no rule.
DEFAULT = 0.5


def choose(model: Model, y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """The threshold of ``model``: its fixed one, else its rule's on these holdout labels and scores
    (:class:`ctflow.spec.models.ThresholdRule`); None for regression."""
    from sklearn.metrics import precision_recall_curve

    from ctflow.spec.models import ThresholdRule

    rule = model.decision_threshold
    if model.task != "classification" or not isinstance(rule, ThresholdRule):
        return model.threshold
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype="float64")
    if len(np.unique(y_true)) < 2:
        return DEFAULT
    # precision[i], recall[i] are those of "positive when score >= thresholds[i]" (thresholds ascending).
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    precision, recall = precision[:-1], recall[:-1]
    if rule.rule == "max_f1":
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                       where=(precision + recall) > 0)
        return float(thresholds[int(np.argmax(f1))])
    if rule.rule == "precision_at":
        reached = np.flatnonzero(precision >= rule.target)
        return float(thresholds[reached[0]]) if len(reached) else DEFAULT
    reached = np.flatnonzero(recall >= rule.target)  # recall_at: recall falls as the threshold rises
    return float(thresholds[reached[-1]]) if len(reached) else DEFAULT


def of_version(model: Model, version_tags: dict[str, str]) -> float | None:
    """The threshold a registered version was trained with (its ``ctflow.decision_threshold`` tag), else the
    spec's: a version's labels are judged as it was gated, whatever the spec says now."""
    from ctflow.contract import mlflow_tags

    if model.task != "classification":
        return None
    tagged = version_tags.get(mlflow_tags.DECISION_THRESHOLD)
    return float(tagged) if tagged else model.threshold
