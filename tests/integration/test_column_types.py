"""Column types are part of the data contract: checked by ``validate --deep`` and before a run reads.

The tables are the demo's own (its bootstrap writes them), changed as a user's export might:
the weather table's ``temp`` written as text with its unit ("39.0 F"), its ``humid`` renamed,
the flights table's ``origin`` as integer codes. Before the check, the fetch step trained on a
``temp`` of NaN without a word, and materialization failed with Feast's ``AssertionError``, retried.
The demo's and the us_employment example's own tables raise no alarm.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import PROJECT, QUICK_TRIGGER_ONLY, demo_spec

pytestmark = pytest.mark.integration

AS_OF = datetime(2013, 3, 1, tzinfo=UTC)
WEATHER = "origin_weather_hourly.parquet"


def _changed_repo(feature_repo: Path, target: Path, change) -> Path:
    """The demo's declarations applied to a registry of ``target``'s own, its weather table changed by ``change``."""
    from tests.integration.test_data_errors import _demo_repo

    repo = _demo_repo(feature_repo, target)
    weather = pd.read_parquet(repo / "data" / WEATHER)
    (repo / "data" / WEATHER).unlink()  # a link to the demo's own table
    change(weather).to_parquet(repo / "data" / WEATHER, index=False)
    return repo


def _with_units(weather: pd.DataFrame) -> pd.DataFrame:
    weather["temp"] = weather["temp"].map(lambda t: f"{t:.1f} F")
    return weather


@pytest.fixture(scope="module")
def data_root(feature_repo_ready, tmp_path_factory):
    """A data root (``$CTFLOW_DATA_ROOTS``) with the changed tables, set for the module."""
    root = tmp_path_factory.mktemp("column-types")
    _changed_repo(feature_repo_ready, root / "repo_units", _with_units)
    _changed_repo(feature_repo_ready, root / "repo_mixed",
                  lambda weather: _with_units(weather).rename(columns={"humid": "humidity"}))
    from tests.integration.test_data_errors import _demo_repo

    gone = _demo_repo(feature_repo_ready, root / "repo_gone")
    (gone / "data" / WEATHER).unlink()
    flights = pd.read_parquet(feature_repo_ready / "data" / "flights.parquet")
    flights["origin"] = pd.factorize(flights["origin"])[0]  # 'EWR' -> 0, ...: int64
    flights.to_parquet(root / "flights_coded.parquet", index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CTFLOW_DATA_ROOTS", str(root))
        yield root


def _spec(root: Path, repo: str, *, coded: bool = False) -> str:
    changes = [("features: flight_delay_v1", f"features: flight_delay_v1\n  feature_repo: {root / repo}")]
    if coded:
        changes.append(("entities: feature_repo/data/flights.parquet", f"entities: {root / 'flights_coded.parquet'}"))
    return demo_spec(("pipeline: flight_delay", "pipeline: column_types"), *QUICK_TRIGGER_ONLY, *changes)


def test_validate_deep_lists_every_mismatch_with_table_column_types_and_fix(data_root, tmp_path, capsys):
    from ctflow.cli import main

    spec = tmp_path / "column_types.yaml"
    spec.write_text(_spec(data_root, "repo_mixed", coded=True))
    code = main(["validate", "--deep", str(spec)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and lines[-1] == "1 spec(s) checked, 1 invalid, 3 problem(s)", lines
    weather = data_root / "repo_mixed" / "data" / WEATHER
    problems = sorted(lines[:-1])
    assert problems[0].startswith(f"{spec}:") and ": data.entities: " in problems[0], problems
    assert problems[0].endswith(
        f"data.entities: {data_root / 'flights_coded.parquet'}, column 'origin': the feature view origin_weather_hourly "
        "declares String (join key origin), but the table stores int64; fix: store origin in the entity table as "
        f"text (pandas: column.astype('string')), as {weather} and the feature view origin_weather_hourly's entity "
        "declare it (String)"), problems[0]
    humid, temp = problems[1:]
    assert humid.endswith(f"data.features: {weather}, column 'humid': the feature view origin_weather_hourly reads "
                          "it (feature humid), but the table has no such column; fix: add humid to the table, or "
                          "correct the feature view origin_weather_hourly (its schema, timestamp_field or the source's "
                          "field_mapping) (did you mean 'humidity'?)"), humid
    assert temp.endswith(f"data.features: {weather}, column 'temp': the feature view origin_weather_hourly declares "
                         "Float64 (feature temp), but the table stores string; fix: store temp as float64 (pandas: "
                         "pd.to_numeric(column).astype('float64')), or declare its type in the feature view "
                         "origin_weather_hourly (Field(name='temp', dtype=...))"), temp


def test_validate_deep_names_a_view_table_that_does_not_exist(data_root, tmp_path, capsys):
    """At run time the reader's IO error is retried (a file being rewritten); ahead of a run it is a finding."""
    from ctflow.cli import main

    spec = tmp_path / "column_types.yaml"
    spec.write_text(_spec(data_root, "repo_gone"))
    code = main(["validate", "--deep", str(spec)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and len(lines) == 2, lines
    assert lines[0].endswith(f"data.features: {data_root / 'repo_gone' / 'data' / WEATHER}, the table of the feature "
                             "view origin_weather_hourly of feature service 'flight_delay_v1', is no readable parquet "
                             "file (it does not exist)"), lines[0]


def test_the_fetch_step_fails_at_once_instead_of_training_on_nan(data_root, tmp_path):
    from ctflow.core import steps
    from ctflow.exceptions import SourceDataError, not_retried
    from ctflow.spec import parse_spec

    with pytest.raises(SourceDataError) as raised:
        steps.fetch_features(parse_spec(_spec(data_root, "repo_units")), as_of=AS_OF, run_dir=tmp_path, window_days=28)
    error = raised.value
    assert (error.table, error.column) == (str(data_root / "repo_units" / "data" / WEATHER), "temp")
    assert str(error) == (f"{error.table}, column 'temp': string values stored where the feature view "
                          "origin_weather_hourly declares feature temp as Float64; expected Float64 values; fix: store "
                          "temp as float64 (pandas: pd.to_numeric(column).astype('float64')), or declare its type in the "
                          "feature view origin_weather_hourly (Field(name='temp', dtype=...))")
    assert not_retried(error).startswith("configuration error (not retried): ")
    assert not (tmp_path / steps.FRAME).exists()


def test_the_fetch_step_counts_the_other_mismatches(data_root, tmp_path):
    from ctflow.core import steps
    from ctflow.exceptions import SourceDataError
    from ctflow.spec import parse_spec

    with pytest.raises(SourceDataError) as raised:
        steps.fetch_features(parse_spec(_spec(data_root, "repo_mixed", coded=True)), as_of=AS_OF, run_dir=tmp_path,
                             window_days=28)
    assert "(2 other column type mismatch(es): `ctflow validate --deep` lists them all)" in raised.value.problem


def test_materialization_fails_before_writing_any_view(data_root):
    from feast import FeatureStore

    from ctflow.core import online
    from ctflow.exceptions import SourceDataError
    from ctflow.spec import parse_spec

    repo = data_root / "repo_units"
    with pytest.raises(SourceDataError) as raised:
        online.materialize(parse_spec(_spec(data_root, "repo_units")), as_of=AS_OF)
    assert (raised.value.table, raised.value.column) == (str(repo / "data" / WEATHER), "temp")
    store = FeatureStore(repo_path=str(repo))
    assert all(view.most_recent_end_time is None for view in store.list_feature_views())


@pytest.mark.parametrize(("repo", "service", "entities", "spec"), [
    ("feature_repo", "flight_delay_v1", "feature_repo/data/flights.parquet", "flight_delay"),
    ("feature_repo/us_employment", "employment_change_v1", "feature_repo/us_employment/data/industry_months.parquet",
     "us_employment"),
])
def test_the_shipped_examples_own_tables_keep_the_contract(repo, service, entities, spec, feature_repo_ready, capsys):
    import subprocess
    import sys

    from feast import FeatureStore

    from ctflow.cli import main
    from ctflow.spec.column_types import declared_tables, type_mismatches, unreadable

    if repo != "feature_repo":  # the demo's is built by feature_repo_ready
        built = subprocess.run([sys.executable, str(PROJECT / repo / "bootstrap.py")], capture_output=True, text=True,
                               timeout=600)
        assert built.returncode == 0, built.stderr[-3000:]
    store = FeatureStore(repo_path=str(PROJECT / repo))
    tables = declared_tables(store, store.get_feature_service(service))
    assert len(tables) == len(store.get_feature_service(service).feature_view_projections)
    assert sum(len(t.columns) for t in tables) >= 7
    assert unreadable(tables) == []
    assert type_mismatches(tables, entities=PROJECT / entities, entities_shown=entities) == []
    assert main(["validate", "--deep", str(PROJECT / "dags" / "specs" / f"{spec}.yaml")]) == 0, capsys.readouterr().out
