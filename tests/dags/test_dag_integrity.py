"""Every DAG of dags/ imports, and follows the house rules (Astronomer's integrity-test style)."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.conftest import DAGS_FOLDER

MIN_RETRIES = 2


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_FOLDER))


def _relative(path: str) -> str:
    return path.split("/dags/", 1)[-1]


def test_no_import_errors(dagbag: DagBag):
    assert not dagbag.import_errors, "\n".join(f"{_relative(f)}: {e}" for f, e in dagbag.import_errors.items())


def test_every_spec_makes_ct_and_monitor_dags(dagbag: DagBag):
    specs = sorted(p.stem for p in (DAGS_FOLDER / "specs").glob("*.yaml"))
    assert specs, "dags/specs holds no spec"
    for name in specs:
        assert {f"ct_{name}", f"monitor_{name}"} <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", sorted(DagBag(dag_folder=str(DAGS_FOLDER)).dag_ids))
def test_dag_follows_house_rules(dagbag: DagBag, dag_id: str):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "ctflow" in dag.tags
    assert dag.doc_md and "ctflow pipeline" in dag.doc_md
    for task in dag.tasks:
        assert task.retries >= MIN_RETRIES or task.task_type == "ApprovalOperator", f"{task.task_id} retries"
        assert task.owner not in ("", "airflow"), f"{task.task_id} has no real owner"
        if task.task_type != "ApprovalOperator":  # waits for a human; bounded by response_timeout instead
            assert task.execution_timeout is not None, f"{task.task_id} has no execution_timeout"
