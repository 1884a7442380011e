"""Training-frame build for the whole year: Feast (DuckDB offline store) against pandas ``merge_asof``.

    uv run python benchmarks/frame_build.py [--rows N] [--service flight_delay_v1]

The entity rows are the flights whose label is known (about 327k). Both sides compute the
same point-in-time join, with the TTLs, join keys and sources read from the Feast registry:
for each row and view, the newest source row with ``event time <= row time`` and
``row time - event time <= TTL``. The pandas side runs first (it includes reading the
source parquet files), then ctflow's Feast path; both frames are compared cell by cell.

Feast's import and registry load (seconds, once per process) are reported apart from the
join. Peak RSS is the process's high-water mark after each side, so the second figure
includes the first.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
TIMESTAMP = "scheduled_departure"
LABEL = "arr_delay"
YEAR = (datetime(2013, 1, 1, tzinfo=UTC), datetime(2014, 1, 2, tzinfo=UTC))


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
    args = parser.parse_args(argv)
    repo = args.repo.resolve()

    _bootstrap(repo)
    from ctflow.core import features

    rows = features.load_entity_rows(repo / "data" / "flights.parquet", timestamp=TIMESTAMP, start=YEAR[0], end=YEAR[1])
    rows = rows[rows[LABEL].notna()].reset_index(drop=True)
    if args.rows:
        rows = rows.head(args.rows)

    imported = "feast" in sys.modules  # a bootstrap that had work to do imported it already
    started = time.perf_counter()
    names = features.feature_names(repo, args.service)  # imports Feast, loads the registry
    views = service_views(repo, args.service)
    setup = time.perf_counter() - started

    started, cpu = time.perf_counter(), time.process_time()
    by_pandas = pandas_point_in_time(rows, views, timestamp=TIMESTAMP)
    pandas_seconds, pandas_cpu = time.perf_counter() - started, time.process_time() - cpu
    rss_after_pandas = _peak_rss_mb()

    started, cpu = time.perf_counter(), time.process_time()
    by_feast = features.get_historical_features(repo, args.service, rows, timestamp=TIMESTAMP)
    feast_seconds, feast_cpu = time.perf_counter() - started, time.process_time() - cpu
    rss_after_feast = _peak_rss_mb()

    mismatches = compare(by_feast, by_pandas, names)
    total = sum(mismatches.values())
    print(f"frame: {len(rows):,} rows x {len(names)} features of {args.service} ({len(views)} views)")
    print(f"feast {'registry' if imported else 'import + registry'}: {setup:.1f} s "
          "(once per process, not in the figures below)")
    print(f"feast_duckdb: {feast_seconds:.1f} s  pandas merge_asof: {pandas_seconds:.1f} s  "
          f"ratio: {feast_seconds / pandas_seconds:.1f}x")
    print(f"cpu time (all threads): feast_duckdb {feast_cpu:.1f} s, pandas {pandas_cpu:.1f} s "
          f"(on {os.cpu_count()} cores; wall times suffer when other processes compete)")
    print(f"mismatching cells: {total:,} of {len(rows) * len(names):,}"
          + ("" if not total else "  " + ", ".join(f"{k}: {v}" for k, v in mismatches.items() if v)))
    print(f"peak RSS: {rss_after_pandas:,.0f} MB after pandas, {rss_after_feast:,.0f} MB after feast")
    return 0 if total == 0 else 1


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
