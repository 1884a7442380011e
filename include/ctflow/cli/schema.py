"""``ctflow schema``: the spec's JSON Schema (for editors) or its Markdown reference."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("schema", help="print the spec's JSON Schema (or --markdown reference)")
    parser.add_argument("--markdown", action="store_true", help="the field reference as Markdown")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctflow.spec.schema import json_schema, markdown_reference

    print(markdown_reference() if args.markdown else json.dumps(json_schema(), indent=2))
    return 0
