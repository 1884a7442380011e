"""ct_flight_delay under a real scheduler, dag-processor, triggerer and api-server (the
preloading LocalExecutor ``make up`` runs, SQLite), triggered through the Airflow REST API; then
a re-run of the register task inside the same DAG run, which must find its version instead of
registering another; then a monitoring run whose performance breaches: its Asset event makes the
scheduler start a ct_ run by itself, which retrains as of the breaching window's end. Beside it,
a second pipeline with ``schedule.after: [flight_delay]``: the scheduler starts it when
flight_delay's champion moves, and not when a re-run promote finds nothing to move."""

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
DOWNSTREAM_ID = "ct_flight_delay_after"
#: Started only by flight_delay's promotions: no cron, no breach, only ``after``.
DOWNSTREAM = demo_spec(
    *QUICK_TRIGGER_ONLY,
    ("pipeline: flight_delay\n", "pipeline: flight_delay_after\n"),
    ("  retrain_on: [drift, performance, no_champion]", "  retrain_on: []\n  after: [flight_delay]"),
)


def test_triggered_through_rest_api_and_register_rerun_is_idempotent(tmp_path, feature_repo_ready, dags_folder_with):
    assert "train: null" in SPEC and "monitor: null" in SPEC and "min: 0.999" in SPEC and "max_iter: 60" in SPEC
    tracking_uri = f"sqlite:///{tmp_path / 'ctflow' / 'mlflow.db'}"
    env = {"CTFLOW_HOME": str(tmp_path / "ctflow"), "MLFLOW_TRACKING_URI": tracking_uri}
    folder = dags_folder_with({"flight_delay.yaml": SPEC, "flight_delay_after.yaml": DOWNSTREAM})
    with running_airflow(tmp_path / "airflow", dags_folder=folder, extra_env=env) as airflow:
        airflow.wait_for_dag(DAG_ID)
        airflow.wait_for_dag(MONITOR_ID)  # unpaused: a run of a paused DAG stays queued
        airflow.wait_for_dag(DOWNSTREAM_ID)
        run_id = airflow.trigger(DAG_ID, "2013-03-01T00:00:00Z")
        run = airflow.wait_for_run(DAG_ID, run_id, timeout=900)
        assert run["state"] == "success", airflow.failed_tasks(DAG_ID, run_id)

        from ctflow.core.registry import ModelRegistry

        registry = ModelRegistry("flight_delay", tracking_uri=tracking_uri)
        assert [v.version for v in registry.versions()] == ["1"]
        assert registry.get_version("1").tags[mlflow_tags.RUN_KEY] == f"{DAG_ID}/{run_id}"
        assert registry.champion().version == "1"

        # The promotion moved the champion: its event started the downstream pipeline (stopped
        # at once: its training is not under test, and it would only compete for the CPU).
        [promoted] = _promoted_events(airflow, timeout=120, wait_for_run_of=DOWNSTREAM_ID)
        assert promoted["source_run_id"] == run_id and promoted["extra"]["version"] == "1"
        [started] = [r["run_id"] for r in promoted["created_dagruns"] if r["dag_id"] == DOWNSTREAM_ID]
        stopped = airflow.request("PATCH", f"/api/v2/dags/{DOWNSTREAM_ID}/dagRuns/{started}", json={"state": "failed"})
        assert stopped.status_code == 200, stopped.text

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
        # The re-run promote found v1 already champion: nothing moved, nothing announced, so the
        # downstream pipeline was not started again (the events are what its schedule reads).
        assert [e["source_run_id"] for e in _promoted_events(airflow, timeout=0)] == [run_id]
        downstream_runs = airflow.request("GET", f"/api/v2/dags/{DOWNSTREAM_ID}/dagRuns").json()["dag_runs"]
        assert [r["dag_run_id"] for r in downstream_runs] == [started]

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


def _promoted_events(airflow, *, timeout: float, wait_for_run_of: str | None = None) -> list[dict]:
    """flight_delay's ``promoted`` asset events, as the scheduler recorded them; with
    ``wait_for_run_of``, wait until the first one has started a run of that DAG."""
    import time

    from ctflow.contract.assets import promoted_uri

    deadline = time.monotonic() + timeout
    while True:
        response = airflow.request("GET", "/api/v2/assets/events", params={"source_dag_id": DAG_ID, "limit": 100})
        assert response.status_code == 200, f"{response.status_code}: {response.text[:500]}"
        events = [e for e in response.json()["asset_events"] if e["uri"] == promoted_uri("flight_delay")]
        started = wait_for_run_of is None or any(
            r["dag_id"] == wait_for_run_of for e in events for r in e["created_dagruns"])
        if started or time.monotonic() > deadline:
            return events
        time.sleep(2)
