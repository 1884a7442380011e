"""A ct_ run under a real scheduler against the same core steps in one plain Python process.

    uv run python benchmarks/scheduler_run.py [--as-of 2013-06-01] [--executor local|celery]

The demo spec made trigger-only (no cron runs beside the measured one) is run both ways from
empty state (fresh MLflow DB, no champion): in one plain process (``benchmarks/ct_run.py``'s
core steps), and as ``ct_flight_delay`` triggered through the REST API of a fresh Airflow
(scheduler, dag-processor and api-server, started as ``tests/harness.py`` does; LocalExecutor
on SQLite, or CeleryExecutor on this machine's PostgreSQL and Redis). Reported: wall time
from trigger to the run's success, each task's own duration and its wait in the queue (from
its upstream's end to its start), and the ratio to the plain process, measured in one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "benchmarks")]

from ct_run import PLAIN, timed  # noqa: E402

from tests.harness import running_airflow  # noqa: E402

TRIGGER_ONLY = (('train: "0 2 1 */3 *"', "train: null"), ('monitor: "0 6 * * 1"', "monitor: null"))


def _celery_env(root: Path) -> dict[str, str]:
    """CeleryExecutor on the local PostgreSQL (a fresh database) and Redis (a fresh DB number)."""
    name = f"ctflow_bench_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {name}"], check=True,
                   capture_output=True)
    url = f"postgresql+psycopg2://postgres:postgres@127.0.0.1:5432/{name}"
    return {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
            "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/7",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + url.replace("+psycopg2", "")}


def _seconds(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


def scheduler_side(root: Path, spec_text: str, as_of: str, executor: str, base: dict[str, str],
                   preload: bool = False) -> dict:
    dags = root / "dags"
    (dags / "specs").mkdir(parents=True)
    for loader in (PROJECT / "dags").glob("*.py"):
        (dags / loader.name).write_text(loader.read_text())
    (dags / "specs" / "flight_delay.yaml").write_text(spec_text)
    env = {**base, "CTFLOW_HOME": str(root / "airflow-ctflow"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'airflow-mlflow.db'}",
           "AIRFLOW__CORE__PARALLELISM": "4"}
    workers = 0
    if preload:
        env["AIRFLOW__CORE__EXECUTOR"] = "ctflow.executors.PreloadingLocalExecutor"
    if executor == "celery":
        env.update(_celery_env(root))
        workers = 1
    with running_airflow(root / "airflow", dags_folder=dags, extra_env=env,
                         components=("scheduler", "dag-processor", "api-server"), workers=workers) as airflow:
        passwords = airflow.home / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + 300
        while not passwords.exists() and time.monotonic() < deadline:  # written by the api-server once it is up
            time.sleep(1)
        airflow.wait_for_dag("ct_flight_delay", timeout=600)
        started = time.perf_counter()
        run_id = airflow.trigger("ct_flight_delay", f"{as_of}T00:00:00Z")
        run = airflow.wait_for_run("ct_flight_delay", run_id)
        wall = time.perf_counter() - started
        if run["state"] != "success":
            raise SystemExit(f"run {run['state']}:\n{airflow.failed_tasks('ct_flight_delay', run_id)}")
        tasks = airflow.task_instances("ct_flight_delay", run_id)
    return {"wall": wall, "run": run, "tasks": tasks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", default="2013-06-01")
    parser.add_argument("--executor", choices=("local", "celery"), default="local")
    parser.add_argument("--preload", action="store_true",
                        help="LocalExecutor: ctflow.executors.PreloadingLocalExecutor (the ML stack imported before fork)")
    args = parser.parse_args()
    subprocess.run([sys.executable, str(PROJECT / "feature_repo" / "bootstrap.py")], check=True, capture_output=True)
    spec_text = (PROJECT / "dags" / "specs" / "flight_delay.yaml").read_text()
    for old, new in TRIGGER_ONLY:
        assert old in spec_text, f"the demo spec no longer has {old!r}"
        spec_text = spec_text.replace(old, new)
    with tempfile.TemporaryDirectory(prefix="ctflow-bench-sched-") as tmp:
        root = Path(tmp)
        base = {**os.environ, "CTFLOW_PROJECT": str(PROJECT), "GIT_PYTHON_REFRESH": "quiet"}
        spec = root / "flight_delay.yaml"
        spec.write_text(spec_text)
        plain_env = {**base, "CTFLOW_HOME": str(root / "plain"), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'plain.db'}"}
        plain_s, _ = timed([sys.executable, "-c", PLAIN, str(spec), args.as_of, str(root / "plain-run"), "0"], plain_env)
        result = scheduler_side(root, spec_text, args.as_of, args.executor, base, args.preload)
    tasks = sorted((t for t in result["tasks"] if t.get("start_date")), key=lambda t: t["start_date"])
    run_start = _seconds(result["run"].get("start_date")) or 0.0
    print(f"ct_flight_delay (trigger-only demo spec) as of {args.as_of}, from empty state, measured in one run:")
    print(f"  {'task':34s} {'state':8s} {'queued->start':>13s} {'duration':>9s}")
    own = 0.0
    for t in tasks:
        wait = (_seconds(t["start_date"]) or 0) - (_seconds(t.get("queued_when")) or run_start)
        own += t.get("duration") or 0.0
        print(f"  {t['task_id']:34s} {t['state']:8s} {wait:12.1f}s {t.get('duration') or 0:8.1f}s")
    executor = {"local": "LocalExecutor, SQLite", "celery": "CeleryExecutor, PostgreSQL + Redis"}[args.executor]
    executor = f"Preloading{executor}" if args.preload else executor
    print(f"  tasks' own durations summed: {own:.1f} s")
    print(f"  plain Python (core steps):        {plain_s:6.1f} s")
    print(f"  scheduler ({executor}), trigger to success: {result['wall']:6.1f} s")
    print(f"  ratio scheduler / plain: {result['wall'] / plain_s:.2f}x (goal <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
