"""ctflow.core.features against a real Feast repository (DuckDB offline store), no mocks.

The session builds its own copy of ``feature_repo/`` in a temporary folder, so nothing here
depends on data left by an earlier manual bootstrap.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctflow.core import features
from ctflow.core.features import FeatureStoreError
from ctflow.exceptions import CtflowError

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]
NEW_YORK = "America/New_York"
TIMESTAMP = "scheduled_departure"
V1 = "flight_delay_v1"
V1_FEATURES = [
    "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib", "weather_as_of",
    "carrier_arr_delay_mean_7d", "carrier_delayed_share_7d", "carrier_flights_7d",
    "carrier_arr_delay_mean_28d", "carrier_delayed_share_28d", "carrier_flights_28d", "carrier_stats_as_of",
    "route_arr_delay_mean_28d", "route_delayed_share_28d", "route_flights_28d", "route_stats_as_of",
    "plane_year", "plane_seats", "plane_engines", "plane_engine",
]


def _load_bootstrap(repo: Path):
    spec = importlib.util.spec_from_file_location("ctflow_test_bootstrap", repo / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Path:
    """A freshly bootstrapped copy of the project's feature repository."""
    copy = tmp_path_factory.mktemp("features") / "feature_repo"
    shutil.copytree(PROJECT / "feature_repo", copy, ignore=shutil.ignore_patterns("data", "__pycache__"))
    summary = _load_bootstrap(copy).bootstrap(copy)
    assert summary["status"] == "built"
    return copy


@pytest.fixture(scope="session")
def flights(repo) -> pd.DataFrame:
    return pd.read_parquet(repo / "data" / "flights.parquet")


@pytest.fixture(scope="session")
def sample(repo, flights) -> pd.DataFrame:
    """5,000 flights from the whole year, cancelled ones included, joined with flight_delay_v1."""
    rows = flights.sample(5000, random_state=7)
    return features.get_historical_features(repo, V1, rows, timestamp=TIMESTAMP)


# --- the repository ---------------------------------------------------------------------------


def test_bootstrap_is_idempotent(repo):
    before = {p.name: p.stat().st_mtime_ns for p in (repo / "data").glob("*.parquet")}
    started = time.perf_counter()
    summary = _load_bootstrap(repo).bootstrap(repo)
    assert summary["status"] == "up-to-date"
    assert time.perf_counter() - started < 5
    assert {p.name: p.stat().st_mtime_ns for p in (repo / "data").glob("*.parquet")} == before
    assert summary["tables"]["flights"] == 336_776


def test_entity_table(flights):
    assert len(flights) == 336_776
    assert flights["flight_id"].is_unique
    assert str(flights[TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert (flights["route"] == flights["origin"] + "-" + flights["dest"]).all()
    # The label is known exactly when the flight arrived, and only after it left.
    assert (flights["arrived_at"].isna() == flights["arr_delay"].isna()).all()
    assert (flights["arrived_at"].dropna() > flights.loc[flights["arrived_at"].notna(), TIMESTAMP]).all()
    local = flights[TIMESTAMP].dt.tz_convert(NEW_YORK)
    assert (local.dt.hour == flights["dep_hour"]).all()
    assert (local.dt.dayofweek == flights["day_of_week"]).all()
    # Two flights of one carrier in the same minute are real and kept.
    assert flights.duplicated(["carrier", TIMESTAMP]).sum() > 1000


def test_feature_names_of_services(repo):
    assert features.feature_names(repo, V1) == V1_FEATURES
    assert features.feature_names(repo, "flight_delay_v0") == V1_FEATURES[:10]


# --- loading entity rows ----------------------------------------------------------------------


def test_load_entity_rows_window_is_half_open(repo, flights):
    moment = flights[TIMESTAMP].iloc[100_000]
    path = repo / "data" / "flights.parquet"
    at = features.load_entity_rows(path, timestamp=TIMESTAMP, start=moment, end=moment + pd.Timedelta(minutes=1))
    assert len(at) == (flights[TIMESTAMP] == moment).sum() > 0
    before = features.load_entity_rows(path, timestamp=TIMESTAMP, start=moment - pd.Timedelta(hours=1), end=moment)
    assert (before[TIMESTAMP] < moment).all() and len(before) > 0

    start, end = datetime(2013, 6, 1, tzinfo=UTC), datetime(2013, 6, 8, tzinfo=UTC)
    week = features.load_entity_rows(path, timestamp=TIMESTAMP, start=start, end=end, columns=["carrier", "arr_delay"])
    expected = flights[(flights[TIMESTAMP] >= start) & (flights[TIMESTAMP] < end)]
    assert len(week) == len(expected)
    assert list(week.columns) == ["carrier", "arr_delay", TIMESTAMP]
    assert str(week[TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    # A naive bound means UTC; another zone is converted.
    naive = features.load_entity_rows(path, timestamp=TIMESTAMP, start=start.replace(tzinfo=None), end=end.replace(tzinfo=None))
    assert len(naive) == len(expected)
    shifted = features.load_entity_rows(path, timestamp=TIMESTAMP, start=pd.Timestamp(start).tz_convert(NEW_YORK), end=end)
    assert len(shifted) == len(expected)


def test_load_entity_rows_names_a_missing_column(repo):
    path = repo / "data" / "flights.parquet"
    with pytest.raises(FeatureStoreError, match="no column 'departure'"):
        features.load_entity_rows(path, timestamp="departure", start=datetime(2013, 1, 1), end=datetime(2013, 2, 1))


# --- the point-in-time join -------------------------------------------------------------------


def test_keeps_every_row_its_order_and_index(repo, flights):
    same_minute = flights[flights.duplicated(["carrier", TIMESTAMP], keep=False)].head(300)
    others = flights.sample(300, random_state=1)
    twice = others.head(50)  # the very same flight twice
    rows = pd.concat([same_minute, others, twice]).iloc[::-1]
    rows.index = [f"r{i % 97}" for i in range(len(rows))]  # labels repeat, order is arbitrary

    joined = features.get_historical_features(repo, V1, rows, timestamp=TIMESTAMP)

    assert len(joined) == len(rows)
    assert joined.index.equals(rows.index)
    pd.testing.assert_frame_equal(joined[list(rows.columns)], rows)
    assert list(joined.columns) == [*rows.columns, *V1_FEATURES]
    # Equal entity rows get equal features, whatever their position.
    keyed = joined.reset_index(drop=True)
    first = keyed.drop_duplicates("flight_id", keep="first").set_index("flight_id")[V1_FEATURES]
    last = keyed.drop_duplicates("flight_id", keep="last").set_index("flight_id")[V1_FEATURES]
    pd.testing.assert_frame_equal(first.sort_index(), last.sort_index())
    # And flights of one carrier in one minute share their carrier statistics.
    per_minute = joined.groupby(["carrier", TIMESTAMP])["carrier_arr_delay_mean_7d"].nunique(dropna=False)
    assert (per_minute == 1).all()


def test_stable_feature_dtypes_and_missing_keys(repo, flights):
    rows = flights.sample(200, random_state=3)
    rows["tailnum"] = None  # no aircraft at all: features missing, rows kept
    joined = features.get_historical_features(repo, V1, rows, timestamp=TIMESTAMP)
    assert len(joined) == 200
    assert joined[["plane_year", "plane_seats", "plane_engines"]].isna().all().all()
    assert joined["plane_engine"].isna().all()
    assert joined["temp"].notna().mean() > 0.9
    assert str(joined["carrier_flights_7d"].dtype) == "float64"
    assert str(joined["carrier_stats_as_of"].dtype) == "datetime64[ns, UTC]"


def test_empty_entity_rows(repo, flights):
    joined = features.get_historical_features(repo, V1, flights.iloc[:0], timestamp=TIMESTAMP)
    assert joined.empty
    assert list(joined.columns) == [*flights.columns, *V1_FEATURES]
    assert str(joined["weather_as_of"].dtype) == "datetime64[ns, UTC]"
    assert str(joined["temp"].dtype) == "float64"


def test_a_service_needs_only_its_own_keys(repo, flights):
    rows = flights[[TIMESTAMP, "origin"]].sample(100, random_state=4)
    joined = features.get_historical_features(repo, "flight_delay_v0", rows, timestamp=TIMESTAMP)
    assert list(joined.columns) == [TIMESTAMP, "origin", *V1_FEATURES[:10]]
    with pytest.raises(FeatureStoreError, match="lack column.*route"):
        features.get_historical_features(repo, V1, flights.drop(columns="route").head(5), timestamp=TIMESTAMP)


def test_the_frame_holds_feasts_own_retrieval_cell_for_cell(repo, flights, tmp_path):
    """ctflow turns Feast's Arrow result into its frame itself (reordered and cast on the Arrow side):
    every cell is the one Feast's own DuckDB store gives through ``to_df``, in entity-row order."""
    import pyarrow as pa
    import yaml
    from feast import FeatureStore

    rows = pd.concat([flights.sample(2000, random_state=5), flights.head(30)]).iloc[::-1]  # shuffled, repeated
    rows.loc[rows.index[:40], "tailnum"] = None  # no aircraft
    rows.index = [f"r{i % 13}" for i in range(len(rows))]
    joined = features.get_historical_features(repo, V1, rows, timestamp=TIMESTAMP)

    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    config["offline_store"] = {"type": "duckdb"}  # Feast's own store, not the ASOF one
    (tmp_path / "duckdb.yaml").write_text(yaml.safe_dump(config))
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=tmp_path / "duckdb.yaml")
    request = pd.DataFrame({
        "event_timestamp": rows[TIMESTAMP].to_numpy(),
        **{key: rows[key].astype(pd.ArrowDtype(pa.string())).to_numpy() for key in ("origin", "carrier", "route", "tailnum")},
        "__row": np.arange(len(rows)),
    })
    own = store.get_historical_features(entity_df=request, features=store.get_feature_service(V1)).to_df()
    own = own.sort_values("__row", ignore_index=True)

    assert own["__row"].tolist() == list(range(len(rows)))
    for name in V1_FEATURES:
        mine, theirs = joined[name].reset_index(drop=True), own[name]
        missing = mine.isna().to_numpy()
        assert (missing == theirs.isna().to_numpy()).all(), name
        if str(mine.dtype) == "float64":
            assert np.array_equal(mine.to_numpy(), pd.to_numeric(theirs).to_numpy("float64"), equal_nan=True), name
        elif str(mine.dtype) == "datetime64[ns, UTC]":
            assert (mine[~missing] == pd.to_datetime(theirs[~missing], utc=True)).all(), name
        else:
            assert mine.dtype == object and (mine[~missing] == theirs[~missing].astype(object)).all(), name
            assert all(value is None for value in mine[missing]), name


def test_unknown_feature_service(repo, flights):
    with pytest.raises(FeatureStoreError) as raised:
        features.get_historical_features(repo, "flight_delay_v2", flights.head(5), timestamp=TIMESTAMP)
    message = str(raised.value)
    assert "'flight_delay_v2'" in message
    assert "did you mean 'flight_delay_v1'" in message
    assert "Available: flight_delay_v0, flight_delay_v1" in message
    assert isinstance(raised.value, CtflowError)
    assert raised.value.available == ["flight_delay_v0", "flight_delay_v1"]
    with pytest.raises(FeatureStoreError, match="did you mean 'flight_delay_v0'"):
        features.feature_names(repo, "flight_delay_v0_")


def test_not_a_feast_repository(tmp_path, flights):
    with pytest.raises(FeatureStoreError, match="no feature_store.yaml"):
        features.get_historical_features(tmp_path, V1, flights.head(5), timestamp=TIMESTAMP)


# --- no leakage -------------------------------------------------------------------------------


def test_every_feature_was_known_at_the_row_timestamp(sample, repo):
    moment = sample[TIMESTAMP]
    for as_of, ttl in (
        ("weather_as_of", timedelta(hours=3)),
        ("carrier_stats_as_of", timedelta(days=2)),
        ("route_stats_as_of", timedelta(days=2)),
    ):
        known = sample[as_of].notna()
        assert known.mean() > 0.95, f"{as_of}: too few rows joined for the check to mean anything"
        assert (sample.loc[known, as_of] <= moment[known]).all(), f"{as_of} after the row's timestamp"
        assert (moment[known] - sample.loc[known, as_of] <= ttl).all(), f"{as_of} older than the view's TTL"

    # Daily statistics exist for every key and day: a row gets those of the midnight that began its local day.
    midnight = moment.dt.tz_convert(NEW_YORK).dt.normalize().dt.tz_convert("UTC")
    assert (sample["carrier_stats_as_of"] == midnight).all()
    assert (sample["route_stats_as_of"] == midnight).all()

    # Weather: the newest report known at the row's time, recomputed here without Feast.
    weather = pd.read_parquet(repo / "data" / "origin_weather_hourly.parquet")
    expected = pd.Series(pd.NaT, index=sample.index, dtype="datetime64[ns, UTC]")
    for origin, group in weather.groupby("origin"):
        known_at = group["event_timestamp"].sort_values().to_numpy("datetime64[ns]")  # UTC, naive
        mine = sample["origin"] == origin
        times = sample.loc[mine, TIMESTAMP].to_numpy("datetime64[ns]")
        at = np.searchsorted(known_at, times, side="right") - 1
        latest = pd.Series(known_at[np.maximum(at, 0)], index=sample.index[mine]).dt.tz_localize("UTC")
        fresh = (at >= 0) & (times - known_at[np.maximum(at, 0)] <= np.timedelta64(3, "h"))
        expected[mine] = latest.where(fresh)
    pd.testing.assert_series_equal(sample["weather_as_of"], expected, check_names=False)
    # ... and its values are that report's.
    reports = weather.set_index(["origin", "event_timestamp"])
    joined = sample.dropna(subset=["weather_as_of"])
    source = reports.loc[list(zip(joined["origin"], joined["weather_as_of"])), ["temp", "visib"]]
    np.testing.assert_allclose(joined[["temp", "visib"]].to_numpy(), source.to_numpy(), equal_nan=True)

    # Aircraft data is static and stamped before the first flight.
    aircraft = pd.read_parquet(repo / "data" / "aircraft.parquet")
    assert (aircraft["event_timestamp"] < moment.min()).all()


def test_rolling_statistics_count_only_flights_arrived_before_their_as_of(sample, flights):
    rows = sample.dropna(subset=["carrier_stats_as_of"]).sample(60, random_state=11)
    arrived = flights.dropna(subset=["arrived_at"])
    leaky_rows = 0
    for _, row in rows.iterrows():
        for key, days, prefix in (("carrier", 7, "carrier"), ("carrier", 28, "carrier"), ("route", 28, "route")):
            as_of = row[f"{prefix}_stats_as_of"]
            assert as_of <= row[TIMESTAMP]
            since = (as_of.tz_convert(NEW_YORK) - pd.DateOffset(days=days)).tz_convert("UTC")
            mine = arrived[arrived[key] == row[key]]
            counted = mine[(mine["arrived_at"] >= since) & (mine["arrived_at"] < as_of)]
            assert row[f"{prefix}_flights_{days}d"] == len(counted), (row[key], as_of, days)
            if len(counted):
                assert row[f"{prefix}_arr_delay_mean_{days}d"] == pytest.approx(counted["arr_delay"].mean(), rel=1e-9)
                assert row[f"{prefix}_delayed_share_{days}d"] == pytest.approx((counted["arr_delay"] > 15).mean(), rel=1e-9)
            else:
                assert np.isnan(row[f"{prefix}_arr_delay_mean_{days}d"])
            # Flights that had left but not landed by the as-of time are not counted.
            in_air = mine[(mine[TIMESTAMP] < as_of) & (mine["arrived_at"] >= as_of)]
            leaky_rows += len(in_air) > 0
    # The sample must include such flights, or this test could not tell the two definitions apart.
    assert leaky_rows > 10


# --- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_is_about_content(sample):
    frame = sample.head(1000)
    print_ = features.fingerprint(frame, timestamp=TIMESTAMP)
    assert print_["rows"] == 1000
    assert print_["start"] == frame[TIMESTAMP].min().isoformat()
    assert print_["end"] == frame[TIMESTAMP].max().isoformat()
    assert len(print_["sha256"]) == 64

    # Same content, other memory layout, index or timestamp unit: same hash.
    rebuilt = pd.DataFrame({c: frame[c].to_numpy(copy=True) for c in frame.columns})
    rebuilt = rebuilt.astype({c: frame[c].dtype for c in frame.columns})
    assert features.fingerprint(rebuilt, timestamp=TIMESTAMP) == print_
    assert features.fingerprint(frame.copy().set_axis(range(1000, 2000)), timestamp=TIMESTAMP) == print_
    assert features.fingerprint(frame.astype({TIMESTAMP: "datetime64[us, UTC]"}), timestamp=TIMESTAMP) == print_

    changed = frame.copy()
    changed.iloc[500, changed.columns.get_loc("temp")] += 0.01
    assert features.fingerprint(changed, timestamp=TIMESTAMP)["sha256"] != print_["sha256"]
    assert features.fingerprint(frame.iloc[::-1], timestamp=TIMESTAMP)["sha256"] != print_["sha256"]
    assert features.fingerprint(frame.rename(columns={"temp": "t"}), timestamp=TIMESTAMP)["sha256"] != print_["sha256"]

    empty = features.fingerprint(frame.iloc[:0], timestamp=TIMESTAMP)
    assert empty["rows"] == 0 and empty["start"] is None and empty["end"] is None


def test_fingerprint_is_stable_across_joins(repo, flights):
    rows = flights.sample(2000, random_state=5)
    first = features.get_historical_features(repo, V1, rows, timestamp=TIMESTAMP)
    second = features.get_historical_features(repo, V1, rows.copy(), timestamp=TIMESTAMP)
    assert features.fingerprint(first, timestamp=TIMESTAMP) == features.fingerprint(second, timestamp=TIMESTAMP)
