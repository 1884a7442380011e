"""The estimator allowlist and the metric registry against scikit-learn itself, so they cannot
drift apart.

The catalog is plain data (the spec is validated where scikit-learn must not be imported);
only this test imports scikit-learn.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from ctflow.spec.catalog import ESTIMATORS, METRIC_REGISTRY, METRICS, best, higher_is_better, is_better, worst

sklearn_base = pytest.importorskip("sklearn.base")


def _class(path: str) -> type:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("path", sorted(ESTIMATORS))
def test_estimator_is_a_scikit_learn_estimator_of_its_task(path: str):
    estimator = ESTIMATORS[path]
    assert estimator.path == path
    assert path.startswith("sklearn.")
    instance = _class(path)()
    assert sklearn_base.is_classifier(instance) == (estimator.task == "classification"), path
    assert sklearn_base.is_regressor(instance) == (estimator.task == "regression"), path


@pytest.mark.parametrize("path", sorted(ESTIMATORS))
def test_every_allowed_param_is_in_the_signature(path: str):
    signature = inspect.signature(_class(path).__init__).parameters
    allowed = ESTIMATORS[path].params
    assert allowed, f"{path} allows no parameter"
    unknown = sorted(set(allowed) - set(signature))
    assert not unknown, f"{path} has no parameter(s) {unknown}; its signature: {list(signature)}"
    # The seed is model.seed, never a parameter of the spec.
    assert "random_state" not in allowed


@pytest.mark.parametrize("path", sorted(p for p, e in ESTIMATORS.items() if e.handles_missing))
def test_estimators_said_to_handle_missing_values_fit_with_nan(path: str):
    x = np.array([[1.0, np.nan], [2.0, 1.0], [np.nan, 0.5], [4.0, 2.0]] * 5)
    y = np.array([0, 1] * 10)
    with threadpool_limits(limits=1):  # OpenMP threads crawl on a busy machine; 20 rows need none
        fitted = _class(path)().fit(x, y)
    assert len(fitted.predict(x)) == len(x)


def test_metrics_cover_both_tasks_and_know_their_direction():
    assert set(METRICS) == {"classification", "regression"}
    assert higher_is_better("classification", "roc_auc") is True
    assert higher_is_better("classification", "log_loss") is False
    assert higher_is_better("regression", "r2") is True
    assert higher_is_better("regression", "rmse") is False
    # Each task has estimators, and no metric name means different things in the two tasks.
    assert {e.task for e in ESTIMATORS.values()} == set(METRICS)
    assert not set(METRICS["classification"]) & set(METRICS["regression"])


@pytest.mark.parametrize("name", list(METRIC_REGISTRY))
def test_every_metric_names_a_function_that_takes_its_options(name: str):
    metric = METRIC_REGISTRY[name]
    assert metric.name == name and name in METRICS[metric.task]
    function = metric.resolve()  # imported on first use
    parameters = inspect.signature(function).parameters
    assert set(metric.options) <= set(parameters), f"{metric.function} takes no {sorted(metric.options)}"


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_each_metric_prefers_good_predictions_in_its_declared_direction(task: str):
    # The declared direction against what the function computes: a model that is right must
    # be better, in the metric's direction, than one that is wrong, on every metric of the task.
    from ctflow.core.evaluation import compute_metrics

    rng = np.random.default_rng(7)
    if task == "classification":
        y = rng.integers(0, 2, 400)
        good, bad = np.where(y == 1, 0.8, 0.2), np.where(y == 1, 0.3, 0.6)
    else:
        y = rng.uniform(10, 20, 400)
        good, bad = y + rng.normal(0, 0.1, 400), y + rng.normal(0, 3, 400)
    right, wrong = compute_metrics(task, y, good), compute_metrics(task, y, bad)
    assert list(right) == list(METRICS[task])  # every registered metric, in registry order
    for name in METRICS[task]:
        assert is_better(name, right[name], wrong[name]), (name, right[name], wrong[name])
        assert worst(name, [right[name], wrong[name]]) == wrong[name]
        assert best(name, [wrong[name], right[name]]) == right[name]


def test_direction_helpers_by_name():
    assert worst("roc_auc", [0.71, 0.65, 0.7]) == 0.65 and worst("rmse", [3.0, 5.0, 4.0]) == 5.0
    assert best("log_loss", [0.4, 0.3]) == 0.3 and worst("r2", []) is None
    assert is_better("mae", 1.0, 2.0) and not is_better("accuracy", 0.8, 0.8)
