"""ct_flight_delay under a real scheduler, dag-processor, triggerer and api-server (LocalExecutor,
SQLite), triggered through the Airflow REST API; then a re-run of the register task inside the
same DAG run, which must find its version instead of registering another; then a monitoring run
whose performance breaches: its Asset event makes the scheduler start a ct_ run by itself, which
retrains as of the breaching window's end."""

from __future__ import annotations

import pytest

from ctflow.contract import mlflow_tags
from tests.conftest import QUICK_TRIGGER_ONLY, demo_spec
from tests.harness import running_airflow

pytestmark = [pytest.mark.integration, pytest.mark.scheduler]

DAG_ID = "ct_flight_delay"
MONITOR_ID = "monitor_flight_delay"
# Trigger-only: unpausing must not add the crons' latest scheduled runs beside the ones under test;
# a small model: the scheduling is under test here, not the fit (three trainings per run).
# An impossible performance floor: the monitoring run breaches, and retrain_on has performance.
SPEC = demo_spec(
    *QUICK_TRIGGER_ONLY,
    ("performance: {metric: roc_auc, min: 0.62}", "performance: {metric: roc_auc, min: 0.999}"),
)
MONITORED = "2013-03-11T06:00:00Z"  # a Monday: the week [03-04, 03-11)


def test_triggered_through_rest_api_and_register_rerun_is_idempotent(tmp_path, feature_repo_ready, dags_folder_with):
    assert "train: null" in SPEC and "monitor: null" in SPEC and "min: 0.999" in SPEC and "max_iter: 60" in SPEC
    tracking_uri = f"sqlite:///{tmp_path / 'ctflow' / 'mlflow.db'}"
    env = {"CTFLOW_HOME": str(tmp_path / "ctflow"), "MLFLOW_TRACKING_URI": tracking_uri}
    folder = dags_folder_with({"flight_delay.yaml": SPEC})
    with running_airflow(tmp_path / "airflow", dags_folder=folder, extra_env=env) as airflow:
        airflow.wait_for_dag(DAG_ID)
        airflow.wait_for_dag(MONITOR_ID)  # unpaused: a run of a paused DAG stays queued
        run_id = airflow.trigger(DAG_ID, "2013-03-01T00:00:00Z")
        run = airflow.wait_for_run(DAG_ID, run_id, timeout=900)
        assert run["state"] == "success", airflow.failed_tasks(DAG_ID, run_id)

        from ctflow.core.registry import ModelRegistry

        registry = ModelRegistry("flight_delay", tracking_uri=tracking_uri)
        assert [v.version for v in registry.versions()] == ["1"]
        assert registry.get_version("1").tags[mlflow_tags.RUN_KEY] == f"{DAG_ID}/{run_id}"
        assert registry.champion().version == "1"

        cleared = airflow.request("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", json={
            "dag_run_id": run_id, "task_ids": ["promotion.register", "promotion.promote"],
            "dry_run": False, "only_failed": False, "reset_dag_runs": True,
        })
        assert cleared.status_code == 200, cleared.text
        rerun = airflow.wait_for_run(DAG_ID, run_id, timeout=600)
        assert rerun["state"] == "success", airflow.failed_tasks(DAG_ID, run_id)

        tries = {ti["task_id"]: ti["try_number"] for ti in airflow.task_instances(DAG_ID, run_id)}
        assert tries["promotion.register"] == 2 and tries["promotion.promote"] == 2
        assert [v.version for v in registry.versions()] == ["1"]  # the re-run found its version
        history = registry.history(alias="champion")
        assert [(e.version, e.moved) for e in history] == [("1", True)]

        # The breach closes the loop: no REST call starts the next ct_ run, the scheduler does.
        monitor_run = airflow.wait_for_run(MONITOR_ID, airflow.trigger(MONITOR_ID, MONITORED), timeout=600)
        assert monitor_run["state"] == "success", airflow.failed_tasks(MONITOR_ID, monitor_run["dag_run_id"])
        actions = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(MONITOR_ID, monitor_run["dag_run_id"])}
        assert actions["act_on_breach"] == "success", actions

        triggered = _wait_for_asset_triggered_run(airflow, DAG_ID, timeout=300)
        triggered = airflow.wait_for_run(DAG_ID, triggered["dag_run_id"], timeout=900)
        assert triggered["state"] == "success", airflow.failed_tasks(DAG_ID, triggered["dag_run_id"])
        events = airflow.request(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{triggered['dag_run_id']}/upstreamAssetEvents").json()
        assert [e["uri"] for e in events["asset_events"]] == ["ctflow://flight_delay/breach"]
        assert "performance" in events["asset_events"][0]["extra"]["kinds"]

        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        runs = client.search_runs(
            [client.get_experiment_by_name("ctflow/flight_delay").experiment_id],
            filter_string=f"tags.`airflow.run_id` = '{triggered['dag_run_id']}' "
                          "and tags.`airflow.task_id` = 'training.train'")
        assert len(runs) == 1
        # Trained on the data up to the breaching window's end, not as of the wall clock.
        assert runs[0].data.tags[mlflow_tags.AS_OF] == "2013-03-11T06:00:00+00:00"
        assert runs[0].data.params["data.window_end"] == "2013-03-11T06:00:00+00:00"


def _wait_for_asset_triggered_run(airflow, dag_id: str, timeout: float) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = airflow.request("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                               params={"run_type": "asset_triggered"}).json()["dag_runs"]
        if runs:
            return runs[0]
        time.sleep(2)
    raise AssertionError(f"no asset-triggered run of {dag_id} within {timeout}s\n{airflow.logs_tail(60)}")
