"""A broken spec shows as an import error naming it, while every valid spec's DAGs still load."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.conftest import DAGS_FOLDER, json_output, run_cli

GOOD = (DAGS_FOLDER / "specs" / "flight_delay.yaml").read_text()
BROKEN = GOOD.replace("pipeline: flight_delay", "pipeline: broken_one").replace("max_iter: 200", "max_iter: many")
BROKEN_LINE = next(i for i, line in enumerate(BROKEN.splitlines(), 1) if "max_iter: many" in line)


def test_good_spec_loads_beside_a_broken_one(dags_folder_with):
    folder = dags_folder_with({"flight_delay.yaml": GOOD, "broken_one.yaml": BROKEN})
    bag = DagBag(dag_folder=str(folder))
    assert set(bag.dag_ids) == {"ct_flight_delay", "monitor_flight_delay"}
    assert list(bag.import_errors) == [str(folder / "ctflow_spec_errors.py")]
    message = next(iter(bag.import_errors.values()))
    assert f"dags/specs/broken_one.yaml:{BROKEN_LINE}: model.params.max_iter: expected an integer, got 'many'" in message


def test_all_valid_means_no_import_error(dags_folder_with):
    folder = dags_folder_with({"flight_delay.yaml": GOOD})
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors
    assert set(bag.dag_ids) == {"ct_flight_delay", "monitor_flight_delay"}


@pytest.mark.integration
def test_airflow_cli_lists_the_broken_spec(dags_folder_with, airflow_db):
    folder = dags_folder_with({"flight_delay.yaml": GOOD, "broken_one.yaml": BROKEN})
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(folder)}
    reserialized = run_cli("airflow", "dags", "reserialize", env=env)
    assert reserialized.returncode == 0, reserialized.stderr[-2000:]
    listed = run_cli("airflow", "dags", "list-import-errors", "-o", "json", env=env)
    assert listed.returncode == 1, listed.stderr[-2000:]  # the command's way of saying "errors found"
    errors = json_output(listed.stdout)
    assert [e["filepath"] for e in errors] == ["ctflow_spec_errors.py"]
    assert "broken_one.yaml" in errors[0]["error"] and "max_iter" in errors[0]["error"]
    dags = run_cli("airflow", "dags", "list", "-o", "json", env=env)
    assert {d["dag_id"] for d in json_output(dags.stdout)} >= {"ct_flight_delay", "monitor_flight_delay"}


def test_a_valid_spec_whose_dags_fail_to_build_hides_no_other(dags_folder_with, monkeypatch):
    """Fault injection: the factory raises for one valid spec (a bug no rule foresaw). Its file is
    reported as an import error; the other spec's DAGs are still built."""
    from ctflow.factory import build

    other = GOOD.replace("pipeline: flight_delay", "pipeline: second_one")
    folder = dags_folder_with({"flight_delay.yaml": GOOD, "second_one.yaml": other})
    real = build.build_dags

    def failing_for_second_one(spec, **kwargs):
        if spec.pipeline == "second_one":
            raise RuntimeError("factory bug for second_one")
        return real(spec, **kwargs)

    monkeypatch.setattr(build, "build_dags", failing_for_second_one)
    bag = DagBag(dag_folder=str(folder))
    assert set(bag.dag_ids) == {"ct_flight_delay", "monitor_flight_delay"}
    assert list(bag.import_errors) == [str(folder / "ctflow_spec_errors.py")]
    message = next(iter(bag.import_errors.values()))
    assert "dags/specs/second_one.yaml: its DAGs cannot be built: RuntimeError: factory bug for second_one" in message
