"""``ctflow run ct|monitor NAME --as-of DATE``: run one pipeline's DAG through Airflow, as the demo does.

The pipeline is found by name among the specs of the project's ``dags/specs/``. The run is an
``airflow dags test`` on the embedded default (``$CTFLOW_HOME``), so what it records is what the
Airflow UI and the ctflow view show after ``make up``. Exit codes: 0 the run succeeded, 1 it
failed (naming the failed task and the rule or error it stopped on), 2 a usage or spec error.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from ctflow.spec import PipelineSpec

EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run a pipeline's ct_ or monitor_ DAG through Airflow for one date")
    parser.add_argument("dag", choices=("ct", "monitor"), help="ct: train, gate, register, promote; monitor: score, "
                                                             "drift, performance")
    parser.add_argument("name", help="the spec's pipeline name (a spec in dags/specs/)")
    parser.add_argument("--as-of", required=True, help="the logical date the run is about (YYYY-MM-DD or ISO 8601)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctflow import settings
    from ctflow.cli import airflow_runs as runs
    from ctflow.factory.shards import has_loaders

    try:
        datetime.fromisoformat(args.as_of)
    except ValueError:
        return _usage(f"--as-of {args.as_of!r} is not a date (YYYY-MM-DD or ISO 8601)")
    project = settings.project_root()
    spec, problem = find_spec(project / "dags" / "specs", args.name)
    if spec is None:
        return _usage(problem)
    if not has_loaders(project / "dags"):
        return _usage(f"no DAG file in {project / 'dags'} loads its specs/, so Airflow has no {spec.ct_dag_id}: "
                      f"write ctflow's loader files there with `python -m ctflow.factory.shards {project / 'dags'} 1`")
    env = runs.environment(project, settings.home())
    os.environ.update(env)  # before Airflow is imported (runs._latest_run)
    logs = settings.home() / "run-logs"
    logs.mkdir(exist_ok=True)
    runs.migrate(env, logs)
    dag_id = spec.ct_dag_id if args.dag == "ct" else spec.monitor_dag_id
    outcome = runs.dags_test(dag_id, args.as_of, env, logs)
    print(f"    done in {outcome.seconds:.0f} s", flush=True)
    print()
    if not outcome.ok:
        print(f"ctflow run {args.dag} {spec.pipeline}: {dag_id} as of {args.as_of} FAILED (log: {outcome.log_file})")
        for task, reason in sorted(outcome.failed.items()):
            print(f"  failed task {task}: {reason}")
        if outcome.blocked:
            print(f"  not run (an upstream task failed): {', '.join(outcome.blocked)}")
        if not outcome.failed:
            print(f"  airflow dags test exited {outcome.returncode}; see the log")
        return EXIT_FAILED
    folder = runs.run_folder(outcome)
    lines = [f"ctflow run {args.dag}: {spec.pipeline} ({spec.model.task})", ""]
    if args.dag == "ct":
        lines += [*runs.ct_lines(spec, folder, args.as_of), "", *runs.champion_lines(spec)] if folder else ["  no run folder"]
    else:
        lines += monitor_lines(folder)
    print("\n".join([*lines, "", *runs.where_to_look(spec)]))
    return 0


def monitor_lines(folder: Path | None) -> list[str]:
    """The monitoring run's own summary (what its report task logged), or why nothing was scored."""
    from ctflow.cli.airflow_runs import load
    from ctflow.core.monitoring.reporting import summary_lines

    if folder is None:
        return ["  no run folder"]
    report = load(folder / "report.json")
    if report:
        return ["  " + line for line in summary_lines(report)]
    skipped = load(folder / "no_champion.json")
    return [f"  nothing scored: {skipped.get('reason', 'see the log')}"]


def find_spec(folder: Path, name: str) -> tuple[PipelineSpec, None] | tuple[None, str]:
    """``(spec, None)`` for the valid spec of pipeline ``name`` in ``folder``, else ``(None, problem)``."""
    from ctflow.factory.discover import load_folder
    from ctflow.spec.errors import did_you_mean

    loaded = load_folder(folder)
    for item in loaded:
        if item.spec is not None and item.spec.pipeline == name:
            return item.spec, None
    for item in loaded:
        if item.error is not None and item.path.stem == name:
            return None, "\n".join(map(str, item.error.problems))
    names = sorted(item.spec.pipeline for item in loaded if item.spec is not None)
    close = did_you_mean(name, names)
    hint = f" (did you mean {close!r}?)" if close else ""
    return None, (f"no valid spec of pipeline {name!r} in {folder}{hint}; pipelines: {', '.join(names) or 'none'} "
                  "(`ctflow validate dags/specs` lists every problem)")


def _usage(message: str | None) -> int:
    print(f"ctflow run: {message}", file=sys.stderr)
    return EXIT_USAGE
