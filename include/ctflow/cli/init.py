"""``ctflow init NAME``: scaffold a commented spec that validates as written."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

TEMPLATE = """\
# yaml-language-server: $schema=./ctflow-spec.schema.json
# A ctflow continuous-training spec. Every key: README "Spec reference" or `ctflow schema --markdown`.
pipeline: {name}
description: What does this model predict, and for whom?
owner: {owner}
tags: [{name}]

schedule:
  train: "@weekly"              # retrain (cron or preset); null = only when triggered
  monitor: "@daily"             # score, check drift and performance
  start_date: {start}
  retrain_on: [drift, performance]   # monitoring breaches also retrain

data:
  entities: feature_repo/data/flights.parquet   # parquet: one row per prediction, timestamp + label
  timestamp: scheduled_departure                # features are joined as of this time
  label:
    column: arr_delay
    positive_when: "> 15"       # derive a binary label; drop this line for regression
  features: flight_delay_v1     # a Feast FeatureService
  columns: [carrier, origin]    # entity-table columns used as features too
  window: 90d                   # train on [run date - 90d, run date)
  holdout: 14d                  # the newest 14 days are the evaluation set

quality:                        # the run fails before training if any rule is broken
  min_rows: 1000
  max_missing_fraction: 0.05

model:
  task: classification          # or regression
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {{max_iter: 200, learning_rate: 0.1}}
  categorical: [carrier, origin]

evaluation:
  metric: roc_auc               # primary metric, compared with the champion
  thresholds:
    roc_auc: {{min: 0.6}}       # absolute floors: all must hold

registry:
  strategy: direct              # direct | shadow | canary
  approval: auto                # auto | manual (approve in the Airflow UI)

monitoring:
  drift: {{method: auto, max_drifted_share: 0.3}}
  performance: {{metric: roc_auc, min: 0.55}}
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("init", help="scaffold a new spec with comments")
    parser.add_argument("name", help="pipeline name, lower_snake_case")
    parser.add_argument("--dir", type=Path, default=Path("dags/specs"), help="where to write NAME.yaml")
    parser.add_argument("--owner", default="data-science")
    parser.add_argument("--start", default="2013-02-01", help="first logical date")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", args.name):
        print(f"invalid name {args.name!r}: use lower_snake_case starting with a letter")
        return 2
    target = args.dir / f"{args.name}.yaml"
    if target.exists() and not args.force:
        print(f"{target} exists; use --force to overwrite")
        return 1
    args.dir.mkdir(parents=True, exist_ok=True)
    target.write_text(TEMPLATE.format(name=args.name, owner=args.owner, start=args.start), encoding="utf-8")
    print(f"wrote {target}; check it with: ctflow validate {target}")
    return 0
