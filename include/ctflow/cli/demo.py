"""``ctflow demo``: the demo CT cycle on the embedded default, through real Airflow.

Bootstraps the Feast repository (idempotent), migrates Airflow's SQLite DB, runs
``airflow dags test ct_<pipeline> DATE`` for each date, and prints what happened
(``ctflow.cli.airflow_runs``, shared with ``ctflow run``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the demo CT cycle through Airflow and print a summary")
    parser.add_argument("--pipeline", default="flight_delay")
    parser.add_argument("--dates", nargs="+", default=["2013-03-01", "2013-06-01"], help="logical dates to run")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctflow import settings
    from ctflow.cli import airflow_runs as runs
    from ctflow.cli.run import EXIT_USAGE, find_spec

    project = settings.project_root()
    spec, problem = find_spec(project / "dags" / "specs", args.pipeline)
    if spec is None:
        print(f"ctflow demo: {problem}", file=sys.stderr)
        return EXIT_USAGE
    env = runs.environment(project, settings.home())
    os.environ.update(env)
    logs = settings.home() / "demo-logs"
    logs.mkdir(exist_ok=True)

    runs.say("1/3 feature repository (Feast, DuckDB offline store)")
    runs.check(subprocess.run([sys.executable, str(project / "feature_repo" / "bootstrap.py")], env=env), "bootstrap")
    runs.say("2/3 Airflow metadata DB (SQLite)")
    runs.migrate(env, logs)
    runs.say(f"3/3 running {spec.ct_dag_id} through Airflow for {', '.join(args.dates)}")
    lines = [f"ctflow demo: {spec.pipeline}", ""]
    for date in args.dates:
        outcome = runs.dags_test(spec.ct_dag_id, date, env, logs)
        if not outcome.ok:
            failed = "; ".join(f"{task}: {reason}" for task, reason in sorted(outcome.failed.items()))
            raise SystemExit(f"ctflow demo: dags test {date} failed ({failed or 'exit ' + str(outcome.returncode)}); "
                             f"log: {outcome.log_file}")
        print(f"    done in {outcome.seconds:.0f} s", flush=True)
        folder = runs.run_folder(outcome)
        lines += runs.ct_lines(spec, folder, date) if folder else [f"  {date}: no run folder found"]
    print()
    print("\n".join([*lines, "", *runs.champion_lines(spec), "", *runs.where_to_look(spec)]))
    return 0
