"""The ASOF offline store returns what Feast's own DuckDB store returns, cell for cell and dtype for dtype.

Both stores read the same registry and the same parquet files; each is selected by its own
``feature_store.yaml``. Feast's store (``type: duckdb``) is the reference: (a) on the demo
repository's whole year, and (b) on a small repository applied here through Feast's SDK
whose rows are laid out to hit each rule of the point-in-time join (ties on event time,
the TTL boundary, late rows, missing and null keys, duplicate entity rows, two views with
other join keys, a field mapping, full names).
The edge-case tests also check the expected values themselves, so that the data really
exercises each rule instead of agreeing on nulls.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from ctflow.core.feast_asof.job import AsofRetrievalJob
from ctflow.core.feast_asof.store import TYPE, AsofDuckDBOfflineStoreConfig

pytestmark = pytest.mark.integration

ROW = "__row"  # each entity row's position: Feast's store returns rows in no particular order
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
# Source times in microseconds, as the demo's: Feast's own materialization (DuckDB store) fails on
# nanosecond zoned times (DuckDB 2.0 reads them as TIMESTAMPTZ_NS, which ibis's filter cannot cast).
_US = "datetime64[us, UTC]"


def _stores(repo: Path, folder: Path):
    """Feast's DuckDB store and the ASOF store over ``repo``'s registry, in that order."""
    from feast import FeatureStore

    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    stores = []
    for name, kind in (("duckdb", "duckdb"), ("asof", TYPE)):
        config["offline_store"] = {"type": kind}
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        stores.append(FeatureStore(repo_path=str(repo), fs_yaml_file=path))
    return stores


def _retrieve(store, entity_df: pd.DataFrame, features, *, full_feature_names: bool = False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        job = store.get_historical_features(entity_df=entity_df.copy(), features=features,
                                            full_feature_names=full_feature_names)
        frame = job.to_df()
    return job, frame.sort_values(ROW, kind="stable", ignore_index=True)


def assert_same_as_feast(reference, asof, entity_df: pd.DataFrame, features, *, full_feature_names: bool = False):
    """The ASOF store's frame equals Feast's, columns in the same order, same dtypes; returns it."""
    _, expected = _retrieve(reference, entity_df, features, full_feature_names=full_feature_names)
    job, actual = _retrieve(asof, entity_df, features, full_feature_names=full_feature_names)
    assert isinstance(job, AsofRetrievalJob), "the ASOF store handed the request to Feast's store"
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(entity_df)
    pd.testing.assert_frame_equal(actual, expected, check_dtype=True, check_exact=True)
    return actual


# --- (a) the demo repository's whole year ------------------------------------------------------


@pytest.fixture(scope="module")
def demo_stores(feature_repo_ready, tmp_path_factory):
    return _stores(feature_repo_ready, tmp_path_factory.mktemp("demo_configs"))


@pytest.fixture(scope="module")
def year(feature_repo_ready) -> pd.DataFrame:
    """Every flight of 2013 (cancelled ones too), as ctflow asks Feast for them."""
    flights = pd.read_parquet(feature_repo_ready / "data" / "flights.parquet")
    return pd.DataFrame(
        {
            "event_timestamp": flights["scheduled_departure"],
            **{key: flights[key].astype(pd.ArrowDtype(pa.string())) for key in ("origin", "carrier", "route", "tailnum")},
            ROW: np.arange(len(flights), dtype="int64"),
        }
    )


@pytest.mark.parametrize("service", ["flight_delay_v1", "flight_delay_v0"])
def test_demo_year_matches_feast(demo_stores, year, service):
    reference, asof = demo_stores
    frame = assert_same_as_feast(reference, asof, year, reference.get_feature_service(service))
    assert len(frame) == 336_776
    assert frame["temp"].notna().mean() > 0.9  # the join found something to compare


def test_demo_full_feature_names_and_a_feature_list(demo_stores, year):
    reference, asof = demo_stores
    rows = year.sample(20_000, random_state=3)
    frame = assert_same_as_feast(reference, asof, rows, reference.get_feature_service("flight_delay_v1"),
                                 full_feature_names=True)
    assert "origin_weather_hourly__temp" in frame.columns
    assert_same_as_feast(reference, asof, rows, ["aircraft:plane_engine", "carrier_delay_stats_daily:carrier_flights_7d"])


def test_a_repository_selects_the_asof_store_by_its_type(feature_repo_ready, tmp_path):
    """What a deployment writes in feature_store.yaml to use it; the project's own repository does."""
    from feast import FeatureStore

    _duckdb, asof = _stores(feature_repo_ready, tmp_path)
    assert isinstance(asof.config.offline_store, AsofDuckDBOfflineStoreConfig)
    assert TYPE == "ctflow.core.feast_asof.store.AsofDuckDBOfflineStore"
    project = FeatureStore(repo_path=str(feature_repo_ready))
    assert isinstance(project.config.offline_store, AsofDuckDBOfflineStoreConfig)


# --- (b) edge cases in a repository built here -------------------------------------------------


@pytest.fixture(scope="module")
def edge_repo(tmp_path_factory) -> Path:
    """Two entities, three views (TTL and created timestamps, no TTL, a field mapping), three services."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    repo = tmp_path_factory.mktemp("edge_repo")
    data = repo / "data"
    data.mkdir()
    (repo / "feature_store.yaml").write_text(yaml.safe_dump({
        "project": "asof_edges", "provider": "local", "registry": "data/registry.db",
        "online_store": {"type": "sqlite", "path": "data/online.db"}, "offline_store": {"type": "duckdb"},
        "entity_key_serialization_version": 3,
    }))

    at = lambda hours: T0 + timedelta(hours=hours)  # noqa: E731
    # driver 1: two rows at T0 (created later wins), one at T0+1h; driver 2: one row at T0-1h (TTL
    # boundary at T0); driver 3: only a row after the entity rows (late); driver 4: a null feature value.
    pd.DataFrame({
        "driver_id": [1, 1, 1, 2, 3, 4],
        "ts": [at(0), at(0), at(1), at(-1), at(2), at(0)],
        "created": [at(0), at(0) + timedelta(minutes=5), at(1), at(-1), at(2), at(0)],
        "conv_rate": [0.1, 0.2, 0.3, 0.5, 0.9, 0.7],
        "trips": pd.array([10, 20, 30, 50, 90, None], dtype="Int64"),
        "src_level": ["bronze", "silver", "gold", "bronze", "gold", None],
    }).astype({"ts": _US, "created": _US}).to_parquet(data / "drivers.parquet")
    # customers: keyed by text, no TTL: an old row still counts.
    pd.DataFrame({
        "customer_id": ["a", "a", "b"],
        "event_ts": [at(-1000), at(0.5), at(-2)],
        "age": [30, 31, 40],
        "segment": ["new", "loyal", "new"],
    }).astype({"event_ts": _US}).to_parquet(data / "customers.parquet")

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    driver_stats = FeatureView(
        name="driver_stats", entities=[driver], ttl=HOUR,
        schema=[Field(name="conv_rate", dtype=Float64), Field(name="trips", dtype=Int64), Field(name="level", dtype=String)],
        source=FileSource(name="drivers", path=str(data / "drivers.parquet"), timestamp_field="ts",
                          created_timestamp_column="created", field_mapping={"src_level": "level"}),
    )
    customer_profile = FeatureView(
        name="customer_profile", entities=[customer], ttl=timedelta(0),
        schema=[Field(name="age", dtype=Int64), Field(name="segment", dtype=String)],
        source=FileSource(name="customers", path=str(data / "customers.parquet"), timestamp_field="event_ts"),
    )
    both = FeatureService(name="both", features=[driver_stats, customer_profile])
    # A projection under an alias with its own join key (driver_stats.with_name(...).with_join_key_map(...))
    # is not tested: Feast 0.67's FeatureStore.get_historical_features raises TypeError on such a
    # service (feast.utils._get_features compares it with the registry's copy), whichever store.
    store = FeatureStore(repo_path=str(repo))
    store.apply([driver, customer, driver_stats, customer_profile, both])
    return repo


@pytest.fixture(scope="module")
def edge_stores(edge_repo, tmp_path_factory):
    return _stores(edge_repo, tmp_path_factory.mktemp("edge_configs"))


def _entity_rows() -> pd.DataFrame:
    """One row per rule; the last two repeat earlier rows exactly."""
    cases = [
        # (case, hours after T0, driver, customer, a column no view joins on)
        ("tie on event time: newest created wins", 0.5, 1, "a", 2),
        ("at the event time itself", 1.0, 1, "a", 3),
        ("TTL: exactly ttl old is kept", 0.0, 2, "b", 1),
        ("TTL: a microsecond older expires", 0.0 + 1e-6 / 3600, 2, "b", 1),
        ("late row only: nothing known yet", 1.5, 3, "a", 99),
        ("late row, now known", 2.0, 3, None, 3),
        ("null feature value", 0.25, 4, "zz", 4),
        ("missing entity", 0.25, 99, "zz", 1),
        ("no TTL: a very old row counts", -500, 99, "a", 1),
        ("tie on event time: newest created wins", 0.5, 1, "a", 2),
        ("TTL: exactly ttl old is kept", 0.0, 2, "b", 1),
    ]
    frame = pd.DataFrame(cases, columns=["case", "hours", "driver_id", "customer_id", "rival_id"])
    frame.insert(0, "event_timestamp", [T0 + timedelta(microseconds=round(h * 3_600_000_000)) for h in frame.pop("hours")])
    frame[ROW] = np.arange(len(frame), dtype="int64")
    return frame


def test_edge_cases_match_feast_and_the_rules(edge_stores):
    reference, asof = edge_stores
    rows = _entity_rows()
    frame = assert_same_as_feast(reference, asof, rows, reference.get_feature_service("both"))
    by_case = frame.drop_duplicates("case").set_index("case")

    assert by_case.loc["tie on event time: newest created wins", ["conv_rate", "level"]].tolist() == [0.2, "silver"]
    assert by_case.loc["at the event time itself", "conv_rate"] == 0.3
    assert by_case.loc["TTL: exactly ttl old is kept", "conv_rate"] == 0.5
    assert np.isnan(by_case.loc["TTL: a microsecond older expires", "conv_rate"])
    assert np.isnan(by_case.loc["late row only: nothing known yet", "conv_rate"])
    assert by_case.loc["late row, now known", "conv_rate"] == 0.9
    assert by_case.loc["null feature value", "conv_rate"] == 0.7 and pd.isna(by_case.loc["null feature value", "trips"])
    assert by_case.loc["missing entity", ["conv_rate", "age"]].isna().all()
    assert by_case.loc["no TTL: a very old row counts", "age"] == 30
    assert by_case.loc["tie on event time: newest created wins", "age"] == 31  # stamped at the row's own time: known
    assert by_case.loc["late row only: nothing known yet", "age"] == 31
    assert pd.isna(by_case.loc["late row, now known", "age"])  # a null key matches nothing
    # Repeated entity rows are all kept, each with the same features.
    assert len(frame) == len(rows)
    pd.testing.assert_frame_equal(frame.iloc[-2:].drop(columns=ROW).reset_index(drop=True),
                                  frame.iloc[[0, 2]].drop(columns=ROW).reset_index(drop=True))


def test_edge_cases_full_feature_names(edge_stores):
    reference, asof = edge_stores
    frame = assert_same_as_feast(reference, asof, _entity_rows(), reference.get_feature_service("both"),
                                 full_feature_names=True)
    assert [c for c in frame.columns if "__" in c and c != ROW] == [
        "driver_stats__conv_rate", "driver_stats__trips", "driver_stats__level",
        "customer_profile__age", "customer_profile__segment",
    ]
    assert frame["driver_stats__conv_rate"].iloc[0] == 0.2


def test_edge_cases_feature_lists_naive_times_and_empty_rows(edge_stores):
    reference, asof = edge_stores
    rows = _entity_rows()
    assert_same_as_feast(reference, asof, rows, ["customer_profile:segment", "driver_stats:trips"])
    naive = rows.assign(event_timestamp=rows["event_timestamp"].dt.tz_localize(None))  # taken as UTC by both
    assert_same_as_feast(reference, asof, naive, ["driver_stats:conv_rate", "customer_profile:age"])


def test_to_parquet_streams_the_same_rows(edge_stores, tmp_path):
    _, asof = edge_stores
    rows = _entity_rows()
    job = asof.get_historical_features(entity_df=rows, features=asof.get_feature_service("both"))
    written = pd.read_parquet(job.to_parquet(tmp_path / "frame.parquet"))
    pd.testing.assert_frame_equal(written, job.to_df(), check_dtype=False)
    assert written[ROW].tolist() == rows[ROW].tolist()  # in the entity rows' order


def test_requests_it_does_not_join_go_to_feasts_store(edge_stores):
    reference, asof = edge_stores
    rows = _entity_rows()
    job = asof.get_historical_features(entity_df=rows, features=["driver_stats:conv_rate"],
                                       filter_by_created_timestamp=True)
    assert not isinstance(job, AsofRetrievalJob)
    expected = reference.get_historical_features(entity_df=rows, features=["driver_stats:conv_rate"],
                                                 filter_by_created_timestamp=True).to_df()
    pd.testing.assert_frame_equal(job.to_df().sort_values(ROW, ignore_index=True),
                                  expected.sort_values(ROW, ignore_index=True))


def test_materialization_is_feasts_own(edge_stores):
    _, asof = edge_stores
    asof.materialize(start_date=T0 - timedelta(days=100), end_date=T0 + 3 * HOUR)
    online = asof.get_online_features(features=["driver_stats:conv_rate", "customer_profile:age"],
                                      entity_rows=[{"driver_id": 1, "customer_id": "a"}]).to_dict()
    assert online["conv_rate"] == [0.3] and online["age"] == [31]


def test_materialization_reads_pandas_default_nanosecond_timestamps(tmp_path):
    """A user's table as pandas writes it by default: tz-aware datetimes as nanoseconds. Feast's
    DuckDB materialization casts them to a naive TIMESTAMP, which DuckDB cannot do from
    TIMESTAMPTZ_NS; this store reads them as microseconds, so the online store gets each key's
    latest row of the window. The retrievals it hands to Feast's store (here: with
    ``filter_by_created_timestamp``) read such a table as it is, and agree with its own."""
    import pyarrow.parquet as pq
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    from ctflow.core.feast_asof.store import TYPE

    rng = np.random.default_rng(11)
    rows = pd.DataFrame({"sensor": np.resize(["a", "b", "c"], 90),
                         "read_at": pd.date_range(T0, periods=90, freq="37min"),
                         "load": rng.normal(10, 2, 90)})
    (tmp_path / "data").mkdir()
    rows.sample(frac=1, random_state=2).to_parquet(tmp_path / "data" / "readings.parquet", index=False)
    assert str(pq.read_schema(tmp_path / "data" / "readings.parquet").field("read_at").type) == "timestamp[ns, tz=UTC]"
    (tmp_path / "feature_store.yaml").write_text(yaml.safe_dump({
        "project": "nanos", "provider": "local", "registry": "data/registry.db",
        "online_store": {"type": "sqlite", "path": "data/online.db"}, "offline_store": {"type": TYPE},
        "entity_key_serialization_version": 3,
    }))
    sensor = Entity(name="sensor", join_keys=["sensor"], value_type=ValueType.STRING)
    readings = FeatureView(name="readings", entities=[sensor], ttl=timedelta(days=1),
                           schema=[Field(name="load", dtype=Float64)],
                           source=FileSource(name="readings", path=str(tmp_path / "data" / "readings.parquet"),
                                             timestamp_field="read_at"))
    store = FeatureStore(repo_path=str(tmp_path))
    store.apply([sensor, readings])

    end = T0 + timedelta(hours=30)
    store.materialize(start_date=T0 - HOUR, end_date=end)
    online = store.get_online_features(features=["readings:load"],
                                       entity_rows=[{"sensor": s} for s in ("a", "b", "c")]).to_dict()
    window = rows[rows["read_at"] <= end]
    latest = window.loc[window.groupby("sensor")["read_at"].idxmax()].set_index("sensor")["load"]
    assert online["load"] == [latest[s] for s in ("a", "b", "c")]

    entity_df = pd.DataFrame({"sensor": ["a", "b", "c", "a"], "event_timestamp": [T0 + k * 7 * HOUR for k in range(4)],
                              ROW: np.arange(4)})
    joined = store.get_historical_features(entity_df=entity_df, features=["readings:load"])
    handed = store.get_historical_features(entity_df=entity_df, features=["readings:load"],
                                           filter_by_created_timestamp=True)
    assert isinstance(joined, AsofRetrievalJob) and not isinstance(handed, AsofRetrievalJob)
    expected = joined.to_df().sort_values(ROW, ignore_index=True)
    assert expected["load"].notna().all()
    pd.testing.assert_frame_equal(handed.to_df().sort_values(ROW, ignore_index=True), expected)
