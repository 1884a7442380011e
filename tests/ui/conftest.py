"""A real Airflow deployment with the ctflow plugin, on a temp DAGs folder and MLflow DB."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import PROJECT, demo_spec, write_dags_folder
from tests.harness import Airflow, running_airflow

PLUGINS_FOLDER = PROJECT / "plugins"
MLFLOW_UI = "http://mlflow.example.test:5000"


def dags_folder(root: Path, extra_specs: dict[str, str] | None = None, *, spec_text: str | None = None) -> Path:
    """ctflow's loader files, ``flight_delay.yaml`` (``spec_text``, else the demo spec), and
    ``extra_specs`` (file name -> YAML)."""
    return write_dags_folder(root / "dags", {"flight_delay.yaml": spec_text or demo_spec(), **(extra_specs or {})})


def airflow_env(root: Path, tracking_uri: str) -> dict[str, str]:
    return {
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "CTFLOW_HOME": str(root / "ctflow"),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_REGISTRY_URI": tracking_uri,
        "CTFLOW_MLFLOW_UI_URL": MLFLOW_UI,
    }


@pytest.fixture(scope="session")
def built_ui_state(tmp_path_factory, feature_repo_ready):
    """The view's state, made once per session by ctflow's CT and monitoring steps
    (:mod:`tests.ui.state`); every deployment reads it, none writes to ``flight_delay``."""
    from tests.ui import state

    return state.build(tmp_path_factory.mktemp("ui-state"))


@pytest.fixture(scope="package")
def api_deployment(tmp_path_factory, built_ui_state):
    """An api-server with the ctflow plugin (and a dag-processor, so ``ct_flight_delay`` exists,
    paused: a queued run stays queued) over the view's MLflow state; shared by the API tests."""
    root = tmp_path_factory.mktemp("ui-api")
    built = built_ui_state
    folder = dags_folder(root, spec_text=built.spec_text)
    with running_airflow(root / "airflow", dags_folder=folder, extra_env=airflow_env(root, built.tracking_uri),
                         components=("api-server", "dag-processor")) as airflow:
        wait_parsed(airflow, "ct_flight_delay")
        yield airflow, built


def login_token(airflow: Airflow, username: str) -> str:
    """A JWT for ``username`` from Airflow's ``/auth/token`` (what the login page puts in the cookie)."""
    passwords = json.loads((airflow.home / "simple_auth_manager_passwords.json.generated").read_text())
    response = requests.post(f"{airflow.api}/auth/token", json={"username": username, "password": passwords[username]},
                             timeout=30)
    response.raise_for_status()
    return response.json()["access_token"]


def wait_parsed(airflow: Airflow, dag_id: str, timeout: float = 240) -> dict:
    """Wait until the dag-processor has parsed ``dag_id``, leaving it paused (runs stay queued)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = airflow.request("GET", f"/api/v2/dags/{dag_id}")
        if response.status_code == 200:
            return response.json()
        airflow._check_alive()
        time.sleep(2)
    raise TimeoutError(f"{dag_id} was not parsed within {timeout} s\n{airflow.logs_tail()}")


def dag_runs(airflow: Airflow, dag_id: str) -> list[dict]:
    response = airflow.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["dag_runs"]
