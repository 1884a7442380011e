"""The docker runner (``runner: {kind: docker}``) calls the same core as the in-process operators.

* Without Docker: for every step a container runs, the ``ctflow run-step`` command line the
  DockerOperator builds, parsed and run by ctflow's CLI, makes the same :mod:`ctflow.core.steps`
  call, with the same arguments, as the in-process operator of that step (the core is recorded,
  not run).
* With a Docker engine (and ctflow's image built, ``docker compose build``): the operator runs
  ``fetch_features`` in a container and the training frame appears in the run folder; skipped,
  saying why, where there is no engine or no image.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import DAGS_FOLDER

SPEC_PATH = DAGS_FOLDER / "specs" / "flight_delay.yaml"
RUN_KEY = "ct_flight_delay/manual__2013-03-01T00:00:00+00:00"
LOGICAL_DATE = datetime(2013, 3, 1, tzinfo=timezone.utc)
IMAGE = os.environ.get("CTFLOW_TEST_IMAGE", "ctflow:0.1.0")


@pytest.fixture
def connections(monkeypatch, tmp_path):
    """The two ctflow connections as the production stack sets them, and a throw-away CTFLOW_HOME."""
    monkeypatch.setenv("AIRFLOW_CONN_CTFLOW_MLFLOW", json.dumps({"conn_type": "http", "host": "mlflow", "port": 5000}))
    monkeypatch.setenv("AIRFLOW_CONN_CTFLOW_FEAST",
                       json.dumps({"conn_type": "generic", "extra": {"repo_path": "/srv/ctflow/feature_repo"}}))
    monkeypatch.setenv("CTFLOW_HOME", str(tmp_path / "home"))
    return tmp_path


def _context(params: dict) -> dict:
    ti = SimpleNamespace(dag_id="ct_flight_delay", run_id=RUN_KEY.split("/", 1)[1], task_id="t", try_number=1)
    return {"params": params, "logical_date": LOGICAL_DATE, "dag_run": None, "ti": ti}


@pytest.mark.parametrize("step", ["fetch_features", "check_quality", "train", "evaluate"])
def test_docker_and_in_process_runners_make_the_same_core_call(step, connections, monkeypatch):
    from ctflow.cli import main as ctflow_cli
    from ctflow.core import steps
    from ctflow.operators import training
    from ctflow.operators.docker import DOCKER_STEPS, CtflowDockerOperator
    from ctflow.spec import load_spec

    assert step in DOCKER_STEPS
    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(steps, step, lambda *args, **kwargs: calls.append((args, kwargs)) or {"recorded": True})
    spec = load_spec(SPEC_PATH)
    context = _context({"window_days": 30, "as_of": None})

    in_process = {
        "fetch_features": training.FetchFeaturesOperator,
        "check_quality": training.DataQualityOperator,
        "train": training.TrainModelOperator,
        "evaluate": training.EvaluateGateOperator,
    }[step](task_id=step, spec=spec, spec_path=str(SPEC_PATH), run_key=RUN_KEY)
    in_process.execute(context)

    docker = CtflowDockerOperator(task_id=step, step=step, spec=spec, spec_path=str(SPEC_PATH), image=IMAGE,
                                  run_key=RUN_KEY)
    argv = docker.core_command(context)
    assert argv[:3] == ["ctflow", "run-step", step], argv
    assert ctflow_cli(argv[1:]) == 0  # what the container runs, minus the program name

    (op_args, op_kwargs), (cli_args, cli_kwargs) = calls
    assert op_args == cli_args and op_args[0] == spec
    # The Airflow ids (dag, run, task, try) are MLflow tags only the in-process task knows.
    op_kwargs.pop("lineage", None)
    assert op_kwargs == cli_kwargs, argv
    if step == "fetch_features":
        assert cli_kwargs["window_days"] == 30 and cli_kwargs["feature_repo"] == Path("/srv/ctflow/feature_repo")
    if step in ("train", "evaluate"):
        assert cli_kwargs["tracking_uri"] == "http://mlflow:5000"


def _docker_unavailable() -> str | None:
    """None if a Docker engine answers and has the image, else why not."""
    try:
        import docker
    except ImportError as err:
        return f"the docker SDK is not installed ({err})"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as err:  # noqa: BLE001 - any reason is a reason to skip
        return f"no Docker engine reachable (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}: {type(err).__name__})"
    try:
        client.images.get(IMAGE)
    except Exception:  # noqa: BLE001
        return f"the Docker engine has no image {IMAGE} (build it: docker compose build, or set CTFLOW_TEST_IMAGE)"
    return None


@pytest.mark.integration
@pytest.mark.skipif(_docker_unavailable() is not None, reason=str(_docker_unavailable()))
def test_fetch_features_runs_in_a_container(feature_repo_ready, tmp_path, monkeypatch):
    """The image's spec and code, this checkout's feature data mounted where the image expects it."""
    from ctflow.operators.docker import CtflowDockerOperator
    from ctflow.spec import load_spec

    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)  # the container runs as uid 50000
    monkeypatch.setenv("CTFLOW_HOME", str(home))
    monkeypatch.setenv("CTFLOW_DOCKER_MOUNTS", f"{feature_repo_ready / 'data'}:/app/feature_repo/data:ro")
    monkeypatch.setenv("AIRFLOW_CONN_CTFLOW_FEAST",
                       json.dumps({"conn_type": "generic", "extra": {"repo_path": "/app/feature_repo"}}))
    monkeypatch.delenv("FEAST_FS_YAML_FILE_PATH", raising=False)
    operator = CtflowDockerOperator(task_id="fetch_features", step="fetch_features", spec=load_spec(SPEC_PATH),
                                    spec_path="/app/dags/specs/flight_delay.yaml", image=IMAGE, run_key=RUN_KEY,
                                    ctflow_home=str(home), auto_remove="force")
    result = operator.execute(_context({"window_days": 30, "as_of": None}))
    assert isinstance(result, dict) and result["rows"] > 0, result
    assert (home / "runs" / RUN_KEY.replace(":", "_").replace("+", "_") / "frame.parquet").exists()
