"""The shipped second example, us_employment: a monthly regression panel with its own Feast repository.

Its features are lagged by publication (month M's figures are known on the 8th of M+1), which is
checked on the point-in-time join itself; then, through Airflow as the demo runs: a first
training promotes, a second is gated against the champion re-scored on the same holdout, and a
monitoring run scores a month and measures the champion's mae on the month whose labels are out.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.conftest import DAGS_FOLDER, PROJECT, task_states

pytestmark = pytest.mark.integration

REPO = PROJECT / "feature_repo" / "us_employment"


@pytest.fixture(scope="module")
def example_repo():
    result = subprocess.run([sys.executable, str(REPO / "bootstrap.py")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return REPO


@pytest.fixture(scope="module")
def dags(airflow_db, example_repo):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    return {dag_id: bag.get_dag(dag_id) for dag_id in ("ct_us_employment", "monitor_us_employment")}


def _run_dir(dag_run):
    from ctflow import settings
    from ctflow.core.run_files import read_result

    folder = settings.run_dir(f"{dag_run.dag_id}/{dag_run.run_id}")
    return lambda name: read_result(folder / name)


def test_features_are_last_months_published_figures_never_the_labels_month(example_repo):
    from ctflow.core import features

    rows = features.load_entity_rows(example_repo / "data" / "industry_months.parquet", timestamp="predicted_at",
                                     start=datetime(2011, 1, 1, tzinfo=UTC), end=datetime(2012, 1, 1, tzinfo=UTC))
    frame = features.get_historical_features(example_repo, "employment_change_v1", rows, timestamp="predicted_at")
    assert len(frame) == 12 * 22 and frame["change_1m_pct"].notna().all()
    labels = rows.set_index(["industry", "predicted_at"])["change_pct"]
    previous = labels.rename(lambda t: t + pd.DateOffset(months=1), level="predicted_at")
    joined = frame.set_index(["industry", "predicted_at"])["change_1m_pct"]
    common = joined.index.intersection(previous.index)
    assert len(common) == 11 * 22
    # Each row sees the change of the month before its own: its own month's is its label.
    assert (joined[common] - previous[common]).abs().max() < 1e-9
    assert ((joined - labels).abs() > 1e-9).mean() > 0.95
    assert (rows["label_known_at"] > rows["predicted_at"]).all()


def test_trains_twice_gated_on_the_same_holdout_then_monitors(dags):
    from ctflow.core.registry import ModelRegistry

    ct, monitor = dags["ct_us_employment"], dags["monitor_us_employment"]
    first = ct.test(logical_date=datetime(2012, 1, 1, tzinfo=UTC))
    assert first.state == "success", task_states(first)
    gate = _run_dir(first)("gate.json")
    assert gate["decision"] == "promote" and "no champion yet" in gate["reason"]

    second = ct.test(logical_date=datetime(2013, 1, 1, tzinfo=UTC))
    assert second.state == "success", task_states(second)
    files = _run_dir(second)
    trained, gate = files("train.json"), files("gate.json")
    # The 3mo holdout's newest month is cut: its labels are published after as_of (available_after: 1mo).
    assert {"mae", "rmse", "r2"} <= set(trained["metrics"]) and trained["holdout_rows"] == 2 * 22
    assert "champion v1 on mae" in gate["reason"], gate  # the champion, re-scored on this holdout
    assert files("register.json")["version"] == "2"
    registry = ModelRegistry("us_employment")
    expected = "2" if gate["decision"] == "promote" else "1"
    assert registry.champion().version == expected

    watched = monitor.test(logical_date=datetime(2013, 2, 15, tzinfo=UTC))
    assert watched.state == "success", task_states(watched)
    report = _run_dir(watched)("report.json")
    assert report["rows_scored"] == 22 and str(report["champion_version"]) == expected
    assert report["performance"]["available"] and report["performance"]["metric"] == "mae"
    # Training kept the holdout's features for the loss estimate (DLE), in the holdout's row order;
    # 44 rows are too few to fit a loss model on, and the estimate says so.
    from ctflow import settings
    from ctflow.contract import monitoring as names
    from ctflow.core.monitoring.estimate_loss import MIN_ROWS

    kept = pd.read_parquet(settings.run_dir(f"{second.dag_id}/{second.run_id}") / names.REFERENCE_FOLDER
                           / names.REFERENCE_FEATURES_FILE)
    assert list(kept.columns) == trained["features"] and len(kept) == trained["holdout_rows"]
    estimated = report["estimated_performance"]
    assert not estimated["available"] and f"has 44 rows < {MIN_ROWS}, too few to fit a loss model" in estimated["reason"]
    assert report["data_drift"]["state"] != "insufficient_data"


def test_the_replay_estimates_a_regression_window_as_the_monitoring_dag_does(example_repo, tmp_path):
    """DLE in the replay and in the DAG: with a 12-month holdout (242 rows, enough for the loss
    model; the shipped 3 months hold 44), each monitored step's estimate is the DAG's
    ``estimated_performance`` of the same champion on the same rows (window frame with the
    features), its holdout laid out as ``steps.train`` stores it."""
    import json

    import numpy as np

    from ctflow.contract import monitoring as names
    from ctflow.core import monitoring, replay
    from ctflow.core.fit import LABEL
    from ctflow.core.monitoring.estimated import write_holdout
    from ctflow.core.replay import CTFLOW
    from ctflow.spec import load_spec
    from ctflow.spec.durations import parse_calendar_duration

    spec = replay.override_spec(load_spec(PROJECT / "dags" / "specs" / "us_employment.yaml"), {"data.holdout": "12mo"})
    month = parse_calendar_duration("1mo")
    steps = replay.make_steps(replay.as_utc("2012-01-01"), replay.as_utc("2012-05-01"), month)
    data = replay.load_frame(spec, steps[0].start, steps[-1].end, feature_repo=example_repo)
    ctflow = replay.replay(spec, data, start="2012-01-01", end="2012-05-01", every=month).policy(CTFLOW)
    bank = replay.ModelBank(spec, data)
    monitored = [s for s in ctflow.steps[1:] if ctflow.steps[s.step - 1].model is not None]
    assert monitored
    for s in monitored:
        champion = bank.train(replay.as_utc(ctflow.steps[s.step - 1].model))
        previous = steps[s.step - 1]
        rows = data.between(previous.start, previous.end)
        holdout = champion.holdout_rows
        run_dir = tmp_path / f"step-{s.step}"
        folder = run_dir / names.REFERENCE_FOLDER / "champion"
        folder.mkdir(parents=True)
        write_holdout(folder, spec.model.task, scores=bank.reference_scores(champion), labels=holdout[LABEL],
                      times=holdout[spec.data.timestamp].to_numpy(), features=holdout[champion.features.all])
        rows[champion.features.all].assign(**{monitoring.CHAMPION_SCORE: bank.scores(champion, rows, previous.index),
                                              monitoring.CHALLENGER_SCORE: np.nan}).to_parquet(
            run_dir / monitoring.WINDOW_FRAME, index=False)
        (run_dir / monitoring.SCORE).write_text(json.dumps({"champion": {"version": champion.id, "run_id": champion.id}}))
        estimated = monitoring.estimated_performance(spec, run_dir=run_dir)
        assert estimated["available"] and estimated["method"] == "DLE" and estimated["rows"] == len(rows)
        assert s.estimated_metric == pytest.approx(estimated["value"], abs=1e-12)
        assert s.estimated_breach == estimated["breach"]
