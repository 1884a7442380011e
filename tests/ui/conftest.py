"""A real Airflow deployment with the ctflow plugin, on a temp DAGs folder and MLflow DB.

One deployment (scheduler, dag-processor, triggerer, api-server) serves the API, CSRF and browser
tests of this package: starting Airflow costs far more than any of those tests. It reads the
view's state (:mod:`tests.ui.state`) and never runs ``ct_flight_delay`` (left paused: a queued
run stays queued); only the browser's approval test runs a DAG, of its own pipeline.
"""

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
APPROVAL = "flight_delay_approval"
#: A small, quick variant of the demo spec that waits for a human before promoting (the browser's
#: approval test runs it; the other tests leave it alone).
APPROVAL_SPEC = demo_spec(
    ("pipeline: flight_delay", f"pipeline: {APPROVAL}"),
    ("sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.tree.DecisionTreeClassifier"),
    ("params: {max_iter: 200, learning_rate: 0.1, max_leaf_nodes: 31}", "params: {max_depth: 4}"),
    ("roc_auc: {min: 0.65}", "roc_auc: {min: 0.5}"),
    ("window: 60d", "window: 21d"),
    ("holdout: 14d", "holdout: 7d"),
    ("min_rows: 20000", "min_rows: 1000"),
    ("slices: [origin]", "slices: []"),
    ("approval: auto", "approval: manual"),
)


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
    """The package's Airflow deployment with the ctflow plugin over the view's MLflow state, with
    ``flight_delay`` (paused: a queued run stays queued) and the approval pipeline (see the module
    docs); ``(airflow, built_ui_state)``."""
    assert "approval: manual" in APPROVAL_SPEC and "window: 21d" in APPROVAL_SPEC
    root = tmp_path_factory.mktemp("ui-airflow")
    built = built_ui_state
    folder = dags_folder(root, {f"{APPROVAL}.yaml": APPROVAL_SPEC}, spec_text=built.spec_text)
    # It runs no task (``flight_delay`` stays paused), so its scheduler skips the ML stack's preload.
    with running_airflow(root / "airflow", dags_folder=folder, extra_env=airflow_env(root, built.tracking_uri),
                         executor="LocalExecutor") as airflow:
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
