"""What a spec may name: estimators (an allowlist with typed parameters) and metrics.

This is data, not imports: the spec is validated at DAG-parse time, where scikit-learn must
not be imported. ``tests/spec/test_catalog.py`` checks every entry against scikit-learn's
real signatures so the two cannot drift apart.

Metrics live in one registry, :data:`METRIC_REGISTRY`: each is declared once with its task,
direction and computing function, and everything else derives from it: ``METRICS`` and
``PipelineSpec.metrics`` (what a spec may name), the spec checks, the JSON Schema's lists,
the gate's direction and :func:`ctflow.core.evaluation.compute_metrics`. Metric names are
unique across tasks, so a name alone finds its direction (:func:`is_better`, :func:`worst`).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

TaskType = Literal["classification", "regression"]

# Parameter kinds are pydantic-understood Python types; `None` in a tuple means "may be null".
_INT = int
_FLOAT = float
_STR = str
_BOOL = bool


@dataclass(frozen=True)
class Estimator:
    """An estimator a spec may use: its task type and the parameters it accepts."""

    path: str
    task: TaskType
    params: dict[str, object] = field(default_factory=dict)
    #: Does it accept NaN without imputation (so the pipeline can skip imputing)?
    handles_missing: bool = False
    #: Does it want scaled numeric inputs?
    wants_scaling: bool = False


_TREE = {
    "max_depth": _INT | None,
    "min_samples_split": _INT | _FLOAT,
    "min_samples_leaf": _INT | _FLOAT,
    "max_features": _INT | _FLOAT | _STR | None,
    "n_jobs": _INT | None,
}
_HGB = {
    "learning_rate": _FLOAT,
    "max_iter": _INT,
    "max_leaf_nodes": _INT | None,
    "max_depth": _INT | None,
    "min_samples_leaf": _INT,
    "l2_regularization": _FLOAT,
    "max_features": _FLOAT,
    "max_bins": _INT,
    "early_stopping": _BOOL | _STR,
    "validation_fraction": _FLOAT | None,
    "n_iter_no_change": _INT,
}
_LINEAR = {"fit_intercept": _BOOL, "max_iter": _INT, "tol": _FLOAT}

ESTIMATORS: dict[str, Estimator] = {
    e.path: e
    for e in (
        Estimator(
            "sklearn.ensemble.HistGradientBoostingClassifier",
            "classification",
            {**_HGB, "class_weight": _STR | None},
            handles_missing=True,
        ),
        Estimator("sklearn.ensemble.HistGradientBoostingRegressor", "regression", {**_HGB, "loss": _STR}, handles_missing=True),
        Estimator(
            "sklearn.ensemble.RandomForestClassifier",
            "classification",
            {**_TREE, "n_estimators": _INT, "criterion": _STR, "class_weight": _STR | None},
        ),
        Estimator("sklearn.ensemble.RandomForestRegressor", "regression", {**_TREE, "n_estimators": _INT, "criterion": _STR}),
        Estimator(
            "sklearn.ensemble.ExtraTreesClassifier",
            "classification",
            {**_TREE, "n_estimators": _INT, "class_weight": _STR | None},
        ),
        Estimator("sklearn.ensemble.ExtraTreesRegressor", "regression", {**_TREE, "n_estimators": _INT}),
        Estimator(
            "sklearn.linear_model.LogisticRegression",
            "classification",
            {**_LINEAR, "C": _FLOAT, "solver": _STR, "class_weight": _STR | None, "l1_ratio": _FLOAT | None},
            wants_scaling=True,
        ),
        Estimator("sklearn.linear_model.Ridge", "regression", {**_LINEAR, "alpha": _FLOAT}, wants_scaling=True),
        Estimator("sklearn.linear_model.LinearRegression", "regression", {"fit_intercept": _BOOL}, wants_scaling=True),
        Estimator(
            "sklearn.tree.DecisionTreeClassifier",
            "classification",
            {k: v for k, v in _TREE.items() if k != "n_jobs"} | {"criterion": _STR, "class_weight": _STR | None},
        ),
        Estimator("sklearn.tree.DecisionTreeRegressor", "regression", {k: v for k, v in _TREE.items() if k != "n_jobs"} | {"criterion": _STR}),
        Estimator(
            "sklearn.dummy.DummyClassifier",
            "classification",
            {"strategy": _STR, "constant": _INT | _STR | None},
            handles_missing=True,
        ),
        Estimator("sklearn.dummy.DummyRegressor", "regression", {"strategy": _STR, "constant": _FLOAT | None, "quantile": _FLOAT | None}, handles_missing=True),
    )
}

# ------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metric:
    """A metric, declared once: its name, its task, its direction and what computes it.

    ``function`` names the callable as ``"module:attribute"`` and is imported on first use
    (:meth:`resolve`), never here: this module is read at DAG-parse time, where scikit-learn
    must not be imported (``tests/dags/test_parse_is_light.py``). A string, not a lambda, also
    keeps the declaration printable data that a test can check against the real function.
    Where scikit-learn has a function that computes exactly ctflow's metric it is named
    directly; where ctflow adds something (a guard, a clip) the function is a small one in
    :mod:`ctflow.core.metric_functions`.
    """

    name: str
    task: TaskType
    #: Which way is better: ``"higher"`` (AUC, R²) or ``"lower"`` (losses, errors).
    direction: Literal["higher", "lower"]
    function: str
    #: What the function gets after the labels: the model's scores, or (classification) its
    #: 0/1 decisions, a score at or above the decision threshold counting as positive.
    on: Literal["scores", "decisions"] = "scores"
    #: Keyword arguments the function is called with.
    options: Mapping[str, object] = field(default_factory=dict)
    #: Only defined when the labels hold both classes (ranking metrics); skipped otherwise.
    needs_both_classes: bool = False

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    def resolve(self) -> Callable[..., float]:
        """The computing function, imported on first use."""
        return _import_function(self.function)

    def is_better(self, value: float, other: float) -> bool:
        """Is ``value`` strictly better than ``other``?"""
        return value > other if self.higher_is_better else value < other

    def best(self, values: Iterable[float]) -> float | None:
        """The best of ``values`` in this metric's direction (None when there are none)."""
        values = list(values)
        return (max(values) if self.higher_is_better else min(values)) if values else None

    def worst(self, values: Iterable[float]) -> float | None:
        """The worst of ``values`` in this metric's direction (None when there are none)."""
        values = list(values)
        return (min(values) if self.higher_is_better else max(values)) if values else None


def _by_name(*metrics: Metric) -> dict[str, Metric]:
    # Names must be unique across tasks: the direction helpers find a metric by name alone.
    registry: dict[str, Metric] = {}
    for metric in metrics:
        if metric.name in registry:
            raise ValueError(f"metric {metric.name!r} is declared twice")
        registry[metric.name] = metric
    return registry


_SKM = "sklearn.metrics:"
_OWN = "ctflow.core.metric_functions:"
#: With no predicted (or no actual) positive, precision, recall and f1 are 0, not a warning and NaN.
_ZERO_DIVISION = {"zero_division": 0}

#: Every metric a spec may name, in the order they are listed to users.
METRIC_REGISTRY: dict[str, Metric] = _by_name(
    Metric("roc_auc", "classification", "higher", _SKM + "roc_auc_score", needs_both_classes=True),
    Metric("average_precision", "classification", "higher", _SKM + "average_precision_score", needs_both_classes=True),
    Metric("accuracy", "classification", "higher", _SKM + "accuracy_score", on="decisions"),
    Metric("balanced_accuracy", "classification", "higher", _SKM + "balanced_accuracy_score", on="decisions"),
    Metric("precision", "classification", "higher", _SKM + "precision_score", on="decisions", options=_ZERO_DIVISION),
    Metric("recall", "classification", "higher", _SKM + "recall_score", on="decisions", options=_ZERO_DIVISION),
    Metric("f1", "classification", "higher", _SKM + "f1_score", on="decisions", options=_ZERO_DIVISION),
    Metric("log_loss", "classification", "lower", _OWN + "log_loss", needs_both_classes=True),
    Metric("brier", "classification", "lower", _SKM + "brier_score_loss"),
    Metric("rmse", "regression", "lower", _OWN + "rmse"),
    Metric("mae", "regression", "lower", _OWN + "mae"),
    Metric("r2", "regression", "higher", _OWN + "r2"),
    Metric("mape", "regression", "lower", _SKM + "mean_absolute_percentage_error"),
)

#: Metrics by task: name -> True when higher is better (a view of :data:`METRIC_REGISTRY`).
METRICS: dict[str, dict[str, bool]] = {
    task: {m.name: m.higher_is_better for m in METRIC_REGISTRY.values() if m.task == task}
    for task in get_args(TaskType)
}


def metrics_for(task: TaskType) -> list[Metric]:
    """The metrics of ``task``, in registry order."""
    return [m for m in METRIC_REGISTRY.values() if m.task == task]


def higher_is_better(task: TaskType, metric: str) -> bool:
    """Whether a larger value of ``metric`` is an improvement (KeyError when ``task`` has no such metric)."""
    return METRICS[task][metric]


def is_better(metric: str, value: float, other: float) -> bool:
    """Is ``value`` strictly better than ``other`` in ``metric``'s direction?"""
    return METRIC_REGISTRY[metric].is_better(value, other)


def best(metric: str, values: Iterable[float]) -> float | None:
    """The best of ``values`` in ``metric``'s direction (None when there are none)."""
    return METRIC_REGISTRY[metric].best(values)


def worst(metric: str, values: Iterable[float]) -> float | None:
    """The worst of ``values`` in ``metric``'s direction: the lowest AUC, the highest RMSE
    (None when there are none)."""
    return METRIC_REGISTRY[metric].worst(values)


@functools.cache
def _import_function(reference: str) -> Callable[..., float]:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
