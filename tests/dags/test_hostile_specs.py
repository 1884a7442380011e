"""A DagBag over the demo spec plus the hostile corpus (tests/hostile.py): the demo's DAGs are
built, each hostile file is reported by name, and no secret reaches a DAG's text."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.conftest import demo_spec
from tests.hostile import SECRET_ENV, write_corpus

OPTED_IN = demo_spec(
    ("pipeline: flight_delay", "pipeline: opted_in"),
    ("description: Will", "description: ${CTFLOW_SPEC_TEAM_NAME} asks - Will"),
    ("owner: data-science-flights", "owner: ${CTFLOW_SPEC_TEAM_NAME}"),
)


@pytest.fixture
def bag(dags_folder_with, tmp_path, monkeypatch) -> tuple[DagBag, dict[str, str]]:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CTFLOW_SPEC_TEAM_NAME", "flights-team")
    folder = dags_folder_with({"flight_delay.yaml": demo_spec(), "opted_in.yaml": OPTED_IN})
    expected = write_corpus(folder / "specs", outside=tmp_path / "outside")
    return DagBag(dag_folder=str(folder)), expected


def test_demo_dags_are_built_beside_every_hostile_file(bag):
    dagbag, expected = bag
    assert set(dagbag.dag_ids) == {"ct_flight_delay", "monitor_flight_delay", "ct_opted_in", "monitor_opted_in"}
    (path,) = dagbag.import_errors
    assert path.endswith("ctflow_spec_errors.py")
    message = dagbag.import_errors[path]
    assert f"{len(expected)} invalid ctflow spec(s)" in message
    lines = message.splitlines()
    for name, fragment in expected.items():
        assert any(f"dags/specs/{name}" in line and fragment in line for line in lines), f"{name}:\n{message}"
    # Airflow shows the reporter's own raise as a traceback; no parser failure may be in it
    assert not any(kind in message for kind in ("RecursionError", "UnicodeDecodeError", "MemoryError", "yaml."))


def test_no_secret_reaches_a_dag(bag):
    dagbag, _ = bag
    opted_in = dagbag.dags["ct_opted_in"]
    assert opted_in.owner == "flights-team" and "flights-team asks - Will" in opted_in.description  # interpolation works
    for dag in dagbag.dags.values():
        texts = [dag.description or "", dag.doc_md or "", dag.owner, *(str(v) for v in dag.default_args.values())]
        texts += [str(task.owner) for task in dag.tasks]
        for secret in SECRET_ENV.values():
            assert not any(secret in text for text in texts), dag.dag_id
    for message in dagbag.import_errors.values():
        assert not any(secret in message for secret in SECRET_ENV.values())
