"""What a spec may name: estimators (an allowlist with typed parameters) and metrics.

This is data, not imports: the spec is validated at DAG-parse time, where scikit-learn must
not be imported. ``tests/spec/test_catalog.py`` checks every entry against scikit-learn's
real signatures so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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

#: Metrics by task: name -> True when higher is better.
METRICS: dict[str, dict[str, bool]] = {
    "classification": {
        "roc_auc": True,
        "average_precision": True,
        "accuracy": True,
        "balanced_accuracy": True,
        "precision": True,
        "recall": True,
        "f1": True,
        "log_loss": False,
        "brier": False,
    },
    "regression": {
        "rmse": False,
        "mae": False,
        "r2": True,
        "mape": False,
    },
}


def higher_is_better(task: TaskType, metric: str) -> bool:
    """Whether a larger value of ``metric`` is an improvement."""
    return METRICS[task][metric]
