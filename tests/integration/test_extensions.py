"""A deployment extends ctflow through entry points, never through the spec.

``tests/fixtures/extension_pkg`` holds a package and its ``*.dist-info`` (``METADATA``,
``entry_points.txt``), as pip would have installed them: on ``PYTHONPATH``, importlib.metadata
finds its entry points. It registers a subclass of the train operator (``ctflow.operators``)
and a step after ``evaluate`` (``ctflow.steps``). The demo spec, unchanged, then builds DAGs that
use both, and a real ``airflow dags test`` run executes them: the subclass tags the candidate's
MLflow run, the extra step reads the gate's decision and runs between ``evaluate`` and
``register``. The run promotes a first champion, announced once on the promoted asset.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import DAGS_FOLDER, PROJECT, QUICK_TRIGGER_ONLY, asset_events, demo_spec, run_cli

pytestmark = pytest.mark.integration

EXTENSION = PROJECT / "tests" / "fixtures" / "extension_pkg"
PROMOTED = "ctflow://flight_delay/promoted"


@pytest.fixture
def extension_on_path(monkeypatch):
    """The extension package importable and its entry points visible, in this process too."""
    from ctflow import extensions

    monkeypatch.syspath_prepend(str(EXTENSION))
    extensions.clear_cache()
    yield EXTENSION
    extensions.clear_cache()


def test_dags_of_an_unchanged_spec_use_the_registered_operator_and_step(extension_on_path):
    from ctflow.factory.build import build_dags
    from ctflow.spec import load_spec

    ct, monitor = build_dags(load_spec(DAGS_FOLDER / "specs" / "flight_delay.yaml"))
    assert type(ct.get_task("training.train")).__name__ == "AuditedTrainOperator"
    check = ct.get_task("training.fairness_check")
    assert check.upstream_task_ids == {"training.evaluate"}
    assert check.downstream_task_ids == {"promotion.register"}
    assert "fairness_check" not in {t.task_id for t in monitor.tasks}  # its position is in ct_ only


def test_without_the_package_the_dags_are_ctflows_own():
    from ctflow import extensions
    from ctflow.factory.build import build_ct_dag
    from ctflow.spec import load_spec

    extensions.clear_cache()
    dag = build_ct_dag(load_spec(DAGS_FOLDER / "specs" / "flight_delay.yaml"))
    assert type(dag.get_task("training.train")).__name__ == "TrainModelOperator"
    assert dag.get_task("training.evaluate").downstream_task_ids == {"promotion.register"}


def test_airflow_dags_test_runs_the_subclass_and_the_extra_step(airflow_db, feature_repo_ready, tmp_path,
                                                                 dags_folder_with):
    from mlflow import MlflowClient

    # The demo spec with a smaller fit (nothing in it names the extension): the run is about the wiring.
    folder = dags_folder_with({"flight_delay.yaml": demo_spec(*QUICK_TRIGGER_ONLY)})
    home, mlflow_uri = tmp_path / "home", f"sqlite:///{tmp_path / 'mlflow.db'}"
    promoted_before = len(asset_events(PROMOTED))
    result = run_cli(
        "airflow", "dags", "test", "ct_flight_delay", "2013-03-01",
        env={"PYTHONPATH": os.pathsep.join(filter(None, [str(EXTENSION), os.environ.get("PYTHONPATH")])),
             "AIRFLOW__CORE__DAGS_FOLDER": str(folder), "CTFLOW_HOME": str(home), "MLFLOW_TRACKING_URI": mlflow_uri},
        timeout=2400,  # minutes of training on a shared machine
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    # The extra step ran after the gate: it read gate.json and left its verdict in the run folder.
    [marker] = list((home / "runs").glob("ct_flight_delay/*/fairness.json"))
    verdict = json.loads(marker.read_text())
    assert verdict["gate_decision"] == "promote" and verdict["pipeline"] == "flight_delay"
    dag_id, run_id = verdict["run_key"].split("/", 1)
    times = _task_times(dag_id, run_id)
    assert times["training.evaluate"][1] <= times["training.fairness_check"][0]
    assert times["training.fairness_check"][1] <= times["promotion.register"][0]

    # The subclass trained (ctflow's training, lineage included) and tagged the candidate.
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("ctflow/flight_delay")
    [run] = client.search_runs([experiment.experiment_id], filter_string="tags.`ctflow.stage` = 'candidate'")
    assert run.data.tags["audit.trained_by"] == "AuditedTrainOperator"
    assert run.data.tags["airflow.task_id"] == "training.train"

    # A real promotion: announced once, through the promote task's alias.
    events = asset_events(PROMOTED)[promoted_before:]
    assert [(e["task_id"], e["extra"]["by"], e["extra"]["version"]) for e in events] == [("promotion.promote", "ct", "1")]


def _task_times(dag_id: str, run_id: str) -> dict[str, tuple]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.start_date, TaskInstance.end_date, TaskInstance.state)
                               .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all()
    assert all(str(getattr(r.state, "value", r.state)) in ("success", "skipped") for r in rows), rows
    return {r.task_id: (r.start_date, r.end_date) for r in rows}
