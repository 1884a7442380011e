"""``ctflow init NAME``: a commented spec template; ``--from TABLE.parquet``: a spec and a Feast skeleton for a table.

Plain ``init`` writes a template whose data fields are ``TODO_`` placeholders, which ``ctflow validate``
refuses until they are replaced: a spec is never mistaken for one made for the user's data.
"""

from __future__ import annotations

import argparse
import re
from datetime import date
from pathlib import Path

TEMPLATE = """\
# yaml-language-server: $schema=./ctflow-spec.schema.json
# A TEMPLATE: replace every TODO_ value with your own (`ctflow validate` refuses them until then), or
# let ctflow write it from your table: `ctflow init {name} --from TABLE.parquet`. Every key: README
# "Spec reference" or `ctflow schema --markdown`. Check it against the data: `ctflow validate --deep`.
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
  entities: data/TODO_entities.parquet   # parquet: one row per prediction (timestamp, entity keys, label)
  timestamp: TODO_timestamp     # a timestamp column: features are joined as of this time
  label:
    column: TODO_label          # 0/1 or true/false for classification (binary only), a number for regression
    # positive_when: "> 15"     # or derive a binary label from a number
  features: TODO_feature_service   # a Feast FeatureService of the project's feature_repo/
  columns: []                   # entity-table columns used as features too (known at prediction time)
  window: 90d                   # train on [run date - 90d, run date)
  holdout: 14d                  # the newest 14 days are the evaluation set

quality:                        # the run fails before training if any rule is broken
  min_rows: 1000
  max_missing_fraction: 0.05

model:
  task: classification          # binary; or regression
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {{max_iter: 200, learning_rate: 0.1}}
  categorical: []               # text columns to encode as categories

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
    parser = subparsers.add_parser("init", help="scaffold a new spec with comments (--from: for your table)")
    parser.add_argument("name", help="pipeline name, lower_snake_case")
    parser.add_argument("--from", dest="table", type=Path, metavar="TABLE.parquet",
                        help="inspect this entity table (timestamp, keys, label, types) and write a spec for it, "
                             "plus a Feast feature-view skeleton in --repo")
    parser.add_argument("--label", help="with --from: the column to predict (default: a guess)")
    parser.add_argument("--key", help="with --from: the entity key column (default: the first text or integer "
                                       "column that repeats and tells apart the rows of one instant)")
    parser.add_argument("--task", choices=("classification", "regression"),
                        help="with --from: the task (default: from the label: 0/1 or true/false is a classification)")
    parser.add_argument("--repo", type=Path, default=Path("feature_repo"),
                        help="with --from: the Feast repository to write NAME_features.py in")
    parser.add_argument("--dir", type=Path, default=Path("dags/specs"), help="where to write NAME.yaml")
    parser.add_argument("--owner", default="data-science")
    parser.add_argument("--start", help="first logical date (default: today; with --from, a window after the "
                                             "table's first row)")
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
    if args.table is not None:
        return _from_table(args, target)
    args.dir.mkdir(parents=True, exist_ok=True)
    _write_loaders(args.dir)
    start = args.start or date.today().isoformat()
    target.write_text(TEMPLATE.format(name=args.name, owner=args.owner, start=start), encoding="utf-8")
    print(f"wrote {target}: a template; replace its TODO_ values (or use --from TABLE.parquet), then: "
          f"ctflow validate --deep {target}")
    return 0


def _from_table(args: argparse.Namespace, target: Path) -> int:
    from ctflow import settings
    from ctflow.cli.init_inspect import TableError, inspect_table
    from ctflow.cli.init_table import feast_text, spec_text

    table = args.table.resolve()
    if not table.is_file():
        print(f"{args.table} is not a file")
        return 2
    try:
        found = inspect_table(table, args.label, args.task, args.key)
    except TableError as err:
        print(err)
        return 2
    skeleton = args.repo / f"{args.name}_features.py"
    if skeleton.exists() and not args.force:
        print(f"{skeleton} exists; use --force to overwrite")
        return 1
    project = settings.project_root()
    shown = str(table.relative_to(project)) if table.is_relative_to(project) else str(table)
    service = f"{args.name}_v1"
    args.dir.mkdir(parents=True, exist_ok=True)
    target.write_text(spec_text(args.name, shown, found, owner=args.owner, service=service, start=args.start),
                      encoding="utf-8")
    args.repo.mkdir(parents=True, exist_ok=True)
    skeleton.write_text(feast_text(args.name, table, found, service=service), encoding="utf-8")
    store = args.repo / "feature_store.yaml"
    if not store.exists():
        store.write_text(FEATURE_STORE.format(project=args.name), encoding="utf-8")
    loaders = _write_loaders(args.dir)
    guessed = "" if args.label else " (a guess: choose another with --label)"
    print(f"{args.table}: {found.rows} rows; timestamp {found.timestamp}; entity key {found.keys[0]} "
          f"(candidates: {', '.join(found.keys)}{'' if args.key else '; choose another with --key'}); "
          f"label {found.label}{guessed}: {found.task}")
    print(f"wrote {target} and {skeleton}" + (f"; and {', '.join(map(str, loaders))}: the DAG files that load "
                                               f"{args.dir}" if loaders else ""))
    if not table.is_relative_to(project):
        print(f"note: {table} is outside the project ({project}): move it inside, or add its folder to "
              "$CTFLOW_DATA_ROOTS, or `ctflow validate` refuses data.entities")
    print(f"next: (cd {args.repo} && feast apply), then: ctflow validate --deep {target}")
    return 0


def _write_loaders(specs: Path) -> list[Path]:
    """The DAG files that turn ``specs`` into DAGs (``ctflow_pipelines.py``, ``ctflow_spec_errors.py``),
    written beside it when it is the project's ``dags/specs`` (what ``ctflow run`` and the embedded
    Airflow read) and ``dags/`` has none: a project made by ``init`` alone would otherwise have
    specs that no DAG file reads (Airflow finds no DAG)."""
    from ctflow import settings
    from ctflow.factory.shards import REPORTER, has_loaders, write_loaders

    dags = settings.project_root() / "dags"
    if specs.resolve() != dags / "specs" or has_loaders(dags):
        return []
    written = write_loaders(dags, 1)
    return [*written, dags / REPORTER]


#: A Feast repository of one's own, embedded stores under its data/ (as `feast init` lays it out).
FEATURE_STORE = """\
project: {project}
provider: local
registry:
    path: data/registry.db
    registry_store_type: ctflow.core.feast_registry.AtomicFileRegistryStore
online_store:
    type: sqlite
    path: data/online_store.db
offline_store:
    type: ctflow.core.feast_asof.store.AsofDuckDBOfflineStore
entity_key_serialization_version: 3
"""
