"""``ctflow run-step STEP``: run one step of a CT run outside Airflow (what a DockerOperator calls).

The step's result is printed as JSON on the last line of stdout, which is what the docker
provider pushes to XCom. Exit codes: 0 done; 2 bad arguments or spec; :data:`EXIT_REFUSED` the
step refused its input (a data-quality failure), which a retry of the same input cannot change,
so the docker runner fails the task for good; anything else is an error worth retrying.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

#: The step refused its input (data quality): final, not worth a retry.
EXIT_REFUSED = 3

STEPS = ("fetch_features", "check_quality", "train", "evaluate", "register", "promote", "rollback")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run-step", help="run one step of a CT run (the DockerOperator entry point)")
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--spec", type=Path, required=True, help="the spec file")
    parser.add_argument("--run-key", required=True, help="identifies the run, e.g. ct_x/manual__2013-03-01")
    parser.add_argument("--as-of", help="ISO date-time the run is about (fetch_features, check_quality, train)")
    parser.add_argument("--window-days", type=int, help="override the training window")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or embedded)")
    parser.add_argument("--feature-repo", type=Path, help="Feast repository (default: the project's)")
    parser.add_argument("--force", action="store_true", help="force promotion (needs --reason)")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--reason", default="")
    parser.add_argument("--actor", default="ctflow-cli")
    parser.set_defaults(handler=run)


def command_line(step: str, *, spec_path: str, run_key: str, as_of: str | None = None, **options) -> list[str]:
    """The argv of ``ctflow run-step`` for ``step``: one place builds it for every runner."""
    argv = ["ctflow", "run-step", step, "--spec", spec_path, "--run-key", run_key]
    if as_of:
        argv += ["--as-of", as_of]
    for name, value in sorted(options.items()):
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value not in (None, False, ""):
            argv += [flag, str(value)]
    return argv


def run(args: argparse.Namespace) -> int:
    from ctflow import settings
    from ctflow.core import steps
    from ctflow.core.quality import DataQualityError
    from ctflow.core.timing import resolve_as_of
    from ctflow.spec import SpecError, load_spec

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        spec = load_spec(args.spec)
    except SpecError as err:
        print(err)
        return 2
    run_dir = settings.run_dir(args.run_key)
    as_of = resolve_as_of(args.as_of, None, None) if args.as_of else None
    common = {"tracking_uri": args.tracking_uri}
    calls = {
        "fetch_features": lambda: steps.fetch_features(
            spec, as_of=as_of, run_dir=run_dir, window_days=args.window_days, feature_repo=args.feature_repo
        ),
        "check_quality": lambda: steps.check_quality(spec, as_of=as_of, run_dir=run_dir),
        "train": lambda: steps.train(
            spec, as_of=as_of, run_dir=run_dir, run_key=args.run_key, spec_text=args.spec.read_text(), **common
        ),
        "evaluate": lambda: steps.evaluate(spec, run_dir=run_dir, **common),
        "register": lambda: steps.register(
            spec, run_dir=run_dir, run_key=args.run_key, force=args.force, reason=args.reason,
            dry_run=args.dry_run, **common
        ),
        "promote": lambda: steps.promote(
            spec, run_dir=run_dir, actor=args.actor, run_key=args.run_key, force=args.force, reason=args.reason,
            **common
        ),
        "rollback": lambda: steps.rollback(spec, actor=args.actor, reason=args.reason, run_key=args.run_key, **common),
    }
    if args.step in ("fetch_features", "check_quality", "train") and as_of is None:
        print(f"{args.step} needs --as-of")
        return 2
    try:
        result = calls[args.step]()
    except DataQualityError as err:
        print(err)
        return EXIT_REFUSED
    print(json.dumps(result, default=str))
    return 0
