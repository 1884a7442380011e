"""Point-in-time joins at scale on synthetic data: the ASOF store, Feast's DuckDB store and pandas ``merge_asof``.

    uv run python benchmarks/frame_scale.py [--entity-rows 1000000] [--feature-rows 10000000]
        [--keys 100000] [--sides asof,asof_parquet,feast_duckdb,merge_asof] [--timeout 1800]

A throw-away Feast repository (one entity, one view of three float features with a 7-day
TTL, applied through Feast's SDK) holds ``--feature-rows`` rows over a year for ``--keys``
keys; the entity frame has ``--entity-rows`` rows at random keys and times. Each side runs
in its own child process with a time limit, and reports its join time, its peak RSS and a
checksum of the result (rows, missing values, sum of one feature) so the sides can be
compared without holding two frames; a side that fails says how (exit status, signal, time
limit). ``asof_parquet`` is the ASOF store streaming its result to a parquet file
(``AsofRetrievalJob.to_parquet``) instead of building a pandas frame.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

SIDES = {
    "asof": "ctflow.core.feast_asof.store.AsofDuckDBOfflineStore",
    "asof_parquet": "ctflow.core.feast_asof.store.AsofDuckDBOfflineStore",
    "feast_duckdb": "duckdb",
    "merge_asof": None,
}
START = datetime(2024, 1, 1, tzinfo=UTC)
YEAR_US = 365 * 86_400 * 1_000_000
TTL = timedelta(days=7)
FEATURES = ["f1", "f2", "f3"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--feature-rows", type=int, default=10_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per side")
    parser.add_argument("--side", choices=list(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--repo", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        return run_side(args.side, args.repo)

    with tempfile.TemporaryDirectory(prefix="frame_scale_") as folder:
        repo = Path(folder)
        started = time.perf_counter()
        build_repo(repo, entity_rows=args.entity_rows, feature_rows=args.feature_rows, keys=args.keys)
        print(f"synthetic repo: {args.entity_rows:,} entity rows, {args.feature_rows:,} feature rows, "
              f"{args.keys:,} keys ({time.perf_counter() - started:.0f} s to build); "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
        for side in [s.strip() for s in args.sides.split(",") if s.strip()]:
            command = [sys.executable, __file__, "--side", side, "--repo", str(repo)]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
            except subprocess.TimeoutExpired:
                print(f"{side:>13}: FAILED: over the {args.timeout:.0f} s limit", flush=True)
                continue
            if done.returncode != 0:
                how = (f"killed by {signal.Signals(-done.returncode).name}" if done.returncode < 0
                       else f"exit {done.returncode}")
                last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
                print(f"{side:>13}: FAILED ({how}): {last[:300]}", flush=True)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{side:>13}: join {result['seconds']:7.1f} s  peak RSS {result['peak_mb']:7,.0f} MB  "
                  f"rows {result['rows']:,}  missing f1 {result['missing']:,}  sum f1 {result['sum']:.6f}", flush=True)
    return 0


def build_repo(repo: Path, *, entity_rows: int, feature_rows: int, keys: int) -> None:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    random = np.random.default_rng(17)
    data = repo / "data"
    data.mkdir()
    features = pd.DataFrame({
        "user_id": random.integers(0, keys, feature_rows, dtype=np.int64),
        "event_timestamp": _times(random, feature_rows),
        **{name: random.random(feature_rows) for name in FEATURES},
    })
    features.to_parquet(data / "features.parquet", row_group_size=1_000_000)
    del features
    pd.DataFrame({
        "user_id": random.integers(0, keys, entity_rows, dtype=np.int64),
        "event_timestamp": _times(random, entity_rows),
        "row": np.arange(entity_rows, dtype=np.int64),
    }).to_parquet(data / "entities.parquet")
    (repo / "feature_store.yaml").write_text(yaml.safe_dump({
        "project": "frame_scale", "provider": "local", "registry": "data/registry.db",
        "online_store": {"type": "sqlite", "path": "data/online.db"}, "offline_store": {"type": "duckdb"},
        "entity_key_serialization_version": 3,
    }))
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="user_stats", entities=[user], ttl=TTL, schema=[Field(name=n, dtype=Float64) for n in FEATURES],
        source=FileSource(name="user_stats_source", path=str(data / "features.parquet"), timestamp_field="event_timestamp"),
    )
    FeatureStore(repo_path=str(repo)).apply([user, view])


def _times(random: np.random.Generator, n: int) -> pd.Series:
    micros = random.integers(0, YEAR_US, n, dtype=np.int64)
    return pd.Series(pd.Timestamp(START) + pd.to_timedelta(micros, unit="us")).astype("datetime64[us, UTC]")


def run_side(side: str, repo: Path) -> int:
    entities = pd.read_parquet(repo / "data" / "entities.parquet")
    started = time.perf_counter()
    if SIDES[side] is None:
        frame = _merge_asof(entities, repo / "data" / "features.parquet")
    else:
        from feast import FeatureStore

        config = yaml.safe_load((repo / "feature_store.yaml").read_text())
        config["offline_store"] = {"type": SIDES[side]}
        chosen = repo / f"{side}.yaml"
        chosen.write_text(yaml.safe_dump(config))
        store = FeatureStore(repo_path=str(repo), fs_yaml_file=chosen)
        started = time.perf_counter()  # Feast's import and registry load are not the join
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            job = store.get_historical_features(entity_df=entities, features=[f"user_stats:{n}" for n in FEATURES])
            if side == "asof_parquet":
                frame = pd.read_parquet(job.to_parquet(repo / "data" / "asof_result.parquet"), columns=["f1"])
            else:
                frame = job.to_df()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"side": side, "seconds": seconds, "peak_mb": peak, "rows": len(frame),
                      "missing": int(frame["f1"].isna().sum()), "sum": float(frame["f1"].sum())}))
    return 0


def _merge_asof(entities: pd.DataFrame, path: Path) -> pd.DataFrame:
    right = pd.read_parquet(path).rename(columns={"event_timestamp": "_event_timestamp"})
    right = right.sort_values("_event_timestamp", kind="stable")
    left = entities.sort_values("event_timestamp", kind="stable")
    joined = pd.merge_asof(left, right, left_on="event_timestamp", right_on="_event_timestamp", by="user_id",
                           direction="backward", allow_exact_matches=True, tolerance=pd.Timedelta(TTL))
    return joined.sort_values("row", kind="stable", ignore_index=True)


if __name__ == "__main__":
    sys.exit(main())
