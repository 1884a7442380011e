"""Which stored column types :mod:`ctflow.spec.column_types` accepts is what the real readers read.

Each case is a parquet table whose one column is stored in some type, in a Feast repository
applied here whose view declares another (or the same). Both readers run on it: ctflow's point-in-
time join (``features.get_historical_features``, the fetch step's, DuckDB) and Feast's
materialization into its SQLite online store, read back with ``get_online_features``. The readers
*agree* when both return the values written. The rule: an accepted type is one both readers
read to the values written; a refused one is one where a reader fails or returns other values,
or one of the few listed in :data:`STRICTER`, where both read this sample but the contract is
kept stricter for a reason given there. A change of Feast, DuckDB or ibis that moves a case fails
here, naming it.
"""

from __future__ import annotations

import math
import warnings
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctflow.spec.column_types import accepts
from tests.spec.test_data_contract import FEATURE_STORE_YAML

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
WORDS = ["a", "b", "c"]
FLOATS = [1.5, 2.5, 3.5]
WHOLE = [1, 2, 3]


def _times(unit: str, tz: str | None) -> pa.Array:
    utc = pa.array([T0] * 3, pa.timestamp(unit, tz="UTC"))
    return utc.cast(pa.timestamp(unit, tz=tz)) if tz else pa.array([T0.replace(tzinfo=None)] * 3, pa.timestamp(unit))


#: name -> (declared type, stored column, values both readers should return). Feature ``f`` of a
#: view joined on a text key; the key and event-time cases follow.
FEATURES: dict[str, tuple[str, pa.Array, list[Any]]] = {
    "Float64 <- float64": ("Float64", pa.array(FLOATS), FLOATS),
    "Float64 <- int64": ("Float64", pa.array(WHOLE, pa.int64()), [1.0, 2.0, 3.0]),
    "Float64 <- decimal": ("Float64", pa.array([Decimal(str(v)) for v in FLOATS], pa.decimal128(5, 2)), FLOATS),
    "Float64 <- int64 with a null (pandas Int64)": ("Float64", pa.array([1, None, 3], pa.int64()), [1.0, None, 3.0]),
    "Float64 <- int32 with a null": ("Float64", pa.array([1, None, 3], pa.int32()), [1.0, None, 3.0]),
    "Float64 <- nulls only": ("Float64", pa.array([None] * 3, pa.null()), [None] * 3),
    "Float64 <- float32": ("Float64", pa.array(FLOATS, pa.float32()), FLOATS),
    "Float64 <- int32": ("Float64", pa.array(WHOLE, pa.int32()), [1.0, 2.0, 3.0]),
    "Float64 <- uint64": ("Float64", pa.array(WHOLE, pa.uint64()), [1.0, 2.0, 3.0]),
    "Float64 <- bool": ("Float64", pa.array([True, False, True]), [1.0, 0.0, 1.0]),
    "Float64 <- string of numbers": ("Float64", pa.array(["1.5", "2.5", "3.5"]), FLOATS),
    "Float64 <- large_string": ("Float64", pa.array(["1.5", "2.5", "3.5"], pa.large_string()), FLOATS),
    "Float64 <- string with units": ("Float64", pa.array(["1.5 F", "2.5 F", "3.5 F"]), FLOATS),
    "Float32 <- float64": ("Float32", pa.array(FLOATS), FLOATS),
    "Float32 <- int16": ("Float32", pa.array(WHOLE, pa.int16()), [1.0, 2.0, 3.0]),
    "Int64 <- int64": ("Int64", pa.array(WHOLE, pa.int64()), WHOLE),
    "Int64 <- int32": ("Int64", pa.array(WHOLE, pa.int32()), WHOLE),
    "Int64 <- uint32": ("Int64", pa.array(WHOLE, pa.uint32()), WHOLE),
    "Int64 <- int64 with a null (pandas Int64)": ("Int64", pa.array([1, None, 3], pa.int64()), [1, None, 3]),
    "Int64 <- float64 of whole numbers and a null": ("Int64", pa.array([1.0, None, 3.0]), [1, None, 3]),
    "Int64 <- string": ("Int64", pa.array(["1", "2", "3"]), WHOLE),
    "Int32 <- int64": ("Int32", pa.array(WHOLE, pa.int64()), WHOLE),
    "String <- string": ("String", pa.array(WORDS), WORDS),
    "String <- large_string": ("String", pa.array(WORDS, pa.large_string()), WORDS),
    "String <- dictionary": ("String", pa.array(WORDS).dictionary_encode(), WORDS),
    "String <- int64": ("String", pa.array(WHOLE, pa.int64()), ["1", "2", "3"]),
    "String <- float64": ("String", pa.array(FLOATS), ["1.5", "2.5", "3.5"]),
    "Bool <- bool": ("Bool", pa.array([True, False, True]), [True, False, True]),
    "Bool <- int64": ("Bool", pa.array([1, 0, 1], pa.int64()), [True, False, True]),
    "Bool <- string": ("Bool", pa.array(["true", "false", "true"]), [True, False, True]),
    "UnixTimestamp <- timestamp[s]": ("UnixTimestamp", _times("s", None), [T0] * 3),
    "UnixTimestamp <- timestamp[ms, UTC]": ("UnixTimestamp", _times("ms", "UTC"), [T0] * 3),
    "UnixTimestamp <- timestamp[ns, America/New_York]": ("UnixTimestamp", _times("ns", "America/New_York"), [T0] * 3),
    "UnixTimestamp <- date32": ("UnixTimestamp", pa.array([T0.date()] * 3, pa.date32()),
                                [datetime(2024, 5, 1, tzinfo=UTC)] * 3),
    "UnixTimestamp <- string": ("UnixTimestamp", pa.array([T0.isoformat()] * 3), [T0] * 3),
    "UnixTimestamp <- int64 epoch seconds": ("UnixTimestamp", pa.array([int(T0.timestamp())] * 3), [T0] * 3),
}
#: name -> (the entity's value type, the key in the view's table, the key in the entity table).
KEYS: dict[str, tuple[str, pa.Array, pa.Array]] = {
    "String key <- string / string": ("String", pa.array(WORDS), pa.array(WORDS)),
    "String key <- large_string / string": ("String", pa.array(WORDS, pa.large_string()), pa.array(WORDS)),
    "String key <- dictionary / string": ("String", pa.array(WORDS).dictionary_encode(), pa.array(WORDS)),
    "String key <- string / dictionary": ("String", pa.array(WORDS), pa.array(WORDS).dictionary_encode()),
    "String key <- int64 / int64": ("String", pa.array(WHOLE), pa.array(WHOLE)),
    "String key <- int64 / string": ("String", pa.array(WHOLE), pa.array(WORDS)),
    "String key <- string / int64 codes": ("String", pa.array(WORDS), pa.array([0, 1, 2])),
    "Int64 key <- int64 / int64": ("Int64", pa.array(WHOLE), pa.array(WHOLE)),
    "Int64 key <- int32 / int64": ("Int64", pa.array(WHOLE, pa.int32()), pa.array(WHOLE)),
    "Int64 key <- int64 / int16": ("Int64", pa.array(WHOLE), pa.array(WHOLE, pa.int16())),
    "Int64 key <- float64 / int64": ("Int64", pa.array([1.0, 2.0, 3.0]), pa.array(WHOLE)),
    "Int64 key <- int64 / float64": ("Int64", pa.array(WHOLE), pa.array([1.0, 2.0, 3.0])),
    "Int64 key <- string / int64": ("Int64", pa.array(["1", "2", "3"]), pa.array(WHOLE)),
    "Int64 key <- string / string": ("Int64", pa.array(["1", "2", "3"]), pa.array(["1", "2", "3"])),
    "Int32 key <- int64 / int64": ("Int32", pa.array(WHOLE), pa.array(WHOLE)),
}
#: name -> the view's event-time column.
EVENT_TIMES: dict[str, pa.Array] = {
    **{f"event time <- timestamp[{unit}, {tz}]": _times(unit, tz)
       for unit in ("s", "ms", "us", "ns") for tz in (None, "UTC", "America/New_York")},
    "event time <- date32": pa.array([T0.date()] * 3, pa.date32()),
    "event time <- string": pa.array([T0.isoformat()] * 3),
    "event time <- int64 epoch seconds": pa.array([int(T0.timestamp())] * 3),
}
#: Cases both readers read here, refused all the same, and why.
STRICTER = {
    "Float64 <- int32 with a null": "read only because pandas turns int32 with a null into float64: the same column "
                                    "without one fails materialization (Float64 <- int32)",
    "Int64 <- string": "a value that is no number (n/a, a unit) fails materialization and is NaN in training",
    "Int64 key <- string / int64": "a key that is no number ('EWR') fails the join and materialization",
    "Int64 key <- string / string": "a key that is no number ('EWR') fails materialization",
    "String key <- int64 / int64": "integers for a String entity join only while both tables hold integers: one "
                                   "table of text ('EWR') fails the join; Feast stores them online as their text",
    "event time <- string": "a value that is no time fails both readers (tests/integration/test_data_errors.py); "
                            "the entity table's data.timestamp is held to a timestamp type too",
}


def _case_tables() -> dict[str, tuple[str, pa.Table, pa.Table, list[Any], bool]]:
    """name -> (key type, the view's table, the entity table, values expected, accepted)."""
    entity_time = pa.array([T0 + timedelta(hours=1)] * 3, pa.timestamp("us", tz="UTC"))
    event_time = _times("us", "UTC")
    cases = {}
    for name, (dtype, column, expected) in FEATURES.items():
        view = pa.table({"k": pa.array(WORDS), "event_timestamp": event_time, "f": column})
        cases[name] = ("String", dtype, view, pa.table({"k": pa.array(WORDS), "at": entity_time}), expected,
                       accepts(dtype, column.type))
    for name, (key_type, key, entity_key) in KEYS.items():
        view = pa.table({"k": key, "event_timestamp": event_time, "f": pa.array(FLOATS)})
        accepted = all(accepts(key_type, k.type, join_key=True) for k in (key, entity_key))
        cases[name] = (key_type, "Float64", view, pa.table({"k": entity_key, "at": entity_time}), FLOATS, accepted)
    for name, times in EVENT_TIMES.items():
        view = pa.table({"k": pa.array(WORDS), "event_timestamp": times, "f": pa.array(FLOATS)})
        cases[name] = ("String", "Float64", view, pa.table({"k": pa.array(WORDS), "at": entity_time}), FLOATS,
                       accepts("UnixTimestamp", times.type))
    return cases


CASES = _case_tables()


@pytest.fixture(scope="module")
def readers(tmp_path_factory) -> dict[str, tuple[list[Any], list[Any]]]:
    """name -> (what the ASOF join returned, what the online store returned), or a failure's text."""
    import feast.types as types
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType

    from ctflow.core import features

    repo = tmp_path_factory.mktemp("column_types")
    (repo / "data").mkdir()
    (repo / "feature_store.yaml").write_text(FEATURE_STORE_YAML)
    value_types = {"String": ValueType.STRING, "Int64": ValueType.INT64, "Int32": ValueType.INT32}
    entities = {name: Entity(name=f"k_{name}", join_keys=["k"], value_type=kind) for name, kind in value_types.items()}
    objects: list[Any] = list(entities.values())
    views = {}
    for i, (name, (key_type, dtype, view_table, entity_table, _, _)) in enumerate(CASES.items()):
        views[name] = f"v{i}"
        pq.write_table(view_table, repo / "data" / f"v{i}.parquet")
        pq.write_table(entity_table, repo / "data" / f"v{i}_entities.parquet")
        source = FileSource(name=f"v{i}_source", path=str(repo / "data" / f"v{i}.parquet"),
                            timestamp_field="event_timestamp")
        view = FeatureView(name=f"v{i}", entities=[entities[key_type]], ttl=timedelta(days=3), source=source,
                           schema=[Field(name="f", dtype=getattr(types, dtype))], online=True)
        objects += [source, view, FeatureService(name=f"v{i}_service", features=[view])]
    store = FeatureStore(repo_path=str(repo))
    store.apply(objects)
    seen = {}
    for name, (key_type, _, view_table, _, _, _) in CASES.items():
        view = views[name]
        try:
            rows = features.load_entity_rows(repo / "data" / f"{view}_entities.parquet", timestamp="at",
                                             start=T0, end=T0 + timedelta(days=1))
            joined: Any = features.get_historical_features(repo, f"{view}_service", rows, timestamp="at")["f"].tolist()
        except Exception as error:  # noqa: BLE001 - a reader's failure is a measured outcome
            joined = f"{type(error).__name__}: {error}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                store.materialize(start_date=T0 - timedelta(days=1), end_date=T0 + timedelta(days=1),
                                  feature_views=[view])
            # Looked up as the entity declares its key: text for a String entity, else integers.
            keys = [{"k": str(k) if key_type == "String" else int(k)} for k in view_table.column("k").to_pylist()]
            online: Any = store.get_online_features(features=[f"{view}:f"], entity_rows=keys).to_dict()["f"]
        except Exception as error:  # noqa: BLE001
            online = f"{type(error).__name__}: {error}"
        seen[name] = (joined, online)
    return seen


def _same(values: Any, expected: list[Any]) -> bool:
    if not isinstance(values, list) or len(values) != len(expected):
        return False
    return all(_same_value(value, want) for value, want in zip(values, expected, strict=True))


def _same_value(value: Any, want: Any) -> bool:
    if want is None:
        return value is None or (isinstance(value, float) and math.isnan(value))
    if isinstance(want, datetime | date):
        return isinstance(value, datetime) and pd.Timestamp(value) == pd.Timestamp(want)
    if isinstance(want, bool):
        return type(value).__name__ in ("bool", "bool_") and bool(value) == want
    if isinstance(want, str):
        return isinstance(value, str) and value == want
    return isinstance(value, int | float) and not isinstance(value, bool) and float(value) == float(want)


@pytest.mark.parametrize("name", list(CASES))
def test_a_type_is_accepted_exactly_when_both_readers_read_it_as_written(name, readers):
    *_, expected, accepted = CASES[name]
    joined, online = readers[name]
    agree = _same(joined, expected) and _same(online, expected)
    if accepted:
        assert agree, f"accepted, but the readers returned: join {joined!r}, online {online!r}"
    elif name in STRICTER:
        assert agree, f"listed as stricter than the readers, but a reader differs: join {joined!r}, online {online!r}"
    else:
        assert not agree, f"refused, but both readers read it as written: {joined!r}, {online!r}"


def test_the_measurement_covers_accepted_and_refused_types():
    accepted = [name for name, case in CASES.items() if case[-1]]
    assert 15 < len(accepted) < len(CASES) - 15
    assert set(STRICTER) <= set(CASES) and not any(CASES[name][-1] for name in STRICTER)


def test_what_a_table_lacks_is_named_with_the_closest_column(tmp_path: Path):
    from ctflow.spec.column_types import DeclaredColumn, DeclaredTable, type_mismatches

    path = tmp_path / "weather.parquet"
    pd.DataFrame({"origin": ["EWR"], "humidity": [0.5], "event_timestamp": [pd.Timestamp(T0)]}).to_parquet(path)
    table = DeclaredTable(str(path), "feature view weather", (DeclaredColumn("humid", "Float64", "feature humid"),))
    [mismatch] = type_mismatches([table])
    assert (mismatch.column, mismatch.found, mismatch.suggestion) == ("humid", None, "humidity")
    assert mismatch.message.startswith(f"{path}, column 'humid': the feature view weather reads it (feature humid), "
                                       "but the table has no such column; fix: add humid to the table")


def test_a_folder_of_parquet_files_is_read_by_its_schema(tmp_path: Path):
    """Spark and pandas' partitioned writers leave a folder named like a file: no false alarm."""
    from ctflow.spec.column_types import DeclaredColumn, DeclaredTable, type_mismatches, unreadable

    folder = tmp_path / "weather.parquet"
    pd.DataFrame({"origin": ["EWR", "JFK"], "temp": [39.0, 41.0]}).to_parquet(folder, partition_cols=["origin"])
    declared = (DeclaredColumn("temp", "Float64", "feature temp"), DeclaredColumn("wind", "Float64", "feature wind"),
                DeclaredColumn("origin", "String", "join key origin", entity_column="origin"))  # a partition column
    table = DeclaredTable(str(folder), "feature view weather", declared)
    assert unreadable([table]) == []
    assert [(m.column, m.found) for m in type_mismatches([table])] == [("wind", None)]
