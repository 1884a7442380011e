"""The ``ctflow`` command line. Each subcommand lives in its own module with a ``register``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ctflow import __version__

#: Subcommand modules, in the order ``ctflow --help`` lists them.
COMMANDS = ("validate", "render", "schema", "init", "registry", "run_step", "run", "predict", "drift", "replay", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctflow",
        description="Continuous-training pipelines from YAML specs, on Airflow, Feast and MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"ctflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"ctflow.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"ctflow.cli.{name}":
                raise
            continue  # a subcommand not shipped in this build
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
