"""Training-frame build for the whole year: the ASOF store, Feast's DuckDB store and pandas ``merge_asof``.

    uv run python benchmarks/frame_build.py [--rows N] [--service flight_delay_v1] [--sides ...]

The entity rows are the flights whose label is known (about 327k). Every side computes the
same point-in-time join, with the TTLs, join keys and sources read from the Feast registry:
for each row and view, the newest source row with ``event time <= row time`` and
``row time - event time <= TTL``. ``asof`` and ``feast_duckdb`` go through ctflow's path
(``ctflow.core.features.get_historical_features``) with ``offline_store.type`` set to
ctflow's ASOF store or to Feast's DuckDB store; ``asof_store`` is the ASOF store alone
(``FeatureStore.get_historical_features(...).to_df()`` on the request ctflow builds, without
ctflow's reordering and dtype normalisation); ``merge_asof`` is pandas.

Each side runs in its own child process, one after the other, so that each peak RSS is its
own: the process's high-water mark at the end, and the part of it the join added on top of
the high-water mark before the join (imports, registry and entity rows). Feast's import and
registry load (seconds, once per process) are reported apart from the join. The frames are
compared cell by cell with Feast's DuckDB store's; the exit status is 0 only if all agree.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PROJECT = Path(__file__).resolve().parents[1]
TIMESTAMP = "scheduled_departure"
LABEL = "arr_delay"
YEAR = (datetime(2013, 1, 1, tzinfo=UTC), datetime(2014, 1, 2, tzinfo=UTC))
#: Side name -> offline store type it selects (None: pandas, no store).
SIDES = {
    "asof": "ctflow.core.feast_asof.store.AsofDuckDBOfflineStore",
    "asof_store": "ctflow.core.feast_asof.store.AsofDuckDBOfflineStore",
    "feast_duckdb": "duckdb",
    "merge_asof": None,
}
REFERENCE = "feast_duckdb"


@dataclass(frozen=True)
class View:
    """What a point-in-time join needs to know about one feature view of the service."""

    name: str
    path: Path
    keys: list[str]
    timestamp_field: str
    ttl: timedelta | None
    features: list[str]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="use only the first N labelled flights")
    parser.add_argument("--service", default="flight_delay_v1")
    parser.add_argument("--repo", type=Path, default=PROJECT / "feature_repo")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of {', '.join(SIDES)}")
    parser.add_argument("--side", choices=list(SIDES), help=argparse.SUPPRESS)  # a child process's one side
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    if args.side:
        return run_side(args.side, repo=repo, service=args.service, rows=args.rows, out=args.out)

    _bootstrap(repo)
    sides = [side.strip() for side in args.sides.split(",") if side.strip()]
    results, frames = {}, {}
    with tempfile.TemporaryDirectory(prefix="frame_build_") as folder:
        for side in sides:
            out = Path(folder) / f"{side}.parquet"
            command = [sys.executable, __file__, "--side", side, "--service", args.service, "--repo", str(repo),
                       "--out", str(out), *(["--rows", str(args.rows)] if args.rows else [])]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{side}: failed (exit {done.returncode})\n{done.stderr[-3000:]}")
                continue
            results[side] = json.loads(done.stdout.strip().splitlines()[-1])
            frames[side] = pd.read_parquet(out)

    if not results:
        return 1
    first = next(iter(results.values()))
    print(f"frame: {first['rows']:,} rows x {len(first['features'])} features of {args.service}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    base = results.get("merge_asof")
    for side, result in results.items():
        ratio = f"  {result['seconds'] / base['seconds']:.2f}x merge_asof" if base else ""
        print(f"{side:>13}: join {result['seconds']:6.2f} s (cpu {result['cpu']:6.2f} s){ratio}  "
              f"peak RSS {result['peak_mb']:6,.0f} MB (+{result['peak_mb'] - result['before_mb']:,.0f} MB in the join)  "
              f"[feast import + registry {result['setup']:.1f} s]")
    mismatching = 0
    if REFERENCE in frames:
        for side, frame in frames.items():
            if side == REFERENCE:
                continue
            counts = compare(frame, frames[REFERENCE], first["features"])
            total = sum(counts.values())
            mismatching += total
            print(f"mismatching cells, {side} vs {REFERENCE}: {total:,} of {len(frame) * len(first['features']):,}"
                  + ("" if not total else "  " + ", ".join(f"{k}: {v}" for k, v in counts.items() if v)))
    return 0 if mismatching == 0 and len(results) == len(sides) else 1


def run_side(side: str, *, repo: Path, service: str, rows: int | None, out: Path) -> int:
    """One side, in this (child) process: time and memory of the join, the frame written to ``out``."""
    kind = SIDES[side]
    if kind is None:
        return _run_side(side, kind, repo=repo, service=service, rows=rows, out=out)
    # ctflow's path reads the store from this file (as production's FEAST_FS_YAML_FILE_PATH), which it
    # honours only inside the repository (ctflow.core.features.store_config): elsewhere the side would
    # silently use the repository's own feature_store.yaml.
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    config["offline_store"] = {"type": kind}
    chosen = repo / f".frame_build_{side}_{os.getpid()}.yaml"
    chosen.write_text(yaml.safe_dump(config))
    os.environ["FEAST_FS_YAML_FILE_PATH"] = str(chosen)
    try:
        return _run_side(side, kind, repo=repo, service=service, rows=rows, out=out)
    finally:
        chosen.unlink(missing_ok=True)


def _run_side(side: str, kind: str | None, *, repo: Path, service: str, rows: int | None, out: Path) -> int:
    from ctflow.core import features

    entity_rows = features.load_entity_rows(repo / "data" / "flights.parquet", timestamp=TIMESTAMP,
                                            start=YEAR[0], end=YEAR[1])
    entity_rows = entity_rows[entity_rows[LABEL].notna()].reset_index(drop=True)
    if rows:
        entity_rows = entity_rows.head(rows)

    started = time.perf_counter()
    names = features.feature_names(repo, service)  # imports Feast, loads the registry
    views = service_views(repo, service)
    setup = time.perf_counter() - started
    before = _peak_rss_mb()

    started, cpu = time.perf_counter(), time.process_time()
    if kind is None:
        frame = pandas_point_in_time(entity_rows, views, timestamp=TIMESTAMP)
    elif side == "asof_store":
        frame = _store_alone(repo, service, entity_rows, views)
    else:
        frame = features.get_historical_features(repo, service, entity_rows, timestamp=TIMESTAMP)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = _peak_rss_mb()

    if kind is not None:  # the store this side meant to measure is the one that answered
        store, _ = features._store_for(repo)
        assert store.config.offline_store.type == kind, (store.config.offline_store.type, kind)
    frame[names].to_parquet(out)
    print(json.dumps({"side": side, "rows": len(entity_rows), "features": names, "setup": setup,
                      "seconds": seconds, "cpu": cpu, "before_mb": before, "peak_mb": peak}))
    return 0


def _store_alone(repo: Path, service: str, entity_rows: pd.DataFrame, views: list[View]) -> pd.DataFrame:
    """The offline store's own frame for ctflow's request, in entity-row order (Feast's names and dtypes)."""
    import pyarrow as pa

    from ctflow.core import features

    keys = list(dict.fromkeys(key for view in views for key in view.keys))
    request = pd.DataFrame({
        "event_timestamp": entity_rows[TIMESTAMP],
        **{key: entity_rows[key].astype(pd.ArrowDtype(pa.string())) for key in keys},
        "__row": np.arange(len(entity_rows), dtype="int64"),
    })
    store, _ = features._store_for(repo)
    joined = store.get_historical_features(entity_df=request, features=store.get_feature_service(service)).to_df()
    assert joined["__row"].is_monotonic_increasing  # the ASOF store keeps the entity rows' order
    return joined


def service_views(repo: Path, service: str) -> list[View]:
    """The service's feature views as registered: source file, keys, TTL, selected features."""
    from feast import FeatureStore, FileSource

    store = FeatureStore(repo_path=str(repo))
    views = []
    for projection in store.get_feature_service(service).feature_view_projections:
        view = store.get_feature_view(projection.name)
        source = view.batch_source
        if not isinstance(source, FileSource):
            raise SystemExit(f"view {view.name} reads {type(source).__name__}: this benchmark reads parquet files")
        views.append(
            View(
                name=view.name,
                path=Path(source.path),
                keys=[column.name for column in view.entity_columns],
                timestamp_field=source.timestamp_field,
                ttl=view.ttl or None,  # Feast reads a zero TTL as "no limit"
                features=[field.name for field in projection.features],
            )
        )
    return views


def pandas_point_in_time(rows: pd.DataFrame, views: list[View], *, timestamp: str) -> pd.DataFrame:
    """The same join with ``pd.merge_asof``: rows in their original order, features appended."""
    keys = list(dict.fromkeys(key for view in views for key in view.keys))
    order = np.argsort(rows[timestamp].to_numpy(), kind="stable")
    left = rows.iloc[order][[timestamp, *keys]].reset_index(drop=True)
    left["_position"] = order
    for view in views:
        right = pd.read_parquet(view.path, columns=[*view.keys, view.timestamp_field, *view.features])
        right = right.rename(columns={view.timestamp_field: "_event_timestamp"})
        right["_event_timestamp"] = right["_event_timestamp"].astype(left[timestamp].dtype)
        right = right.dropna(subset=view.keys).sort_values("_event_timestamp", kind="stable")
        # A row with a missing key matches nothing (as in SQL), so it skips the join.
        matchable = left[view.keys].notna().all(axis=1)
        joined = pd.merge_asof(
            left.loc[matchable, [timestamp, *view.keys]],
            right,
            left_on=timestamp,
            right_on="_event_timestamp",
            by=view.keys,
            direction="backward",
            allow_exact_matches=True,
            tolerance=pd.Timedelta(view.ttl) if view.ttl else None,
        )
        for feature in view.features:  # merge_asof keeps the left rows' order
            left[feature] = joined[feature].set_axis(left.index[matchable])
    left = left.sort_values("_position", kind="stable").reset_index(drop=True)
    return pd.concat([rows.reset_index(drop=True), left[[f for v in views for f in v.features]]], axis=1)


def compare(a: pd.DataFrame, b: pd.DataFrame, names: list[str]) -> dict[str, int]:
    """Cells that differ, per feature (missing on both sides counts as equal)."""
    counts = {}
    for name in names:
        x, y = a[name].reset_index(drop=True), b[name].reset_index(drop=True)
        both_missing = x.isna() & y.isna()
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            same = np.isclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-12, atol=0.0)
        elif pd.api.types.is_datetime64_any_dtype(x) or pd.api.types.is_datetime64_any_dtype(y):
            same = (pd.to_datetime(x, utc=True) == pd.to_datetime(y, utc=True)).to_numpy()
        else:
            same = (x.astype(object) == y.astype(object)).to_numpy()
        counts[name] = int((~(same | both_missing.to_numpy())).sum())
    return counts


def _bootstrap(repo: Path) -> None:
    spec = importlib.util.spec_from_file_location("ctflow_feature_repo_bootstrap", repo / "bootstrap.py")
    assert spec is not None and spec.loader is not None, f"no bootstrap.py in {repo}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.bootstrap(repo)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


if __name__ == "__main__":
    sys.exit(main())
