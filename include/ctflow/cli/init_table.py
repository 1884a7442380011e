"""``ctflow init NAME --from TABLE.parquet``, last part: the spec and the Feast skeleton it writes.

From the table's :class:`~ctflow.cli.init_inspect.Inspection` and the windows
:mod:`ctflow.cli.init_windows` fits.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path

from ctflow.cli.init_inspect import Inspection
from ctflow.cli.init_windows import fitted_windows, monitoring_window, quality_min_rows

#: The spec's missing-value rule, and the margin above a column's own missing share it allows that column.
MAX_MISSING, MISSING_MARGIN = 0.05, 0.1


def spec_text(name: str, table: str, found: Inspection, *, owner: str, service: str, start: str | None) -> str:
    """A commented spec for ``found``; ``table`` is the table's path as the spec names it."""
    from ctflow.spec.durations import format_duration

    monthly, yearly = found.step >= timedelta(days=25), found.step >= timedelta(days=300)
    window_days, holdout_days, first_days, why = fitted_windows(found)
    min_rows = quality_min_rows(found, window_days)
    monitored, monitor_cron, monitored_why = monitoring_window(found)
    monitor_window = "" if monitored == "1d" else f"\n  window: {monitored}   # rows scored per monitoring run: {monitored_why}"
    window, holdout = f"{window_days}d", f"{holdout_days}d"
    first = found.start + timedelta(days=first_days)
    features = {f"{c}_latest": k for c, k in found.features.items()}
    categorical = [_yaml(c) for c, k in features.items() if k == "text"]
    classification = found.task == "classification"
    metric = "roc_auc" if classification else "rmse"
    estimator = "HistGradientBoostingClassifier" if classification else "HistGradientBoostingRegressor"
    return f"""\
# yaml-language-server: $schema=./ctflow-spec.schema.json
# Made by `ctflow init {name} --from {table}` from the table's schema and first rows: check every
# value, then `ctflow validate --deep` this file. Every key: README "Spec reference".
pipeline: {name}
description: What does this model predict, and for whom?
owner: {owner}

schedule:
  train: "{'@yearly' if yearly else '@monthly' if monthly else '@weekly'}"   # retrain (cron or preset); null = only when triggered
  monitor: "{monitor_cron}"  # score, check drift and performance (each monitoring.window once)
  start_date: {start or first.date().isoformat()}   # the first run has a full window of rows before it
  retrain_on: [drift, performance]

data:
  entities: {_yaml(table)}   # one row per prediction: timestamp, keys, label
  timestamp: {_yaml(found.timestamp)}   # features are joined as of this time
  label: {_label(found)}
  features: {service}   # the Feast FeatureService in the skeleton written beside this spec
  columns: []   # entity-table columns known at prediction time, used as features as they are
  window: {window}   # train on [run date - window, run date); the table's step is {format_duration(found.step)}{'; ' + why if why else ''}
  holdout: {holdout}   # the newest part of the window, to evaluate on

quality:   # the run fails before training if a rule is broken
  min_rows: {min_rows}
  max_missing_fraction: {MAX_MISSING}{_missing_allowed(found.missing)}

model:
  task: {found.task}
  estimator: sklearn.ensemble.{estimator}
  params: {{max_iter: 200}}
  categorical: [{', '.join(categorical)}]

evaluation:
  metric: {metric}   # primary metric, compared with the champion on the same holdout
  # thresholds: {{{metric}: {{{'min: 0.6' if classification else 'max: 10.0'}}}}}   # absolute bounds a candidate must meet

monitoring:{monitor_window}
  drift: {{method: auto, max_drifted_share: 0.3}}
"""


def _label(found: Inspection) -> str:
    """The spec's ``data.label`` value, and a comment saying what it is."""
    if found.positive is None:
        return f"{_yaml(found.label)}   # {'0/1: classification' if found.task == 'classification' else 'a number: regression'}"
    value = found.positive
    comparison = f"== '{value}'" if "'" not in value else f'== "{value}"'
    return (f"{{column: {_yaml(found.label)}, positive_when: {_yaml(comparison)}}}   # text: {value!r}, the rarer of its "
            "two values, is the positive class (1)")


def _missing_allowed(missing: dict[str, float]) -> str:
    """A ``max_missing`` line for the columns the table itself leaves missing more often than
    :data:`MAX_MISSING`: their share and a margin, so the first run does not fail on the data as it is."""
    allowed = {f"{c}_latest": (share, min(1.0, math.ceil((share + MISSING_MARGIN) * 20) / 20))
               for c, share in missing.items() if share > MAX_MISSING}
    if not allowed:
        return ""
    rules = ", ".join(f"{_yaml(c)}: {limit:g}" for c, (_, limit) in allowed.items())
    seen = ", ".join(f"{share:.1%}" for share, _ in allowed.values())
    return f"\n  max_missing: {{{rules}}}   # the table's own rows miss {seen}: a window may miss a little more"


_PLAIN = re.compile(r"[A-Za-z_/][\w.\-/]*")


def _yaml(value: str) -> str:
    """``value`` as a YAML scalar of the spec: plain when it reads back as itself, else double-quoted
    (a column named ``Prix, $`` or ``yes`` would otherwise split a list or become a boolean)."""
    import json

    import yaml

    if _PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def feast_text(name: str, table: Path, found: Inspection, *, service: str) -> str:
    """A Feast skeleton: an Entity, a FileSource over the table, a FeatureView and a FeatureService.

    Column names are written as Python string literals (``repr``), and the entity's variable is
    ``<name>_entity``: a column may be named anything parquet allows (spaces, quotes, accents).
    """
    key = found.keys[0]
    dtypes = {"integer": "Int64", "number": "Float64", "text": "String", "bool": "Bool"}
    fields = "\n".join(f"        Field(name={c + '_latest'!r}, dtype={dtypes[k]})," for c, k in found.features.items())
    mapping = ", ".join(f"{c!r}: {c + '_latest'!r}" for c in found.features)
    ttl = max(found.step * 3, timedelta(days=1))
    return f'''"""Feast declarations for the ctflow pipeline {name} (made by `ctflow init --from`): apply with `feast apply`.

A skeleton to replace: its FeatureView reads the entity table itself, so each row's features are the
latest values of the table's own columns at the row's time. Point the source at tables of your
features (each row stamped with the moment its values became known) and list them in the schema.
Feature names must differ from the entity table's columns: the join would overwrite them.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float64, Int64, String  # noqa: F401 - the types a schema may need

{name}_entity = Entity(name={key!r}, join_keys=[{key!r}], value_type=ValueType.{"STRING" if found.key_kind == "text" else "INT64"})

{name}_source = FileSource(
    name="{name}_source",
    path={str(table)!r},
    timestamp_field={found.timestamp!r},
    field_mapping={{{mapping}}},
)

{name}_latest = FeatureView(
    name="{name}_latest",
    entities=[{name}_entity],
    ttl=timedelta(seconds={int(ttl.total_seconds())}),  # a value older than this is missing
    schema=[
{fields}
    ],
    source={name}_source,
)

{service} = FeatureService(name="{service}", features=[{name}_latest])
'''
