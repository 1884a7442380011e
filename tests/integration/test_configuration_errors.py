"""A configuration error fails its task for good on the first try, through real Airflow.

Two pipelines whose spec validates but names what does not exist, an unknown Feast feature
service and a missing entity file, each get a ``ct_`` run through ``dag.test`` (Airflow's
``airflow dags test``) with retries and a one-second retry delay. ``fetch_features`` fails with
try number 1 (no retry: ``AirflowFailException``), and its log names the spec field and the fix.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.conftest import demo_spec, task_states

pytestmark = pytest.mark.integration

AS_OF = datetime(2013, 3, 1, tzinfo=UTC)
QUICK = (('train: "0 2 1 */3 *"', "train: null"), ('monitor: "0 6 * * 1"', "monitor: null"))
RETRYING = "\ndefaults:\n  retries: 2\n  retry_delay: 1s\n"
CASES = {
    "cfg_unknown_service": (
        ("features: flight_delay_v1", "features: flight_delay_v9"),
        ["data.features", "unknown feature service 'flight_delay_v9'", "fix: name one of the repository's services"],
    ),
    "cfg_missing_entities": (
        ("entities: feature_repo/data/flights.parquet", "entities: feature_repo/data/missing.parquet"),
        ["data.entities", "missing.parquet does not exist", "fix: point data.entities at a parquet file"],
    ),
}


def _spec(pipeline: str, change: tuple[str, str]) -> str:
    return demo_spec(("pipeline: flight_delay", f"pipeline: {pipeline}"), *QUICK, change) + RETRYING


@pytest.fixture(scope="module")
def bag(airflow_db, feature_repo_ready, tmp_path_factory):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from tests.conftest import write_dags_folder

    folder = write_dags_folder(tmp_path_factory.mktemp("config-errors") / "dags",
                               {f"{name}.yaml": _spec(name, change) for name, (change, _) in CASES.items()})
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    return bag


@pytest.mark.parametrize("pipeline", list(CASES))
def test_a_configuration_error_fails_at_once_naming_field_and_fix(bag, pipeline, capfd, caplog):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = bag.get_dag(f"ct_{pipeline}")
    assert dag.get_task("training.fetch_features").retries == 2
    run = dag.test(logical_date=AS_OF)
    states = task_states(run)
    assert run.state == "failed", states
    assert states["training.fetch_features"] == "failed", states
    with create_session() as session:
        tries = session.scalar(select(TaskInstance.try_number).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id,
            TaskInstance.task_id == "training.fetch_features"))
    assert tries == 1  # failed for good: not retried
    captured = capfd.readouterr()
    log = captured.out + captured.err + caplog.text
    assert "configuration error (not retried)" in log, log[-5000:]
    for needle in CASES[pipeline][1]:
        assert needle in log, needle
