"""A user's table that ctflow cannot read as declared fails at once; an error a retry may cure still retries.

* Permanent: the demo's entity table with ``origin`` as integer codes, as an encoding step might
  leave it, where the weather table's ``origin`` is text. The step's check of column types
  (:mod:`ctflow.spec.column_types`) raises a ``SourceDataError`` naming the table, the column and
  the fix before reading a row; in a real ``ct_`` run ``fetch_features`` fails on its first try of
  three; ``ctflow run-step`` exits 2 with one line. The point-in-time join itself, reached without
  that check, still fails final: DuckDB cannot convert 'EWR' to a number, on every try. A weather
  table whose ``event_timestamp`` is text fails the online store's materialization the same way.
* Transient: a pipeline whose Feast repository has lost its weather file (as while its producer
  rewrites it) gets DuckDB's IO error, which is retried: the task runs its three tries, and
  ``ctflow run-step`` exits 1, which the docker runner retries.

The tables are the bootstrap's own, changed as a user's would be; the repositories are the demo's
declarations applied to a copy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from markupsafe import escape

from tests.conftest import QUICK_TRIGGER_ONLY, demo_spec, run_cli, task_states

pytestmark = pytest.mark.integration

AS_OF = datetime(2013, 3, 1, tzinfo=UTC)
RETRYING = "\ndefaults:\n  retries: 2\n  retry_delay: 1s\n"
CODES, GONE = "data_err_codes", "data_err_gone"


def _demo_repo(feature_repo: Path, target: Path) -> Path:
    """The demo's declarations and tables (linked) applied to a registry of ``target``'s own."""
    from tests.core.test_pipeline_feature_repo import _demo_repo_copy, _module

    repo = _demo_repo_copy(feature_repo, target)
    bootstrap = _module(repo / "bootstrap.py", f"bootstrap_{target.name}")
    bootstrap.apply_definitions(repo, _module(repo / "feature_definitions.py", f"definitions_{target.name}"))
    return repo


@pytest.fixture(scope="module")
def data_root(feature_repo_ready, tmp_path_factory):
    """A data root (``$CTFLOW_DATA_ROOTS``) with the changed tables and repositories, set for the module."""
    root = tmp_path_factory.mktemp("data-errors")
    flights = pd.read_parquet(feature_repo_ready / "data" / "flights.parquet")
    flights["origin"] = pd.factorize(flights["origin"])[0]  # 'EWR' -> 0, ...: int64
    flights.to_parquet(root / "flights_coded.parquet", index=False)

    gone = _demo_repo(feature_repo_ready, root / "repo_gone")
    (gone / "data" / "origin_weather_hourly.parquet").unlink()

    texts = _demo_repo(feature_repo_ready, root / "repo_text_times")
    weather_file = texts / "data" / "origin_weather_hourly.parquet"
    weather = pd.read_parquet(weather_file)
    weather["event_timestamp"] = weather["event_timestamp"].astype(str)
    weather.loc[weather.index[len(weather) // 2], "event_timestamp"] = "unknown"  # a report without a time
    weather_file.unlink()  # a link to the demo's own table
    weather.to_parquet(weather_file, index=False)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CTFLOW_DATA_ROOTS", str(root))
        yield root


def _spec(root: Path, pipeline: str) -> str:
    change = {
        CODES: ("entities: feature_repo/data/flights.parquet", f"entities: {root / 'flights_coded.parquet'}"),
        GONE: ("features: flight_delay_v1", f"features: flight_delay_v1\n  feature_repo: {root / 'repo_gone'}"),
        "text_times": ("features: flight_delay_v1", f"features: flight_delay_v1\n  feature_repo: {root / 'repo_text_times'}"),
    }[pipeline]
    return demo_spec(("pipeline: flight_delay", f"pipeline: {pipeline}"), *QUICK_TRIGGER_ONLY, change) + RETRYING


# --- the core step -------------------------------------------------------------------------


def test_the_fetch_step_names_the_table_the_column_and_the_fix(data_root, tmp_path):
    from ctflow.core import steps
    from ctflow.exceptions import SourceDataError, not_retried
    from ctflow.spec import parse_spec

    with pytest.raises(SourceDataError) as raised:
        steps.fetch_features(parse_spec(_spec(data_root, CODES)), as_of=AS_OF, run_dir=tmp_path, window_days=28)
    error = raised.value
    assert error.table == str(data_root / "flights_coded.parquet") and error.column == "origin"
    assert error.problem.startswith("int64 values stored where the feature view origin_weather_hourly declares join "
                                    "key origin as String") and error.expected == "String values"
    assert error.fix.startswith("store origin in the entity table as text")
    assert not_retried(error).startswith("configuration error (not retried): ")


def test_the_join_itself_names_the_table_the_column_and_the_fix(data_root, feature_repo_ready):
    """What the step's check of column types guards against: DuckDB's error, translated."""
    from datetime import timedelta

    from ctflow.core import features
    from ctflow.exceptions import SourceDataError

    rows = features.load_entity_rows(data_root / "flights_coded.parquet", timestamp="scheduled_departure",
                                     start=AS_OF - timedelta(days=7), end=AS_OF)
    with pytest.raises(SourceDataError) as raised:
        features.get_historical_features(feature_repo_ready, "flight_delay_v1", rows, timestamp="scheduled_departure")
    error = raised.value
    assert Path(error.table).name == "origin_weather_hourly.parquet" and error.column == "origin"
    assert "Could not convert string" in error.problem and "String values" in error.expected
    assert "data.entities" in error.fix


def test_materialization_names_the_table_the_column_and_the_fix(data_root):
    from ctflow.core import online
    from ctflow.exceptions import SourceDataError
    from ctflow.spec import parse_spec

    with pytest.raises(SourceDataError) as raised:
        online.materialize(parse_spec(_spec(data_root, "text_times")), as_of=AS_OF)
    error = raised.value
    assert error.table == str(data_root / "repo_text_times" / "data" / "origin_weather_hourly.parquet")
    assert error.column == "event_timestamp" and error.problem.startswith("string values stored where the feature "
                                                                          "view origin_weather_hourly declares event time")
    assert error.expected == "UnixTimestamp values"
    assert "as a timestamp" in error.fix and "timestamp_field" in error.fix


def test_a_table_that_cannot_be_opened_is_not_final(data_root, tmp_path):
    import duckdb

    from ctflow.core import steps
    from ctflow.exceptions import not_retried
    from ctflow.spec import parse_spec

    with pytest.raises(duckdb.IOException) as raised:
        steps.fetch_features(parse_spec(_spec(data_root, GONE)), as_of=AS_OF, run_dir=tmp_path, window_days=28)
    assert not_retried(raised.value) is None


# --- a real Airflow task -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bag(airflow_db, data_root, tmp_path_factory):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from tests.conftest import write_dags_folder

    folder = write_dags_folder(tmp_path_factory.mktemp("data-errors-dags") / "dags",
                               {f"{name}.yaml": _spec(data_root, name) for name in (CODES, GONE)})
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    return bag


def _fetch_tries(bag, pipeline: str) -> tuple[int, str]:
    """Run ``ct_<pipeline>`` once; the tries of ``fetch_features`` (failed)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = bag.get_dag(f"ct_{pipeline}")
    assert dag.get_task("training.fetch_features").retries == 2
    run = dag.test(logical_date=AS_OF)
    states = task_states(run)
    assert run.state == "failed" and states["training.fetch_features"] == "failed", states
    with create_session() as session:
        return session.scalar(select(TaskInstance.try_number).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id,
            TaskInstance.task_id == "training.fetch_features"))


def test_the_task_fails_on_its_first_try_naming_the_column(bag, capfd, caplog):
    tries = _fetch_tries(bag, CODES)
    assert tries == 1  # failed for good: not retried
    captured = capfd.readouterr()
    log = captured.out + captured.err + caplog.text
    assert "configuration error (not retried)" in log, log[-5000:]
    assert "flights_coded.parquet, column 'origin'" in log and "in the entity table" in log, log[-5000:]


def test_an_io_error_keeps_the_tasks_retries(bag):
    assert _fetch_tries(bag, GONE) == 3


# --- the ctflow view ------------------------------------------------------------------------


def _failure_shown(bag, pipeline: str) -> dict:
    """Run ``ct_<pipeline>`` once; the failure the view's Airflow reader gives for that run."""
    from ctflow.ui.airflow_runs import airflow_state

    run = bag.get_dag(f"ct_{pipeline}").test(logical_date=AS_OF)
    assert run.state == "failed"
    (shown,) = [r for r in airflow_state([run.dag_id], runs=50)[run.dag_id]["runs"] if r["run_id"] == run.run_id]
    return shown["failure"]


def test_the_view_names_the_failed_task_and_why_a_retry_cannot_fix_it(bag, data_root, monkeypatch):
    from ctflow.factory.discover import load_folder
    from ctflow.ui import app, data

    failure = _failure_shown(bag, CODES)
    assert failure["failed"] == ["training.fetch_features"]
    assert "training.train" in failure["upstream_failed"] and "training.fetch_features" not in failure["upstream_failed"]
    (reason,) = failure["reasons"]
    assert (reason["task_id"], reason["kind"]) == ("training.fetch_features", "configuration")
    assert reason["message"].startswith(f"configuration error (not retried): {data_root / 'flights_coded.parquet'}, "
                                        "column 'origin': int64 values stored")
    assert "fix: store origin in the entity table as text" in reason["message"]

    # The pipeline page shows it beside the run, escaped.
    (item,) = [i for i in load_folder(Path(bag.dag_folder) / "specs") if i.spec and i.spec.pipeline == CODES]
    payload = data.detail(item, data.Sources.default())
    payload.update(rollback_to=None, may_trigger=True)
    html = app._templates().get_template("pipeline.html").render(
        base="/ctflow", airflow_root="", user="admin", timezone="UTC", p=payload, chart="")
    assert "failed at <b>training.fetch_features</b>" in html
    assert f'data-task-id="training.fetch_features">{escape(reason["message"])}</div>' in html
    assert "column &#39;origin&#39;" in html
    # So does the overview, beside the pipeline's last CT run.
    monkeypatch.setenv("CTFLOW_SPECS_FOLDER", str(Path(bag.dag_folder) / "specs"))
    overview = data.overview(data.Sources.default(), visible={CODES})
    html = app._templates().get_template("overview.html").render(
        base="/ctflow", airflow_root="", user="admin", timezone="UTC", data=overview, specs_folder="specs")
    assert f'data-task-id="training.fetch_features">{escape(reason["message"])}</div>' in html


def test_a_retried_failure_leaves_no_reason(bag):
    failure = _failure_shown(bag, GONE)
    assert failure["failed"] == ["training.fetch_features"] and failure["reasons"] == []


# --- ctflow run-step (the container's command) ----------------------------------------------


def _run_step(data_root: Path, tmp_path: Path, pipeline: str, step: str = "fetch_features"):
    spec = tmp_path / f"{pipeline}.yaml"
    spec.write_text(_spec(data_root, pipeline))
    return run_cli("ctflow", "run-step", step, "--spec", str(spec), "--run-key", f"{pipeline}/{tmp_path.name}",
                   "--as-of", AS_OF.isoformat(), "--window-days", "28", env={"CTFLOW_DATA_ROOTS": str(data_root)})


def test_run_step_exits_2_with_one_line_naming_the_column(data_root, tmp_path):
    from tests.cli.test_run_step_cli import assert_one_line_error

    result = _run_step(data_root, tmp_path, CODES)
    line = assert_one_line_error(result, "configuration error (not retried)", "column 'origin'", "entity table")
    assert "int64 values stored where the feature view origin_weather_hourly declares join key origin" in line


def test_run_step_exits_1_on_an_io_error(data_root, tmp_path):
    result = _run_step(data_root, tmp_path, GONE)
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert "IOException" in result.stderr, result.stderr[-3000:]
