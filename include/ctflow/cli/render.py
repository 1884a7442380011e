"""``ctflow render SPEC``: the DAGs a spec becomes, their tasks and dependencies, as text."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import DAG, Asset, AssetAlias, BaseOperator
    from airflow.sdk.bases.timetable import BaseTimetable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("render", help="show the DAGs, tasks and dependencies a spec becomes")
    parser.add_argument("spec", type=Path, metavar="SPEC")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctflow.factory.build import build_dags
    from ctflow.factory.discover import load_one

    item = load_one(args.spec, display_name=str(args.spec))
    if item.error:
        print(item.error)
        return 1
    assert item.spec is not None  # load_one builds the spec of a file without an error
    for dag in build_dags(item.spec, source_text=item.text):
        print(describe_dag(dag))
    return 0


def describe_dag(dag: DAG) -> str:
    """A DAG as text: schedule, defaults, params, then each task with what it feeds."""
    args = dag.default_args
    lines = [
        f"DAG {dag.dag_id}",
        f"  schedule: {schedule_text(dag.timetable)}",
        f"  tags: {', '.join(sorted(dag.tags))}",
        (
            f"  owner: {args.get('owner')}  retries: {args.get('retries')}  retry_delay: {args.get('retry_delay')}"
            f"  execution_timeout: {args.get('execution_timeout')}"
        ),
        f"  params: {', '.join(dag.params.keys())}",
        "  tasks:",
    ]
    for task in dag.topological_sort():
        downstream = sorted(task.downstream_task_ids)
        arrow = f" -> {', '.join(downstream)}" if downstream else ""
        outlets = f"  [emits {', '.join(_emitted(task, a) for a in task.outlets)}]" if task.outlets else ""
        lines.append(f"    {task.task_id} ({type(task).__name__}){arrow}{outlets}")
    return "\n".join(lines) + "\n"


def _emitted(task: BaseOperator, outlet: Asset | AssetAlias) -> str:
    """An asset's URI; for an asset alias (promote, performance) the asset it announces, and when."""
    if hasattr(outlet, "uri"):
        return outlet.uri
    return f"{getattr(task, 'promoted_uri', None) or outlet.name} (only when it moves the champion)"


def schedule_text(timetable: BaseTimetable | None) -> str:
    """``cron 0 2 * * 1 (UTC) or asset ctflow://x/breach`` for the SDK's timetable objects."""
    if timetable is None:
        return "none (trigger only)"
    parts = []
    cron = getattr(timetable, "timetable", timetable)
    if getattr(cron, "expression", None):
        parts.append(f"cron {cron.expression} ({cron.timezone})")
    condition = getattr(timetable, "asset_condition", None)
    if condition is not None:
        uris = [a.uri for a in getattr(condition, "objects", [condition]) if hasattr(a, "uri")]
        parts.append(("asset " if len(uris) == 1 else "any of assets ") + ", ".join(uris))
    return " or ".join(parts) or type(timetable).__name__
