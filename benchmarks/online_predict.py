"""Online prediction latency against Redis: Feast alone, MLflow alone, ``ctflow predict``'s path.

    uv run python benchmarks/online_predict.py [--requests 1000] [--redis redis://127.0.0.1:6379]

One run, side by side, in one process (so the ratios hold on a loaded machine):

1. a small champion (the demo's estimator on 10 days of flights, 2013-03-01) is trained, gated,
   registered and promoted by the CT steps in a throw-away MLflow store;
2. the demo's feature service is materialized into an empty Redis database (claimed as the tests
   do, flushed afterwards) up to 2013-03-01 by ctflow's ``materialize`` step;
3. each of ``--requests`` real flights of the next day is timed three ways, interleaved:
   (a) Feast's ``get_online_features`` for the service alone; (b) MLflow's pyfunc ``predict``
   alone on that flight's one-row input; (c) :meth:`OnlinePredictor.predict`, the whole path of
   ``ctflow predict`` after the model is loaded (Feast lookup, input row from the signature,
   pyfunc predict, feature ages).

Writes ``benchmarks/online_predict.md`` (p50/p95/mean in ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
AS_OF = datetime(2013, 3, 1, tzinfo=UTC)
MODEL = "online_benchmark"
KEYS = ("origin", "carrier", "route", "tailnum")
REQUEST = ("dest", "distance", "dep_hour", "day_of_week")


def _spec_text() -> str:
    from tests.conftest import demo_spec

    return demo_spec(
        ("pipeline: flight_delay", f"pipeline: {MODEL}"), ("window: 60d", "window: 10d"), ("holdout: 14d", "holdout: 3d"),
        ("min_rows: 20000", "min_rows: 1000"),
        ("params: {max_iter: 200, learning_rate: 0.1, max_leaf_nodes: 31}", "params: {max_iter: 50}"),
        ("roc_auc: {min: 0.65}", "roc_auc: {min: 0.5}"), ("roc_auc: {min: 0.60}", "roc_auc: {min: 0.5}"),
    )


def _champion(spec_text: str, home: Path) -> None:
    from ctflow.core import steps
    from ctflow.spec import parse_spec

    spec, run_dir = parse_spec(spec_text), home / "ct"
    run_dir.mkdir()
    steps.fetch_features(spec, as_of=AS_OF, run_dir=run_dir)
    steps.train(spec, as_of=AS_OF, run_dir=run_dir, run_key="bench", spec_text=spec_text)
    steps.evaluate(spec, run_dir=run_dir)
    steps.register(spec, run_dir=run_dir, run_key="bench")
    steps.promote(spec, run_dir=run_dir, actor="benchmark")


def _redis_repo(folder: Path, redis_url: str, db: int) -> Path:
    """The demo's definitions in a new file registry, with Redis db ``db`` as online store."""
    from urllib.parse import urlparse

    from ctflow.deploy import topology
    from tests.online_store import fresh_repo

    url = urlparse(redis_url)
    return fresh_repo(folder, {"type": "redis", "connection_string": topology.feast_redis_connection_string(
        host=url.hostname or "127.0.0.1", port=url.port or 6379, db=db, password=url.password)})


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50": round(pick(0.50), 2), "p95": round(pick(0.95), 2), "mean": round(statistics.fmean(ordered) * 1000, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--redis", default=os.environ.get("CTFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379"))
    args = parser.parse_args()

    from tests.production.native import throwaway_redis_dbs

    home = Path(tempfile.mkdtemp(prefix="ctflow-online-bench-"))
    os.environ.update(MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}", CTFLOW_HOME=str(home / "home"),
                      MLFLOW_DISABLE_TELEMETRY="true")
    with throwaway_redis_dbs(1, url=args.redis) as (db,):  # an empty database, claimed, flushed afterwards
        return _run(args, home, db)


def _run(args: argparse.Namespace, home: Path, db: int) -> int:
    from ctflow.core import online
    from ctflow.core.online_predict import OnlinePredictor
    from ctflow.spec import parse_spec

    spec_text = _spec_text()
    started = time.perf_counter()
    _champion(spec_text, home)
    trained = time.perf_counter() - started
    repo = _redis_repo(home / "repo", args.redis, db)
    started = time.perf_counter()
    materialized = online.materialize(parse_spec(spec_text), as_of=AS_OF, feature_repo=repo)
    materialize_seconds = time.perf_counter() - started

    predictor = OnlinePredictor.load(MODEL, feature_repo=repo)
    service = predictor.store.get_feature_service(predictor.feature_service)
    flights = pd.read_parquet(PROJECT / "feature_repo" / "data" / "flights.parquet")
    day = flights[(flights.scheduled_departure >= AS_OF) & (flights.scheduled_departure < AS_OF + pd.Timedelta(days=1))]
    day = day.dropna(subset=list(KEYS))  # a flight without a tail number cannot be looked up
    requests = [{k: row[k] for k in (*KEYS, *REQUEST)} for row in day.to_dict("records")]
    requests = (requests * (args.requests // len(requests) + 1))[: args.requests]
    for request in requests[:50]:
        predictor.predict(request)  # warm-up: connections, caches
    # (b)'s input: the very row (c) builds, built beforehand so that (b) times predict alone.
    frames = [pd.DataFrame([predictor.input_row(request)[0]]) for request in requests]
    times: dict[str, list[float]] = {"feast": [], "mlflow": [], "ctflow": []}
    for request, frame in zip(requests, frames, strict=True):
        t0 = time.perf_counter()
        predictor.store.get_online_features(features=service, entity_rows=[{k: request[k] for k in KEYS}])
        t1 = time.perf_counter()
        predictor.model.predict(frame)
        t2 = time.perf_counter()
        predictor.predict(request)
        t3 = time.perf_counter()
        times["feast"].append(t1 - t0)
        times["mlflow"].append(t2 - t1)
        times["ctflow"].append(t3 - t2)
    results = {name: _stats(samples) for name, samples in times.items()}
    _write(results, args, trained=trained, materialize_seconds=materialize_seconds, materialized=materialized)
    print(json.dumps(results, indent=2))
    return 0


def _write(results: dict, args: argparse.Namespace, *, trained: float, materialize_seconds: float,
           materialized: dict) -> None:
    rows = {"feast": "(a) Feast `get_online_features`, the service's 25 features, one entity",
            "mlflow": "(b) MLflow pyfunc `predict`, one row (28 columns)",
            "ctflow": "(c) `ctflow predict`'s path in-process (a + input row + b + feature ages)"}
    views = ", ".join(f"{view}: {facts['action']}" for view, facts in materialized["views"].items())
    lines = [
        "# Online prediction latency against Redis",
        "",
        (f"`uv run python benchmarks/online_predict.py --requests {args.requests}`, measured "
        f"{datetime.now(UTC):%Y-%m-%d} on the shared 2-core machine (loaded by other work: compare the rows, "
        "measured interleaved in one run, rather than the absolute numbers). Redis 7 on 127.0.0.1."),
        "",
        "| call | p50 ms | p95 ms | mean ms |",
        "|---|---:|---:|---:|",
        *[f"| {rows[name]} | {r['p50']} | {r['p95']} | {r['mean']} |" for name, r in results.items()],
        "",
        (f"Overhead of ctflow's path over (a) + (b) at p50: "
        f"{results['ctflow']['p50'] - results['feast']['p50'] - results['mlflow']['p50']:.2f} ms."),
        "",
        (f"Set-up, not timed above: training the champion {trained:.1f} s; materializing the four views into "
        f"Redis from each source's start to 2013-03-01 {materialize_seconds:.1f} s "
        f"({views}). Loading the model "
        "(`mlflow.pyfunc.load_model`) happens once per `ctflow predict` process, not per request."),
        "",
    ]
    (PROJECT / "benchmarks" / "online_predict.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
