"""``ctflow replay PIPELINE``: replay retraining policies over history with the DAGs' core code.

    ctflow replay flight_delay --start 2013-02-01 --end 2013-12-31 --every 7d
                  [--spec PATH] [--json] [--plot PATH] [--save PATH] [--what-if YAML]... [--threads N]
                  [--mlflow] [--tracking-uri URI] [--feature-repo PATH]

Compares ``never`` (trained once), ``ctflow`` (the spec's schedule, monitoring triggers and
gate) and ``every`` (retrained every step, always deployed): each step's model is scored on
that step's rows. Prints a markdown table (or with ``--json`` one object per policy, its steps
under ``per_step``) on stdout, progress on stderr. The worst step is the lowest metric, or the
highest for a metric where lower is better (rmse). Exit 0 on success, 2 on bad input.

``--what-if`` adds a ctflow policy with spec overrides, a YAML mapping of dotted keys (an
optional ``name`` key names it), for example
``--what-if '{name: monthly, schedule.train: "@monthly", schedule.retrain_on: [performance]}'``.
Only sections that do not change the trained models may be overridden (schedule, monitoring,
evaluation, registry, quality), so a what-if reuses the models the other policies trained.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.contract import mlflow_tags

if TYPE_CHECKING:
    from ctflow.core.replay import ReplayResult
    from ctflow.spec.durations import CalendarDuration


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay never / ctflow / every-step retraining over history and compare them",
        description="Replay the spec's retraining policy step by step over historical data, against never "
        "retraining and retraining every step, with the same core code as the DAGs (Feast features "
        "point in time, the spec's pipeline, gate and drift). Prints a table, or JSON with --json.",
    )
    parser.add_argument("pipeline", help="pipeline name: dags/specs/PIPELINE.yaml unless --spec is given")
    parser.add_argument("--start", required=True, type=_date, help="first step, YYYY-MM-DD (UTC)")
    parser.add_argument("--end", required=True, type=_date, help="end of the replay, YYYY-MM-DD, exclusive (UTC)")
    parser.add_argument("--every", default="7d", type=_duration, help="step length, e.g. 7d, or 1mo for steps on month starts (default 7d)")
    parser.add_argument("--spec", type=Path, help="spec file (default: dags/specs/PIPELINE.yaml of the project)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per policy instead of the table")
    parser.add_argument("--plot", type=Path, metavar="PATH", help="write the timeline plot (PNG) here")
    parser.add_argument("--save", type=Path, metavar="PATH",
                        help="write the whole result (every policy's steps, timings, notes) as JSON here")
    parser.add_argument("--what-if", action="append", default=[], metavar="YAML",
                        help="an extra ctflow policy with spec overrides, e.g. '{name: monthly, schedule.train: "
                        "\"@monthly\"}' (repeatable)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenMP/BLAS threads for fitting and scoring (default 1: on a busy machine two "
                        "threads spin-wait and fit several times slower; 0 = the libraries' default)")
    parser.add_argument("--feature-repo", type=Path, help="Feast repository (default: the project's)")
    parser.add_argument("--mlflow", action="store_true",
                        help="log one summary run (metrics per policy and step, table, plot) to MLflow")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI for --mlflow (default: $MLFLOW_TRACKING_URI or embedded)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(handler=run)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _duration(text: str) -> CalendarDuration:
    from ctflow.spec.durations import parse_calendar_duration

    try:
        return parse_calendar_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from ctflow import settings
    from ctflow.exceptions import CtflowError
    from ctflow.spec import SpecError

    if not args.quiet:
        _log_progress()
    path = args.spec or settings.project_root() / "dags" / "specs" / f"{args.pipeline}.yaml"
    if not path.is_file():
        print(f"ctflow replay: error: no spec {path} (give --spec PATH)", file=sys.stderr)
        return 2
    try:
        result = _replay(args, path)
    except SpecError as err:
        print(err, file=sys.stderr)
        return 2
    except CtflowError as err:
        print(f"ctflow replay: error: {err}", file=sys.stderr)
        return 2
    _write_outputs(result, args)
    if args.mlflow:
        _log_to_mlflow(result, args, spec_path=path)
    return 0


def _log_progress() -> None:
    """Progress on stderr, without the libraries' chatter."""
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("feast", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _replay(args: argparse.Namespace, path: Path) -> ReplayResult:
    """Load the spec at ``path``, check it is ``args.pipeline``'s, and replay it over the history."""
    from ctflow.exceptions import CtflowError
    from ctflow.spec import load_spec

    spec = load_spec(path)
    if spec.pipeline != args.pipeline:
        raise CtflowError(f"{path} is pipeline {spec.pipeline!r}, not {args.pipeline!r}")
    what_if = _what_ifs(spec, args.what_if)
    from ctflow.core import replay as core

    steps = core.make_steps(core.as_utc(args.start), core.as_utc(args.end), args.every)
    data = core.load_frame(spec, steps[0].start, steps[-1].end, feature_repo=args.feature_repo)
    return core.replay(spec, data, start=args.start, end=args.end, every=args.every, what_if=what_if,
                       threads=args.threads or None)


def _write_outputs(result: ReplayResult, args: argparse.Namespace) -> None:
    """The plot and the saved result when asked for, then the table (or JSON) on stdout."""
    import json

    if args.plot:
        from ctflow.core import replay as core

        core.plot_timeline(result, args.plot)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if args.json:
        print(json.dumps(result.records(), indent=2))
    else:
        print(_report(result, args))


def _what_ifs(spec: Any, texts: list[str]) -> dict[str, tuple[Any, dict[str, Any]]]:
    import yaml

    from ctflow.core.replay import CTFLOW, POLICIES, WHAT_IF_SECTIONS, ReplayError, override_spec

    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    for text in texts:
        try:
            overrides = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ReplayError(f"--what-if {text!r} is not YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(overrides, dict) or not overrides:
            raise ReplayError(f"--what-if expects a mapping of dotted spec keys, e.g. "
                              f"'{{schedule.train: \"@monthly\"}}', got {text!r}")
        overrides = dict(overrides)
        name = str(overrides.pop("name", "") or "")
        other = [str(k) for k in overrides if str(k).split(".")[0] not in WHAT_IF_SECTIONS]
        if other:
            raise ReplayError(
                f"--what-if changes {', '.join(other)}: a what-if may only change {', '.join(WHAT_IF_SECTIONS)} "
                "(other changes make other models; replay another spec with --spec)"
            )
        label = ", ".join(f"{k}={v}" for k, v in overrides.items())
        name = f"{CTFLOW}[{name or label}]"
        if name in out or name in POLICIES:
            raise ReplayError(f"two policies named {name!r}")
        out[name] = (override_spec(spec, overrides, name=f"--what-if {name}"), overrides)
    return out


def _report(result: ReplayResult, args: argparse.Namespace) -> str:
    lines = [
        (f"replay of {result.pipeline}: {result.start:%Y-%m-%d} to {result.end:%Y-%m-%d} (exclusive), "
         f"{len(result.policies[0].steps)} steps of {args.every}"),
        "",
        result.table(),
        "",
        (
            f"{result.fits} models fitted (shared between policies); feature frame {result.seconds['frame']} s; "
            f"replay {result.seconds['replay']} s wall ({result.seconds['replay_cpu']} s CPU), of which fitting "
            f"{result.seconds['fit']} s wall ({result.seconds['fit_cpu']} s CPU)"
        ),
    ]
    lines += [f"note: {n}" for n in result.notes]
    if args.plot:
        lines.append(f"timeline plot: {args.plot}")
    return "\n".join(lines)


def _log_to_mlflow(result: ReplayResult, args: argparse.Namespace, *, spec_path: Path) -> None:
    """One run in experiment ``ctflow/<pipeline>/replay``: params, per-policy metrics, steps, table."""
    import json
    import tempfile

    import mlflow

    from ctflow.core import tracking

    client = tracking.client(args.tracking_uri)
    experiment_id = tracking.ensure_experiment(client, f"{result.pipeline}/replay")
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"replay {result.start:%Y-%m-%d}..{result.end:%Y-%m-%d}",
                          tags={mlflow_tags.STAGE: "replay", mlflow_tags.PIPELINE: result.pipeline,
                                mlflow_tags.CODE_VERSION: tracking.code_version()}) as run:
        mlflow.log_params({"start": result.start.isoformat(), "end": result.end.isoformat(),
                           "every": str(args.every), "spec": str(spec_path), "fits": result.fits})
        for policy in result.policies:
            key = policy.policy.replace("[", "(").replace("]", ")").replace("=", "-").replace(",", "")
            key = "".join(c if c.isalnum() or c in "_-. /()" else "_" for c in key)[:200]
            # `is None`, not `or`: a mean or worst of 0.0 (an error metric can reach it) is a value.
            mlflow.log_metrics({f"{key}.mean_{result.metric}": _or_nan(policy.mean_metric),
                                f"{key}.worst_{result.metric}": _or_nan(policy.worst_metric),
                                f"{key}.trainings": policy.trainings, f"{key}.promotions": policy.promotions})
            for s in policy.steps:
                if s.metric is not None:
                    mlflow.log_metric(f"{key}.{result.metric}", s.metric, step=s.step)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "replay.json").write_text(json.dumps(result.to_dict(), indent=2))
            (Path(folder) / "table.md").write_text(result.table() + "\n")
            mlflow.log_artifacts(folder)
        if args.plot and Path(args.plot).is_file():
            mlflow.log_artifact(str(args.plot))
    print(f"logged to MLflow run {run.info.run_id} (experiment {tracking.experiment_name(result.pipeline + '/replay')})",
          file=sys.stderr)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value
