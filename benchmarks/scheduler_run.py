"""A ct_ run under a real scheduler against the same core steps in one plain Python process.

    uv run python benchmarks/scheduler_run.py [--rounds 3] [--variants plain,local,preload]
                                              [--as-of 2013-06-01] [--quick]

The demo spec made trigger-only (no cron runs beside the measured one) is run from empty state
(fresh MLflow DB, no champion, a fresh Airflow) by each variant in turn, ``--rounds`` times,
interleaved (plain, local, preload, plain, local, preload, ...), so that every scheduler run has
a plain run beside it under about the same load (the machine is shared):

* ``plain``: ``benchmarks/ct_run.py``'s core steps in one Python process (the baseline);
* ``local``: ``ct_flight_delay`` triggered through the REST API of a fresh Airflow (scheduler,
  dag-processor, api-server, as ``tests/harness.py`` starts them), stock LocalExecutor on SQLite;
* ``preload``: the same with ``ctflow.executors.PreloadingLocalExecutor``;
* ``celery``: the production topology started natively on this machine's PostgreSQL and Redis
  (``tests/production/native.py``: CeleryExecutor, two workers, an MLflow server, Feast's SQL
  registry), its workers preloading the ML stack before their pool forks (as in production);
* ``celery-stock``: the same with Airflow's own Celery configuration (no preload).

A scheduler variant's time is from the trigger to the run's end as the scheduler stamps it
(the start-up of the deployment is not counted); its ratio is to the plain run of the same
round. Each measurement shows the load average (1 min) at its start and end. ``--quick`` uses
the tests' smaller variant (28-day window, 60 boosting iterations): less work per run, so the
scheduler's share of the time is larger, not smaller.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "benchmarks")]

from ct_run import PLAIN, timed  # noqa: E402

import tests.conftest  # noqa: E402
from tests.conftest import QUICK_TRIGGER_ONLY, demo_spec, write_dags_folder  # noqa: E402
from tests.harness import PRELOADING_EXECUTOR, Airflow, running_airflow  # noqa: E402

TRIGGER_ONLY = (('train: "0 2 1 */3 *"', "train: null"), ('monitor: "0 6 * * 1"', "monitor: null"))
DAG_ID = "ct_flight_delay"
SCHEDULERS = {
    "local": "LocalExecutor, SQLite",
    "preload": "PreloadingLocalExecutor, SQLite",
    "celery": "CeleryExecutor (preloading workers), PostgreSQL + Redis",
    "celery-stock": "CeleryExecutor (Airflow's Celery config), PostgreSQL + Redis",
}
#: ``[celery] celery_config_options`` of ``celery-stock``: Airflow's default, without ctflow's preload.
AIRFLOW_CELERY_CONFIG = "airflow.providers.celery.executors.default_celery.DEFAULT_CELERY_CONFIG"


def _seconds(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


@contextlib.contextmanager
def deployment(variant: str, root: Path, dags: Path) -> Iterator[Airflow]:
    """A fresh Airflow of ``variant`` (its own state under ``root``) serving ``dags``."""
    if variant.startswith("celery"):
        from tests.production.native import running_stack

        extra = {"AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": AIRFLOW_CELERY_CONFIG} if variant == "celery-stock" else {}
        with running_stack(root, dags_folder=dags, extra_env=extra) as stack:
            yield stack
        return
    # Only ctflow's and MLflow's settings on top of the harness's (which come from os.environ and
    # set AIRFLOW_HOME, the DB and the DAGs folder of this deployment).
    env = {"CTFLOW_PROJECT": str(PROJECT), "CTFLOW_HOME": str(root / "ctflow"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "AIRFLOW__CORE__PARALLELISM": "4"}
    executor = PRELOADING_EXECUTOR if variant == "preload" else "LocalExecutor"
    with running_airflow(root / "airflow", dags_folder=dags, extra_env=env, executor=executor,
                         components=("scheduler", "dag-processor", "api-server")) as airflow:
        passwords = airflow.home / "simple_auth_manager_passwords.json.generated"
        while not passwords.exists():  # written by the api-server once it is up
            airflow._check_alive()
            time.sleep(1)
        yield airflow


def scheduler_run(variant: str, root: Path, spec_text: str, as_of: str) -> dict:
    """Trigger ``ct_flight_delay`` on a fresh deployment; seconds from the trigger to the run's end."""
    dags = write_dags_folder(root / "dags", {"flight_delay.yaml": spec_text})
    with deployment(variant, root, dags) as airflow:
        airflow.wait_for_dag(DAG_ID, timeout=900)
        triggered = time.time()
        run_id = airflow.trigger(DAG_ID, f"{as_of}T00:00:00Z")
        run = airflow.wait_for_run(DAG_ID, run_id, timeout=1800)
        if run["state"] != "success":
            raise SystemExit(f"{variant}: run {run['state']}:\n{airflow.failed_tasks(DAG_ID, run_id)}")
        tasks = airflow.task_instances(DAG_ID, run_id)
    return {"seconds": (_seconds(run["end_date"]) or 0.0) - triggered, "tasks": tasks, "run": run}


def measure(variant: str, root: Path, spec_text: str, as_of: str, base: dict[str, str]) -> dict:
    load_start = os.getloadavg()[0]
    if variant == "plain":
        root.mkdir(parents=True)
        spec = root / "flight_delay.yaml"
        spec.write_text(spec_text)
        env = {**base, "CTFLOW_HOME": str(root / "ctflow"), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
        seconds, _ = timed([sys.executable, "-c", PLAIN, str(spec), as_of, str(root / "run"), "0"], env)
        result: dict = {"seconds": seconds}
    else:
        result = scheduler_run(variant, root, spec_text, as_of)
    return {**result, "variant": variant, "load": (load_start, os.getloadavg()[0])}


def task_rows(result: dict) -> dict[str, tuple[float, float]]:
    """task id -> (seconds from queued to started, own duration) of one scheduler run."""
    run_start = _seconds(result["run"].get("start_date")) or 0.0
    rows = {}
    for t in result["tasks"]:
        if t.get("start_date") and t["state"] == "success":
            wait = (_seconds(t["start_date"]) or 0.0) - (_seconds(t.get("queued_when")) or run_start)
            rows[t["task_id"]] = (wait, t.get("duration") or 0.0)
    return rows


def report(results: list[dict], variants: list[str], as_of: str, spec: str) -> None:
    print(f"{DAG_ID} ({spec}) as of {as_of}, from empty state, interleaved in one run:")
    print(f"  {'round':5s} {'variant':13s} {'load 1m start/end':>17s} {'seconds':>8s} {'/ plain':>8s}")
    ratios: dict[str, list[float]] = {v: [] for v in variants if v != "plain"}
    plain = None
    for r in results:
        if r["variant"] == "plain":
            plain = r["seconds"]
        ratio = r["seconds"] / plain if plain and r["variant"] != "plain" else None
        if ratio is not None:
            ratios[r["variant"]].append(ratio)
        shown = f"{ratio:7.2f}x" if ratio is not None else ""
        print(f"  {r['round']:5d} {r['variant']:13s} {r['load'][0]:8.1f}/{r['load'][1]:<8.1f} "
              f"{r['seconds']:8.1f} {shown:>8s}")
    for variant in variants:
        runs = [r for r in results if r["variant"] == variant]
        if not runs or not ratios.get(variant, [1.0]):
            continue
        if variant == "plain":
            print(f"  plain: median {statistics.median(r['seconds'] for r in runs):.1f} s")
            continue
        rows = [task_rows(r) for r in runs]
        print(f"  {variant} ({SCHEDULERS[variant]}): median {statistics.median(r['seconds'] for r in runs):.1f} s, "
              f"median ratio to plain {statistics.median(ratios[variant]):.2f}x "
              f"(pairs: {', '.join(f'{x:.2f}' for x in ratios[variant])}; goal <= 1.3x for a LocalExecutor)")
        print(f"    {'task (median over rounds)':34s} {'queued->start':>13s} {'duration':>9s}")
        for task in sorted({t for row in rows for t in row}, key=lambda t: min(
                _seconds(x["start_date"]) or 0 for x in runs[0]["tasks"] if x["task_id"] == t)):
            waits = [row[task][0] for row in rows if task in row]
            durations = [row[task][1] for row in rows if task in row]
            print(f"    {task:34s} {statistics.median(waits):12.1f}s {statistics.median(durations):8.1f}s")
        own = statistics.median(sum(d for _, d in row.values()) for row in rows)
        print(f"    tasks' own durations summed (median): {own:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", default="2013-06-01")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="plain,local,preload",
                        help=f"comma-separated, in the order of each round: plain,{','.join(SCHEDULERS)}")
    parser.add_argument("--quick", action="store_true", help="the tests' smaller spec variant (QUICK_TRIGGER_ONLY)")
    args = parser.parse_args()
    # SIGTERM ends the run through the deployments' cleanup (a background job ignores SIGINT).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    variants = args.variants.split(",")
    unknown = set(variants) - {"plain", *SCHEDULERS}
    if unknown or "plain" not in variants:
        parser.error(f"unknown variants {sorted(unknown)}" if unknown else "plain is the baseline: list it")
    subprocess.run([sys.executable, str(PROJECT / "feature_repo" / "bootstrap.py")], check=True, capture_output=True)
    spec_text = demo_spec(*(QUICK_TRIGGER_ONLY if args.quick else TRIGGER_ONLY))
    for name in tests.conftest.TEST_ENV:  # set by importing the tests' helpers; not this benchmark's
        os.environ.pop(name, None)
    base = {**os.environ, "CTFLOW_PROJECT": str(PROJECT), "GIT_PYTHON_REFRESH": "quiet"}
    results = []
    try:
        run_rounds(args, variants, spec_text, base, results)
    except (SystemExit, KeyboardInterrupt):
        print(f"stopped after {len(results)} measurements; what was measured:")
    finally:
        shutil.rmtree(tests.conftest._SESSION_DIR, ignore_errors=True)  # made by importing the tests' helpers
    report(results, variants, args.as_of, "the tests' quick trigger-only variant" if args.quick else "trigger-only demo spec")
    return 0


def run_rounds(args: argparse.Namespace, variants: list[str], spec_text: str, base: dict[str, str],
               results: list[dict]) -> None:
    with tempfile.TemporaryDirectory(prefix="ctflow-bench-sched-") as tmp:
        for round_ in range(1, args.rounds + 1):
            for variant in variants:
                result = measure(variant, Path(tmp) / f"{round_}-{variant}", spec_text, args.as_of, base)
                results.append({**result, "round": round_})
                print(f"round {round_} {variant}: {result['seconds']:.1f} s "
                      f"(load {result['load'][0]:.1f} -> {result['load'][1]:.1f})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
