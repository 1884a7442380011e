"""``ctflow run-step STEP``: run one step of a CT run outside Airflow (what a DockerOperator calls).

The steps, what each needs and which files it reads come from their declarations
(:mod:`ctflow.steps.ct`); the call is :func:`ctflow.steps.run_step`, as in the operators.

The step's result is printed as JSON on the last line of stdout, which is what the docker
provider pushes to XCom. Every argument is checked before any work. Exit codes:

* 0 done;
* :data:`~ctflow.steps.command.EXIT_CONFIGURATION` (2) bad arguments (a date that is not ISO 8601, ``--window-days``
  not > 0, an unknown step, a file an earlier step should have left missing), a bad spec, or an
  error a retry cannot change (:func:`ctflow.exceptions.not_retried`: a configuration error such
  as an unknown feature service or a missing entity file or column, a user's table that does not
  hold what its feature view declares, DuckDB failing to convert the same data again): one line
  on stderr naming the field and the fix;
* :data:`~ctflow.steps.command.EXIT_REFUSED` (3) the step refused its input (a data-quality failure);

both final: a retry of the same input cannot change them, so the docker runner fails the task
for good. Anything else (MLflow down, a lock timeout) is an error worth retrying: it is raised.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import NoReturn

from ctflow.steps.command import EXIT_CONFIGURATION, EXIT_REFUSED, command_line
from ctflow.steps.ct import STEPS

__all__ = ["EXIT_CONFIGURATION", "EXIT_REFUSED", "command_line", "problem", "register", "run"]


def _steps_needing(field: str) -> list[str]:
    return [name for name, step in STEPS.items() if field in step.needs]


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Argument errors as one line on stderr and exit 2, without the usage block."""

    def error(message: str) -> NoReturn:
        parser.exit(EXIT_CONFIGURATION, f"ctflow run-step: error: {message}\n")

    parser.error = error  # type: ignore[method-assign]


def _as_of(text: str) -> str:
    from ctflow.core.timing import resolve_as_of

    try:
        resolve_as_of(text, None, None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date-time (e.g. 2013-03-01T00:00:00+00:00)") from None
    return text


def _positive_days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if days <= 0:
        raise argparse.ArgumentTypeError(f"{days} is no window: give a number of days > 0")
    return days


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run-step", help="run one step of a CT run (the DockerOperator entry point)")
    _one_line_errors(parser)
    parser.add_argument("step", choices=list(STEPS))
    parser.add_argument("--spec", type=Path, required=True, help="the spec file")
    parser.add_argument("--run-key", required=True, help="identifies the run, e.g. ct_x/manual__2013-03-01")
    parser.add_argument("--as-of", type=_as_of,
                        help=f"ISO date-time the run is about ({', '.join(_steps_needing('as_of'))})")
    parser.add_argument("--window-days", type=_positive_days, help="override the training window (days > 0)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or embedded)")
    parser.add_argument("--feature-repo", type=Path, help="Feast repository (default: the project's)")
    parser.add_argument("--force", action="store_true", help="force promotion (needs --reason)")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--reason", default="")
    parser.add_argument("--actor", default="ctflow-cli")
    parser.set_defaults(handler=run)


def problem(args: argparse.Namespace, run_dir: Path) -> str | None:
    """What is wrong with the arguments of this step, before any work; None if nothing."""
    step = STEPS[args.step]
    if "as_of" in step.needs and not args.as_of:
        return f"{args.step} needs --as-of"
    if args.window_days is not None and "window_days" not in step.needs:
        return f"--window-days is for {', '.join(_steps_needing('window_days'))}, not {args.step}"
    if (args.force or step.reason_required) and not args.reason.strip():
        return f"{'--force' if args.force else args.step} needs --reason: it is recorded in the alias history"
    if args.feature_repo is not None and not (args.feature_repo / "feature_store.yaml").is_file():
        return f"--feature-repo {args.feature_repo} is not a Feast repository (no feature_store.yaml)"
    for name, writer in step.reads:
        if not (run_dir / name).is_file():
            return f"{args.step} needs {name} in {run_dir}, which {writer} writes: run {writer} with this --run-key first"
    return None


def _fail(message: str) -> int:
    print(f"ctflow run-step: error: {message}", file=sys.stderr)
    return EXIT_CONFIGURATION


def run(args: argparse.Namespace) -> int:
    from ctflow import settings
    from ctflow.spec import SpecError, load_spec

    try:
        spec = load_spec(args.spec)
    except SpecError as err:
        print(err)
        return EXIT_CONFIGURATION
    run_dir = settings.run_dir(args.run_key)
    if message := problem(args, run_dir):
        return _fail(message)

    from ctflow.core.timing import resolve_as_of
    from ctflow.exceptions import not_retried
    from ctflow.steps import RunContext, run_step

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    step = STEPS[args.step]
    context = RunContext(
        as_of=resolve_as_of(args.as_of, None, None) if args.as_of else None,
        run_dir=run_dir,
        run_key=args.run_key,
        tracking_uri=args.tracking_uri,
        feature_repo=args.feature_repo,
        actor=args.actor,
        spec_text=args.spec.read_text() if "spec_text" in step.needs else None,
        window_days=args.window_days,
        force=args.force,
        reason=args.reason,
        dry_run=args.dry_run,
    )
    refusal = step.refusal_type()
    try:
        result = run_step(step, spec, context)
    except refusal as err:
        print(err)
        return EXIT_REFUSED
    except Exception as err:
        if (reason := not_retried(err)) is None:
            raise
        return _fail(reason)
    print(json.dumps(result.to_xcom(), default=str))
    return 0
