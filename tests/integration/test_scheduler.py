"""ct_flight_delay under a real scheduler, dag-processor, triggerer and api-server (LocalExecutor,
SQLite), triggered through the Airflow REST API; then a re-run of the register task inside the
same DAG run, which must find its version instead of registering another."""

from __future__ import annotations

import pytest

from tests.conftest import DAGS_FOLDER
from tests.harness import running_airflow

pytestmark = [pytest.mark.integration, pytest.mark.scheduler]

DAG_ID = "ct_flight_delay"
# Trigger-only: unpausing must not add the cron's latest scheduled run beside the one under test.
SPEC = (DAGS_FOLDER / "specs" / "flight_delay.yaml").read_text().replace('train: "0 2 * * 1"', "train: null")


def test_triggered_through_rest_api_and_register_rerun_is_idempotent(tmp_path, feature_repo_ready, dags_folder_with):
    assert "train: null" in SPEC
    tracking_uri = f"sqlite:///{tmp_path / 'ctflow' / 'mlflow.db'}"
    env = {"CTFLOW_HOME": str(tmp_path / "ctflow"), "MLFLOW_TRACKING_URI": tracking_uri}
    folder = dags_folder_with({"flight_delay.yaml": SPEC})
    with running_airflow(tmp_path / "airflow", dags_folder=folder, extra_env=env) as airflow:
        airflow.wait_for_dag(DAG_ID)
        response = airflow.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                                   json={"logical_date": "2013-03-01T00:00:00Z", "conf": {}})
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        run = airflow.wait_for_run(DAG_ID, run_id, timeout=900)
        assert run["state"] == "success", airflow.logs_tail(60)

        from ctflow.core.registry import ModelRegistry

        registry = ModelRegistry("flight_delay", tracking_uri=tracking_uri)
        assert [v.version for v in registry.versions()] == ["1"]
        assert registry.get_version("1").tags["ctflow.run_key"] == f"{DAG_ID}/{run_id}"
        assert registry.champion().version == "1"

        cleared = airflow.request("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", json={
            "dag_run_id": run_id, "task_ids": ["promotion.register", "promotion.promote"],
            "dry_run": False, "only_failed": False, "reset_dag_runs": True,
        })
        assert cleared.status_code == 200, cleared.text
        rerun = airflow.wait_for_run(DAG_ID, run_id, timeout=600)
        assert rerun["state"] == "success", airflow.logs_tail(60)

        tries = {ti["task_id"]: ti["try_number"] for ti in airflow.task_instances(DAG_ID, run_id)}
        assert tries["promotion.register"] == 2 and tries["promotion.promote"] == 2
        assert [v.version for v in registry.versions()] == ["1"]  # the re-run found its version
        history = registry.history(alias="champion")
        assert [(e.version, e.moved) for e in history] == [("1", True)]
