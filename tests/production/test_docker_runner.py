"""The docker runner (``runner: {kind: docker}``) calls the same core as the in-process operators.

* Without Docker: for every step a container runs, the ``ctflow run-step`` command line the
  DockerOperator builds, run by ctflow's CLI, gives the same result as the in-process operator
  of that step (the real core, Feast and MLflow, each in its own pipeline run).
* A step that refuses its input (data quality) exits with ``EXIT_REFUSED`` on the command
  line, which the DockerOperator turns into a final failure, as the in-process operator does.
* With a Docker engine (and ctflow's image built, ``docker compose build``): the operator runs
  ``fetch_features`` in a container and the training frame appears in the run folder; skipped,
  saying why, where there is no engine or no image.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from tests.conftest import DAGS_FOLDER

SPEC_PATH = DAGS_FOLDER / "specs" / "flight_delay.yaml"
RUN_KEY = "ct_flight_delay/manual__2013-03-01T00:00:00+00:00"
LOGICAL_DATE = datetime(2013, 3, 1, tzinfo=timezone.utc)
IMAGE = os.environ.get("CTFLOW_TEST_IMAGE", "ctflow:0.1.0")


@pytest.fixture
def connections(monkeypatch, tmp_path, feature_repo_ready):
    """The two ctflow connections (MLflow on a throw-away SQLite store, this checkout's Feast
    repository) and a throw-away CTFLOW_HOME."""
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_CTFLOW_MLFLOW",
                       json.dumps({"conn_type": "generic", "extra": {"tracking_uri": tracking_uri}}))
    monkeypatch.setenv("AIRFLOW_CONN_CTFLOW_FEAST",
                       json.dumps({"conn_type": "generic", "extra": {"repo_path": str(feature_repo_ready)}}))
    monkeypatch.setenv("CTFLOW_HOME", str(tmp_path / "home"))
    return tracking_uri


def _context(params: dict, run_key: str = RUN_KEY) -> dict:
    ti = SimpleNamespace(dag_id="ct_flight_delay", run_id=run_key.split("/", 1)[1], task_id="t", try_number=1)
    return {"params": params, "logical_date": LOGICAL_DATE, "dag_run": None, "ti": ti}


#: What differs between two runs of the same step by design: where and when it ran, its MLflow run.
RUN_SPECIFIC = {"path", "seconds", "fit_seconds", "run_id", "model_uri"}


def _comparable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in RUN_SPECIFIC}


def test_docker_command_line_and_in_process_operators_give_the_same_results(connections, capsys):
    """The real core, twice per step: through the in-process operator, and through the
    ``ctflow run-step`` command line the DockerOperator builds (what its container would run),
    each in its own pipeline run. Every result agrees, from the frame's content hash to the gate."""
    from ctflow.cli import main as ctflow_cli
    from ctflow.core import tracking
    from ctflow.operators import training
    from ctflow.operators.docker import DOCKER_STEPS, CtflowDockerOperator
    from ctflow.spec import load_spec

    spec = load_spec(SPEC_PATH)
    params = {"window_days": 30, "as_of": None}
    in_process_key, container_key = RUN_KEY, RUN_KEY + "_container"
    operators = {
        "fetch_features": training.FetchFeaturesOperator,
        "check_quality": training.DataQualityOperator,
        "train": training.TrainModelOperator,
        "evaluate": training.EvaluateGateOperator,
    }
    assert list(operators) == list(DOCKER_STEPS)
    results = {}
    for step, operator in operators.items():
        in_process = operator(task_id=step, spec=spec, spec_path=str(SPEC_PATH), run_key=in_process_key)
        mine = in_process.execute(_context(params, in_process_key))

        docker = CtflowDockerOperator(task_id=step, step=step, spec=spec, spec_path=str(SPEC_PATH), image=IMAGE,
                                      run_key=container_key)
        argv = docker.core_command(_context(params, container_key))
        assert argv[:3] == ["ctflow", "run-step", step], argv
        capsys.readouterr()
        assert ctflow_cli(argv[1:]) == 0, argv  # what the container runs, minus the program name
        theirs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # its XCom, as the operator reads it

        assert _comparable(theirs) == _comparable(mine), (step, argv)
        results[step] = theirs

    # params.window_days and the Feast connection reached the command line: 30 days of this repo's flights.
    assert results["fetch_features"]["window_start"] == "2013-01-30T00:00:00+00:00" and results["fetch_features"]["rows"] > 20000
    # The MLflow connection too: both candidates were logged to its store.
    client = tracking.client(connections)
    experiment = client.get_experiment_by_name(tracking.experiment_name(spec.pipeline)).experiment_id
    for key in (in_process_key, container_key):
        assert tracking.find_run(client, experiment, key, "candidate") is not None, key


def test_a_refused_frame_fails_for_good_in_process_and_on_the_command_line(connections, capsys):
    """As of 2013-01-20 the 28-day window is two-thirds covered (the data begins on January 1):
    check_quality refuses it. In process: AirflowFailException (no retries). On the container's
    command line: exit code EXIT_REFUSED, which the DockerOperator's failure carries and maps."""
    from airflow.providers.docker.exceptions import DockerContainerFailedException
    from airflow.sdk.exceptions import AirflowFailException

    from ctflow.cli import main as ctflow_cli
    from ctflow.cli.run_step import EXIT_REFUSED
    from ctflow.operators import training
    from ctflow.operators.docker import CtflowDockerOperator, container_exit_code
    from ctflow.spec import load_spec

    spec = load_spec(SPEC_PATH)
    run_key = "ct_flight_delay/manual__2013-01-20T00:00:00+00:00"
    context = {**_context({"window_days": 28, "as_of": None}, run_key),
               "logical_date": datetime(2013, 1, 20, tzinfo=timezone.utc)}

    def command_line(step: str) -> list[str]:
        operator = CtflowDockerOperator(task_id=step, step=step, spec=spec, spec_path=str(SPEC_PATH), image=IMAGE,
                                        run_key=run_key)
        return operator.core_command(context)[1:]

    assert ctflow_cli(command_line("fetch_features")) == 0
    capsys.readouterr()
    assert ctflow_cli(command_line("check_quality")) == EXIT_REFUSED
    printed = capsys.readouterr().out
    assert "min_window_coverage" in printed and "0.66" in printed, printed

    with pytest.raises(AirflowFailException, match="min_window_coverage"):
        training.DataQualityOperator(task_id="check_data_quality", spec=spec, run_key=run_key).execute(context)

    # The docker provider's failure text (operators/docker.py: f"Docker container failed: {result!r}").
    refused = DockerContainerFailedException(f"Docker container failed: {{'Error': None, 'StatusCode': {EXIT_REFUSED}}}")
    crashed = DockerContainerFailedException("Docker container failed: {'Error': None, 'StatusCode': 137}")
    assert container_exit_code(refused) == EXIT_REFUSED and container_exit_code(crashed) == 137
    assert container_exit_code(DockerContainerFailedException("no status")) is None


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
