"""``ctflow predict MODEL --entity key=value ...``: score one entity with the champion and online features."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="score one entity with a registered model and Feast's online features",
        description="Loads models:/MODEL@ALIAS with mlflow.pyfunc, reads the feature service it was trained on "
                    "from Feast's online store for the entity, and prints the score, the features used and "
                    "their age. Request-time columns (e.g. dep_hour) are given like the entity keys.")
    parser.add_argument("model", help="registered model name (a pipeline's model)")
    parser.add_argument("--entity", action="append", default=[], metavar="KEY=VALUE",
                        help="a join key or request-time column; repeat it")
    parser.add_argument("--row", metavar="JSON", help="request-time columns as one JSON object")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--feature-repo", help="default: the repository of the pipeline whose model this is "
                        "(its spec's data.feature_repo), else $CTFLOW_FEATURE_REPO or the project's feature_repo/")
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or the embedded SQLite store")
    parser.add_argument("--as-of", help="ISO 8601 instant the features' age is measured at (default: now)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ctflow.core.online_predict import OnlinePredictor, parse_entity
    from ctflow.core.timing import resolve_as_of
    from ctflow.exceptions import ConfigurationError

    try:
        request = parse_entity(args.entity, args.row)
        now = resolve_as_of(args.as_of, None, None) if args.as_of else None
        predictor = OnlinePredictor.load(args.model, alias=args.alias, tracking_uri=args.tracking_uri,
                                         feature_repo=Path(args.feature_repo or _pipeline_repo(args.model)))
        result = predictor.predict(request, now=now)
    except (ConfigurationError, ValueError) as err:  # ValueError: --row or --as-of that does not parse
        print(f"ctflow predict: {err}")
        return 2
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    positive = f"; label 1 is {result['positive_class']}" if result.get("positive_class") else ""
    score = (f"probability {result['probability']:.4f} (label {result['label']} at threshold {result['threshold']}"
             f"{positive})" if "probability" in result else f"prediction {result['prediction']:.4f}")
    print(f"{result['model']} v{result['version']} ({result['feature_service']}): {score}")
    for name, facts in result["features"].items():
        when = "" if facts["source"] == "request" else _when(facts["age_seconds"])
        print(f"  {name:<28} {facts['value']!s:<24} {facts['source']}{when}")
    return 0


def _pipeline_repo(model: str) -> Path:
    """The Feast repository of the pipeline that registers ``model`` (a spec in dags/specs naming it),
    else the deployment's: a pipeline with a repository of its own is read from that one."""
    from ctflow import settings
    from ctflow.core.features import pipeline_repo
    from ctflow.factory.discover import load_folder

    for item in load_folder(settings.project_root() / "dags" / "specs"):
        if item.spec is not None and (item.spec.registry.model or item.spec.pipeline) == model:
            return pipeline_repo(item.spec)
    return settings.feature_repo()


def _when(age: float | None) -> str:
    """A value's age at --as-of. The online store holds each key's latest value only, so an --as-of
    before it finds a value from its future: said so, not printed as a negative age."""
    if age is None:
        return " (no value)"
    if age < 0:
        return f" (stamped {_age(-age)} after --as-of: the online store keeps the latest value only)"
    return f" (age {_age(age)})"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
