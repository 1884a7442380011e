"""The sequential challenger test wired end to end in the core: real sklearn models registered in
a real MLflow registry (SQLite), a real SQL predictions store, and :func:`judge_challenger`
deciding window after window from the loss differences the store accumulates.

Rows: ``y = 1[x0 + x1 + 0.8 e > 0]``. The champion sees ``x0``; the *equal* challenger is the
very same fitted model applied to ``x1`` (exchangeable with ``x0``: the same quality exactly, an
A/A test); the *better* one sees both; the *worse* one sees only an unrelated column.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from ctflow.core import monitoring
from ctflow.core.monitoring.sequential import window_evidence
from ctflow.core.performance import challenger_wins, metric_value
from ctflow.core.predictions import PerformanceRecord, PredictionStore
from ctflow.spec import parse_spec
from tests.conftest import demo_spec, isolated_home

PIPELINE = "sequential_core"
ROWS = 400
SPEC = parse_spec(demo_spec(("pipeline: flight_delay", f"pipeline: {PIPELINE}"),
                            ("strategy: direct", "strategy: shadow")))


def _rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, 3))
    return x, (x[:, 0] + x[:, 1] + 0.8 * rng.normal(size=n) > 0).astype(int)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory):
    with isolated_home(tmp_path_factory.mktemp("challenger_decision")) as path:
        yield path


@pytest.fixture(scope="module")
def models(root: Path):
    """``{name: (version, model, columns)}`` registered in this module's MLflow registry."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from ctflow.core.registry import ModelRegistry

    x, y = _rows(np.random.default_rng(1), 3000)
    one = LogisticRegression().fit(x[:, [0]], y)
    fitted = {"champion": (one, [0]), "equal": (one, [1]), "better": (LogisticRegression().fit(x[:, :2], y), [0, 1]),
              "worse": (LogisticRegression().fit(x[:, [2]], y), [2])}
    experiment = mlflow.MlflowClient().create_experiment("models", artifact_location=(root / "models").as_uri())
    registry = ModelRegistry(SPEC.model_name)
    out = {}
    for name, (model, columns) in fitted.items():
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
        out[name] = (registry.register(info.model_uri, run_key=f"fit/{name}", run_id=run.info.run_id).version,
                     model, columns)
    return registry, out


class Windows:
    """Daily ground-truth windows scored by the champion and challenger, judged as monitoring does."""

    def __init__(self, spec, store: PredictionStore, registry, models, seed: int) -> None:
        self.spec, self.store, self.registry, self.models = spec, store, registry, models
        self.rng = np.random.default_rng(seed)
        self.day = datetime(2014, 1, 1, tzinfo=UTC)
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def judge(self, champion: str, challenger: str, *, again: bool = False, dry_run: bool = False):
        if not again:
            self.day += timedelta(days=1)
            self.last = _rows(self.rng, ROWS)
        assert self.last is not None
        x, y = self.last
        (champion_version, a, a_columns), (challenger_version, b, b_columns) = self.models[champion], self.models[challenger]
        a_scores, b_scores = a.predict_proba(x[:, a_columns])[:, 1], b.predict_proba(x[:, b_columns])[:, 1]
        a_auc, b_auc = (metric_value("classification", "roc_auc", y, s) for s in (a_scores, b_scores))
        evidence = window_evidence(y, a_scores, b_scores)
        record = PerformanceRecord(
            PIPELINE, self.day - timedelta(days=1), self.day, "roc_auc", ROWS, champion_version, a_auc,
            challenger_version, b_auc, challenger_wins("classification", "roc_auc", b_auc, a_auc, 0.0),
            loss_diff_rows=evidence.n, loss_diff_sum=evidence.total, loss_diff_sum_sq=evidence.total_sq)
        return monitoring.judge_challenger(self.spec, record, store=self.store, registry=self.registry, actor="test",
                                           run_key=f"monitor/{self.day:%Y%m%d}", dry_run=dry_run)


@pytest.mark.integration
def test_equal_challenger_is_never_promoted_better_one_is_and_worse_one_retired(models, root):
    registry, versions = models
    store = PredictionStore(f"sqlite:///{root / 'predictions.db'}")
    windows = Windows(SPEC, store, registry, versions, seed=7)
    champion = versions["champion"][0]
    registry.promote(champion, reason="first", actor="test", expected_current=None)

    registry.set_challenger(versions["equal"][0], reason="A/A", actor="test")
    decisions = [windows.judge("champion", "equal") for _ in range(40)]
    assert {d["action"] for d in decisions} == {"keep"}, [d["reason"] for d in decisions if d["action"] != "keep"]
    assert decisions[-1]["rule"] == "sequential" and decisions[-1]["n"] == 40 * ROWS and decisions[-1]["windows"] == 40
    assert decisions[-1]["lower"] < 0 < decisions[-1]["upper"]  # the bounds cover the true difference, 0
    won = [r.challenger_won for r in store.performance_history(PIPELINE)]
    assert len(won) == 40 and any(all(won[i:i + 3]) for i in range(38))  # where the streak rule would have promoted
    assert registry.champion().version == champion

    registry.set_challenger(versions["better"][0], reason="a better candidate", actor="test")
    first = windows.judge("champion", "better")
    assert first["action"] == "keep" and first["windows"] == 1 and first["n"] == ROWS  # the A/A pair's rows do not count
    assert windows.judge("champion", "better", again=True)["n"] == ROWS  # a re-run replaces its window
    decision = first
    while decision["action"] == "keep":
        decision = windows.judge("champion", "better")
        assert decision["windows"] <= 10, "a clearly better challenger undecided after 10 windows"
    assert decision["windows"] >= SPEC.registry.promote_after  # the test may decide only after promote_after windows
    assert decision["action"] == "promote" and decision["applied"] and decision["lower"] > 0
    assert registry.champion().version == versions["better"][0] and registry.alias_version("challenger") is None
    last = registry.history(alias="champion")[-1]
    assert (last.previous, last.version) == (champion, versions["better"][0]) and "better by more than 0" in last.reason

    registry.set_challenger(versions["worse"][0], reason="a weak candidate", actor="test")
    decision = windows.judge("better", "worse", dry_run=True)
    while decision["action"] == "keep":
        decision = windows.judge("better", "worse", dry_run=True)
        assert decision["windows"] <= 10, "a clearly worse challenger undecided after 10 windows"
    assert decision["action"] == "retire" and not decision["applied"] and "dry run" in decision["note"]
    assert registry.alias_version("challenger").version == versions["worse"][0]  # a dry run changes nothing
    retired = windows.judge("better", "worse", again=True)  # the same window, for real
    assert retired["action"] == "retire" and retired["applied"] and retired["upper"] < 0
    assert retired["n"] == decision["n"]  # the re-run replaced its window's differences
    assert registry.alias_version("challenger") is None and registry.champion().version == versions["better"][0]
    assert registry.history(alias="challenger")[-1].action == "retire"


def test_a_store_made_before_the_loss_differences_gains_their_columns(tmp_path: Path):
    from sqlalchemy import MetaData, Table, create_engine, inspect

    from ctflow.core.predictions import performance

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = MetaData()
    Table(performance.name, old, *(c.copy() for c in performance.columns if not c.name.startswith("loss_diff")))
    old.create_all(create_engine(url))
    store = PredictionStore(url)
    assert {"loss_diff_rows", "loss_diff_sum", "loss_diff_sum_sq"} <= {
        c["name"] for c in inspect(store.engine).get_columns(performance.name)}
    end = datetime(2014, 1, 2)
    store.record_performance(PerformanceRecord("p", end - timedelta(days=1), end, "roc_auc", 3, "1", 0.7, "2", 0.8,
                                               True, loss_diff_rows=3, loss_diff_sum=0.3, loss_diff_sum_sq=0.05))
    totals = store.challenger_evidence("p", challenger_version="2", champion_version="1", until=end)
    assert (totals.windows, totals.rows, totals.total, totals.total_sq) == (1, 3, 0.3, 0.05)
