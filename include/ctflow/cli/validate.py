"""``ctflow validate PATH...``: check spec files or folders; list every problem; exit 1 if any."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctflow.factory.discover import LoadedSpec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("validate", help="check spec files (or folders of specs)")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="spec file or folder of specs")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    parser.add_argument(
        "--deep", action="store_true",
        help="also check each spec against its data: the entity table (timestamp, keys, label), the Feast "
             "feature service, the column types of its views' tables and of the join keys, and every column "
             "the spec names (reads parquet schemas, a label sample and the Feast registry)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctflow.factory.discover import load_folder, load_one

    loaded: list[LoadedSpec] = []
    for path in args.paths:
        if path.is_dir():
            loaded += load_folder(path)
        else:
            loaded.append(load_one(path, display_name=str(path)))
    if not loaded:
        print("no spec files found in: " + ", ".join(map(str, args.paths)))
        return 1
    if args.deep:
        _check_data(loaded)
    errors = [item.error for item in loaded if item.error is not None]
    for item in loaded:
        if item.error is not None:
            for problem in item.error.problems:
                print(problem)
        elif not args.quiet:
            assert item.spec is not None  # loaded without a shard: each file has a spec or an error
            print(f"{item.display_name}: ok ({item.spec.ct_dag_id}, {item.spec.monitor_dag_id})")
    if not args.quiet or errors:
        problems = sum(len(error.problems) for error in errors)
        print(f"{len(loaded)} spec(s) checked, {len(errors)} invalid, {problems} problem(s)")
    return 1 if errors else 0


def _check_data(loaded: list[LoadedSpec]) -> None:
    """Add each valid spec's data-contract problems to it (an invalid spec is fixed first)."""
    from ctflow.spec import SpecError
    from ctflow.spec.data_contract import check_data

    for item in loaded:
        if item.spec is not None and item.error is None:
            problems = check_data(item.spec, item.text or "", item.display_name)
            if problems:
                item.error = SpecError(problems)
