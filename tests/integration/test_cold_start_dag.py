"""A cold start through real Airflow DAG runs: the data does not yet cover the training window.

The 2013 data begins on January 1. ``ct_`` as of January 20 with a 28-day window would train on
19 days: ``quality.min_window_coverage`` fails the run at the data check, once (no retry: the
same frame would fail again), before any model is fitted or registered. Then ``monitor_`` finds
no champion to score and, as the spec's ``retrain_on`` has ``no_champion``, emits the breach
asset event that schedules ``ct_`` (kind ``no_champion``, as of the window's end) instead of
leaving the pipeline without a model until the next cron tick.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.conftest import QUICK_TRIGGER_ONLY, asset_events, demo_spec, task_states

pytestmark = pytest.mark.integration

PIPELINE = "cold_flights"
SPEC = demo_spec(*QUICK_TRIGGER_ONLY, ("pipeline: flight_delay", f"pipeline: {PIPELINE}"),
                 ("start_date: 2013-02-01", "start_date: 2013-01-01"))  # deployed with the first data
TOO_EARLY = datetime(2013, 1, 20, tzinfo=UTC)  # 19 days of data for a 28-day window
MONITOR = datetime(2013, 1, 28, 6, tzinfo=UTC)


def test_uncovered_window_fails_quality_once_then_monitoring_asks_for_a_training(
    airflow_db, feature_repo_ready, dags_folder_with
):
    assert "window: 28d" in SPEC and "min_window_coverage: 0.9" in SPEC and "no_champion]" in SPEC
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from ctflow import settings
    from ctflow.core.registry import ModelRegistry

    bag = DagBag(dag_folder=str(dags_folder_with({f"{PIPELINE}.yaml": SPEC})))
    assert not bag.import_errors, bag.import_errors
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)

    ct = bag.get_dag(f"ct_{PIPELINE}").test(logical_date=TOO_EARLY)
    states = task_states(ct)
    assert ct.state == "failed", states
    assert (states["training.fetch_features"], states["training.check_data_quality"], states["training.train"]) == (
        "success", "failed", "upstream_failed")
    with create_session() as session:
        tries = session.scalar(select(TaskInstance.try_number).where(
            TaskInstance.run_id == ct.run_id, TaskInstance.task_id == "training.check_data_quality"))
    assert tries == 1  # failed for good, not retried
    quality = json.loads((settings.run_dir(f"ct_{PIPELINE}/{ct.run_id}") / "quality.json").read_text())
    [failure] = [r for r in quality["rules"] if not r["passed"]]
    assert failure["rule"] == "min_window_coverage" and failure["observed"] == "0.66 (oldest row 2013-01-01T10:15:00+00:00)"
    assert ModelRegistry(PIPELINE).versions() == []
    # The ctflow view (what GET .../runs/<run_id> answers) says where and why, without the task log.
    from ctflow.ui.airflow_runs import run_state

    shown = run_state(ct.dag_id, ct.run_id)["failure"]
    [reason] = shown["reasons"]
    assert shown["failed"] == ["training.check_data_quality"] and reason["kind"] == "refused"
    assert "min_window_coverage" in reason["message"] and "0.66" in reason["message"], reason

    monitor = bag.get_dag(f"monitor_{PIPELINE}").test(logical_date=MONITOR)
    assert monitor.state == "success"
    states = task_states(monitor)
    assert states["score_batch"] == states["report"] == "skipped"
    assert states["act_on_breach"] == "success"
    [event] = asset_events(f"ctflow://{PIPELINE}/breach")
    assert event["dag_id"] == f"monitor_{PIPELINE}" and event["task_id"] == "act_on_breach"
    assert event["extra"]["kinds"] == ["no_champion"] and event["extra"]["champion_version"] is None
    assert event["extra"]["window_end"] == MONITOR.isoformat()  # what the triggered ct_ run trains as of
