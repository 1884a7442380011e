"""``ctflow rollback MODEL`` and ``ctflow history MODEL``: the registry from the terminal."""

from __future__ import annotations

import argparse
import getpass


def register(subparsers: argparse._SubParsersAction) -> None:
    rollback = subparsers.add_parser("rollback", help="move the champion alias back to its previous holder")
    rollback.add_argument("model", help="registered model name")
    rollback.add_argument("--reason", required=True, help="why (kept in the alias history)")
    rollback.add_argument("--alias", default="champion")
    rollback.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or the embedded SQLite store")
    rollback.set_defaults(handler=run_rollback)

    history = subparsers.add_parser("history", help="who held each alias of a model, from when and why")
    history.add_argument("model", help="registered model name")
    history.add_argument("--alias", help="only this alias")
    history.add_argument("--tracking-uri")
    history.set_defaults(handler=run_history)


def run_rollback(args: argparse.Namespace) -> int:
    from ctflow.core.registry import ModelRegistry, RegistryError

    try:
        change = ModelRegistry(args.model, tracking_uri=args.tracking_uri).rollback(
            alias=args.alias, reason=args.reason, actor=f"cli:{getpass.getuser()}"
        )
    except RegistryError as err:
        print(f"cannot roll back {args.model}: {err}")
        return 1
    print(f"{args.model}@{change.alias}: v{change.previous} -> v{change.version} ({change.reason})")
    return 0


def run_history(args: argparse.Namespace) -> int:
    from ctflow.core.registry import ModelRegistry

    events = ModelRegistry(args.model, tracking_uri=args.tracking_uri).history(alias=args.alias)
    if not events:
        print(f"no alias history for {args.model}")
        return 0
    for e in events:
        moved = "" if e.moved else "  (not moved)"
        requested = f"  [requested: {e.request_reason}]" if e.request_reason else ""
        move = f"v{e.previous or '-'} -> v{e.version or '-'}"
        print(f"{e.at}  {e.alias:<10} {move}  by {e.actor}: {e.reason}{requested}{moved}")
    return 0
