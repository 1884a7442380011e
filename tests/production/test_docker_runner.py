"""The docker runner (``runner: {kind: docker}``) calls the same core as the in-process operators.

* Without Docker: for every step a container runs, the ``ctflow run-step`` command line the
  DockerOperator builds, run by ctflow's CLI, gives the same result as the in-process operator
  of that step (the real core, Feast and MLflow, each in its own pipeline run).
* A step that refuses its input (data quality) exits with ``EXIT_REFUSED`` on the command
  line, which the DockerOperator turns into a final failure, as the in-process operator does.
* On a Docker engine, with ctflow's image (``make images``): the operator runs every heavy step
  in a container through the Docker provider, with the results of the in-process operators on
  the same data (frame fingerprint, quality, metrics, gate), and the candidate it trained is
  registered by the worker; the data-quality refusal (exit 3) fails the task for good through
  the provider's real ``DockerContainerFailedException``; a container killed during ``train``
  fails the try as retryable, and the retry trains. Skipped, saying why, where there is no
  engine; under ``CI=true`` a failure.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from ctflow.contract import mlflow_tags
from tests.conftest import DAGS_FOLDER

SPEC_PATH = DAGS_FOLDER / "specs" / "flight_delay.yaml"
RUN_KEY = "ct_flight_delay/manual__2013-03-01T00:00:00+00:00"
LOGICAL_DATE = datetime(2013, 3, 1, tzinfo=UTC)
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


@pytest.mark.integration
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


@pytest.mark.integration
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
               "logical_date": datetime(2013, 1, 20, tzinfo=UTC)}

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

    # The provider's real failure, with exit code 3, is test_containers_refuse_a_frame_for_good's.
    assert container_exit_code(DockerContainerFailedException("no status")) is None


# --- in containers, on a Docker engine --------------------------------------------------------


@pytest.fixture
def in_containers(connections, feature_repo_ready, tmp_path, monkeypatch):
    """Where the container sees what this process sees, at the same paths: CTFLOW_HOME and the
    SQLite MLflow store (one folder, read-write; the container runs as uid 50000, so this test
    makes what it creates writable by anyone: umask 0), this checkout's Feast repository and
    DAGs folder (read-only). CTFLOW_PROJECT is this checkout, so the spec's relative paths agree."""
    from tests.production.containers import require_engine, stack_images
    from tests.production.native import PROJECT

    require_engine()
    stack_images()
    shared = tmp_path / "shared"
    previous = os.umask(0)
    try:
        shared.mkdir(mode=0o777)
        # SQLite creates a database 0644 whatever the umask: an empty file it accepts as a new one.
        store = shared / "mlflow.db"
        store.touch(mode=0o666)
        tracking_uri = f"sqlite:///{store}"
        monkeypatch.setenv("AIRFLOW_CONN_CTFLOW_MLFLOW",
                           json.dumps({"conn_type": "generic", "extra": {"tracking_uri": tracking_uri}}))
        monkeypatch.setenv("CTFLOW_HOME", str(shared))
        monkeypatch.setenv("CTFLOW_PROJECT", str(PROJECT))
        monkeypatch.setenv("CTFLOW_FEATURE_REPO", str(feature_repo_ready))
        monkeypatch.delenv("FEAST_FS_YAML_FILE_PATH", raising=False)
        monkeypatch.setenv("CTFLOW_DOCKER_MOUNTS", f"{feature_repo_ready}:{feature_repo_ready}:ro,"
                                                   f"{SPEC_PATH.parent}:{SPEC_PATH.parent}:ro")
        yield tracking_uri
    finally:
        os.umask(previous)


def _docker_operator(step: str, run_key: str, **kwargs):
    from ctflow.operators.docker import CtflowDockerOperator
    from ctflow.spec import load_spec
    from tests.production.containers import CTFLOW_IMAGE

    return CtflowDockerOperator(task_id=step, step=step, spec=load_spec(SPEC_PATH), spec_path=str(SPEC_PATH),
                                image=CTFLOW_IMAGE, run_key=run_key, auto_remove="force", **kwargs)


@pytest.mark.integration
@pytest.mark.containers
def test_containers_give_the_in_process_results_and_the_worker_registers(in_containers):
    from ctflow.core import tracking
    from ctflow.operators import promotion, training
    from ctflow.spec import load_spec

    spec = load_spec(SPEC_PATH)
    params = {"window_days": 30, "as_of": None}
    in_process_key, container_key = RUN_KEY, RUN_KEY + "_docker"
    operators = {
        "fetch_features": training.FetchFeaturesOperator,
        "check_quality": training.DataQualityOperator,
        "train": training.TrainModelOperator,
        "evaluate": training.EvaluateGateOperator,
    }
    for step, operator in operators.items():
        mine = operator(task_id=step, spec=spec, spec_path=str(SPEC_PATH), run_key=in_process_key).execute(
            _context(params, in_process_key))
        theirs = _docker_operator(step, container_key).execute(_context(params, container_key))
        assert isinstance(theirs, dict), (step, theirs)
        assert _comparable(theirs) == _comparable(mine), step
    # The frame the container wrote is where the next task (in any worker) looks for it.
    client = tracking.client(in_containers)
    experiment = client.get_experiment_by_name(tracking.experiment_name(spec.pipeline)).experiment_id
    candidates = {key: tracking.find_run(client, experiment, key, "candidate") for key in (in_process_key, container_key)}
    assert all(candidates.values()), candidates
    logged = {key: _comparable(run.data.metrics) for key, run in candidates.items()}
    assert logged[container_key] == logged[in_process_key]

    # Registration stays in the worker: it registers what the container trained, as it would its own.
    registered = {}
    for key in (in_process_key, container_key):
        register = promotion.RegisterModelOperator(task_id="register", spec=spec, spec_path=str(SPEC_PATH), run_key=key)
        registered[key] = register.execute(_context(params, key))
    assert registered[container_key]["version"] != registered[in_process_key]["version"], registered
    version = client.get_model_version(spec.model_name, registered[container_key]["version"])
    assert version.run_id == candidates[container_key].info.run_id
    assert version.tags[mlflow_tags.RUN_KEY] == container_key


@pytest.mark.integration
@pytest.mark.containers
def test_containers_refuse_a_frame_for_good(in_containers):
    """check_quality's container exits 3 (EXIT_REFUSED): the provider raises its real
    DockerContainerFailedException, which the operator turns into AirflowFailException."""
    from airflow.providers.docker.exceptions import DockerContainerFailedException
    from airflow.sdk.exceptions import AirflowFailException

    from ctflow.cli.run_step import EXIT_CONFIGURATION, EXIT_REFUSED
    from ctflow.operators.docker import container_exit_code

    run_key = "ct_flight_delay/manual__2013-01-20T00:00:00+00:00"
    context = {**_context({"window_days": 28, "as_of": None}, run_key),
               "logical_date": datetime(2013, 1, 20, tzinfo=UTC)}
    assert _docker_operator("fetch_features", run_key).execute(context)["rows"] > 0
    with pytest.raises(AirflowFailException, match="min_window_coverage") as refused:
        _docker_operator("check_quality", run_key).execute(context)
    cause = refused.value.__cause__
    assert isinstance(cause, DockerContainerFailedException), type(cause)
    assert container_exit_code(cause) == EXIT_REFUSED, str(cause)
    assert any(b"min_window_coverage" in (line if isinstance(line, bytes) else line.encode()) for line in cause.logs)
    # The exit code tells the view's label: a refusal (3) here; a configuration error (2) below, where
    # check_quality runs for a run key no fetch_features wrote a frame for.
    assert refused.value.kind == "refused"
    with pytest.raises(AirflowFailException, match="found a configuration error") as misconfigured:
        _docker_operator("check_quality", run_key + "_not_fetched").execute(context)
    assert container_exit_code(misconfigured.value.__cause__) == EXIT_CONFIGURATION
    assert misconfigured.value.kind == "configuration" and "fetch_features" in str(misconfigured.value)


@pytest.mark.integration
@pytest.mark.containers
def test_a_killed_container_fails_the_try_for_a_retry(in_containers):
    """SIGKILL the train container once its MLflow run exists: the try fails with the provider's
    exception (exit 137), not a final failure, so Airflow retries; the retry trains."""
    import threading

    import docker
    from airflow.providers.docker.exceptions import DockerContainerFailedException
    from airflow.sdk.exceptions import AirflowFailException

    from ctflow.core import tracking
    from ctflow.operators.docker import container_exit_code

    params = {"window_days": 30, "as_of": None}
    run_key = RUN_KEY + "_killed"
    assert _docker_operator("fetch_features", run_key).execute(_context(params, run_key))["rows"] > 0
    name = f"ctflow-test-train-{os.getpid()}-{datetime.now().strftime('%H%M%S%f')}"
    outcome: dict = {}

    def first_try():
        try:
            outcome["result"] = _docker_operator("train", run_key, container_name=name).execute(_context(params, run_key))
        except Exception as err:  # noqa: BLE001 - what the try raised is the assertion
            outcome["error"] = err

    thread = threading.Thread(target=first_try)
    thread.start()
    client = tracking.client(in_containers)
    engine = docker.from_env()
    deadline = time.monotonic() + 300
    while not _candidate_running(client, run_key):  # the container is training
        assert thread.is_alive() and time.monotonic() < deadline, outcome
        time.sleep(0.5)
    engine.containers.get(name).kill()
    thread.join(timeout=120)
    error = outcome.get("error")
    assert isinstance(error, DockerContainerFailedException) and not isinstance(error, AirflowFailException), outcome
    assert container_exit_code(error) == 137, str(error)

    retried = _docker_operator("train", run_key).execute(_context(params, run_key))
    assert retried["metrics"]["roc_auc"] > 0.6, retried
    experiment = client.get_experiment_by_name(tracking.experiment_name("flight_delay")).experiment_id
    assert tracking.find_run(client, experiment, run_key, "candidate").info.run_id == retried["run_id"]


def _candidate_running(client, run_key: str) -> bool:
    from ctflow.core import tracking

    experiment = client.get_experiment_by_name(tracking.experiment_name("flight_delay"))
    if experiment is None:
        return False
    return bool(client.search_runs([experiment.experiment_id], filter_string=(
        f"tags.`{mlflow_tags.RUN_KEY}` = '{run_key}' and tags.`{mlflow_tags.STAGE}` = 'candidate' "
        "and attributes.status = 'RUNNING'")))
