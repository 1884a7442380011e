"""``ctflow init NAME --from TABLE.parquet``: a spec and a Feast skeleton made from the user's own table.

The table is inspected from its parquet schema and its first rows (at most :data:`SAMPLE_ROWS`):

* the timestamp is its first timestamp column;
* candidate entity keys are its text or integer columns with few distinct values (each repeats
  over time): the first one that tells apart the rows of one instant becomes the Feast entity
  (else any text or integer column that does, such as an id; the table is refused when none does);
* the label is ``--label`` or a guess (a column named like a target, else the last numeric one);
  the task follows from it: classification for a 0/1 or true/false label, regression for
  another number (a multiclass label is refused: ctflow's classification is binary);
* the remaining columns are features. The skeleton declares them in a FeatureView over the same
  table, under names of their own (``<column>_latest``): an entity table may not already hold a
  column named like a feature (the join would overwrite it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

SAMPLE_ROWS = 100_000
#: A key repeats: at most this share of the sampled rows are distinct values (and at most MAX_KEYS).
KEY_SHARE, MAX_KEYS = 0.5, 10_000
#: An integer label with at most this many values may be classes: the user says which (--task).
MAX_CLASSES = 20
#: The spec's missing-value rule, and the margin above a column's own missing share it allows that column.
MAX_MISSING, MISSING_MARGIN = 0.05, 0.1
#: The spec's quality.min_rows, and the rows init's training window holds at least (at the table's rate).
QUALITY_MIN_ROWS, TRAIN_ROWS = 100, 150
_TARGET_NAMES = re.compile(r"^(label|target|y|outcome|class|churn(ed)?|is_\w+|has_\w+|\w+_label|\w+_target)$")


class TableError(ValueError):
    """The table cannot become a spec as it is; the message says what to change."""


@dataclass(frozen=True)
class Inspection:
    timestamp: str
    keys: list[str]
    key_kind: str  # "text" or "number" (integers), of keys[0]
    label: str
    task: str
    features: dict[str, str]  # column -> "integer" | "number" | "text" | "bool"
    step: timedelta  # the typical gap between timestamps (the table's cadence)
    start: Any  # the first timestamp (of the whole table, not only the sampled rows)
    rows: int
    end: Any  # the last timestamp (of the whole table)
    missing: dict[str, float]  # feature column -> its share of missing values in the sampled rows (> 0 only)
    positive: str | None = None  # a text label's positive class (the rarer of its two values)


def inspect_table(path: Path, label: str | None, task: str | None = None, key: str | None = None) -> Inspection:
    """What the parquet table ``path`` holds, as ctflow needs it; :class:`TableError` if it cannot do."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ctflow.spec.data_sources import arrow_kind

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise TableError(f"cannot read {path} as parquet: {err}") from None
    kinds = {f.name: arrow_kind(f.type) for f in parquet.schema_arrow}
    sample = next(parquet.iter_batches(batch_size=SAMPLE_ROWS), None)
    if sample is None or sample.num_rows == 0:
        raise TableError(f"{path} has no rows")
    frame = sample.to_pandas()
    times = [c for c, k in kinds.items() if k == "time"]
    if not times:
        raise TableError(f"{path} has no timestamp column (columns: {', '.join(kinds)}): "
                         + _times_as_text(kinds, frame))
    timestamp = times[0]
    label = label or _guess_label(kinds, frame, timestamp)
    if label not in kinds:
        raise TableError(f"{path} has no column {label!r} (columns: {', '.join(kinds)})")
    positive = _positive_text(label, frame[label]) if kinds[label] == "text" else None
    task = task or ("classification" if positive is not None else _task(label, kinds[label], frame[label]))
    keys = _keys(kinds, frame, timestamp, label, path, key)
    features = {c: "integer" if k == "number" and frame[c].dtype.kind in "iu" else k for c, k in kinds.items()
                if c not in (timestamp, label, *keys[:1]) and k in ("number", "text", "bool")}
    stamps = frame[timestamp].drop_duplicates().sort_values()
    gaps = stamps.diff().dropna()
    step = gaps.median().to_pytimedelta() if len(gaps) else timedelta(days=1)
    start, end = _time_span(parquet, timestamp)
    missing = {c: share for c in features if (share := float(frame[c].isna().mean())) > 0}
    return Inspection(timestamp, keys, kinds[keys[0]], label, task, features, step, start,
                      parquet.metadata.num_rows, end, missing, positive)


def _times_as_text(kinds: dict[str, str], frame: Any) -> str:
    """How to give the table a timestamp: convert the text column that reads as ISO 8601 times, if any."""
    import pandas as pd

    for column, kind in kinds.items():
        values = frame[column].dropna().head(100) if kind == "text" else None
        if values is None or values.empty:
            continue
        try:
            pd.to_datetime(values, format="ISO8601", utc=True)
        except (ValueError, TypeError):
            continue
        return (f"column {column!r} holds times as text (e.g. {values.iloc[0]!r}): store it as a timestamp "
                f"(pandas: df[{column!r}] = pd.to_datetime(df[{column!r}], utc=True)) and run again")
    return "store the time each row is predicted at as a timestamp (pandas: pd.to_datetime(...)) and run again"


def _time_span(parquet: Any, timestamp: str) -> tuple[Any, Any]:
    """The first and last timestamp of the whole table (one column read, not only the sample)."""
    import pandas as pd
    import pyarrow.compute as pc

    span = pc.min_max(parquet.read(columns=[timestamp]).column(0))
    return pd.Timestamp(span["min"].as_py()), pd.Timestamp(span["max"].as_py())


#: (window, holdout, days of rows before the first run) for a table of daily-or-finer and of monthly rows.
_DEFAULT_WINDOWS = {False: (90, 14, 90), True: (730, 180, 365)}


def fitted_windows(found: Inspection) -> tuple[int, int, int, str]:
    """``(window, holdout, first run)`` in days from the table's start, and why, if not the defaults.

    The defaults follow the table's cadence. A table too short for them would have its first run
    after most (or all) of its rows, leaving nothing to monitor or retrain on: then the window is a
    third of the table's span, the first run comes after one window, and the holdout keeps the
    default's share of the window.
    """
    monthly = found.step >= timedelta(days=25)
    window, holdout, first = _DEFAULT_WINDOWS[monthly]
    span = (found.end - found.start).days
    if _rate(found) * window < QUALITY_MIN_ROWS:
        return _windows_for_rows(found, window, holdout, span)
    if first <= span * 2 // 3:
        return window, holdout, first, ""
    fitted = max(1, span // 3)
    return (fitted, max(1, round(fitted * holdout / window)), fitted,
            f"a third of the table's {span} days (the default {window}d would leave too few rows after the first run)")


def _windows_for_rows(found: Inspection, window: int, holdout: int, span: int) -> tuple[int, int, int, str]:
    """A table too sparse for the default window (fewer rows than quality.min_rows in it, so every run
    would fail its data checks): a window holding :data:`TRAIN_ROWS` rows at the table's rate (at
    most two thirds of its span), the first run after one window, and a holdout of the default's share
    of it but longer than one step of the table (a shorter one can fall between two rows' times)."""
    rate = _rate(found)
    fitted = min(math.ceil(TRAIN_ROWS / rate), max(2, span * 2 // 3))
    held = min(max(round(fitted * holdout / window), math.ceil(found.step / timedelta(days=1) * 1.1)), fitted // 2)
    why = (f"about {rate * fitted:.0f} rows at the table's rate (the default {window}d holds about "
           f"{rate * window:.0f}, fewer than quality.min_rows {QUALITY_MIN_ROWS})")
    return fitted, max(1, held), fitted, why


def _min_rows(found: Inspection, window_days: int) -> str:
    """``quality.min_rows`` (and why, when lowered): :data:`QUALITY_MIN_ROWS`, or four fifths of the
    rows a window holds at the table's rate when even the widest window init fits holds fewer (a
    table of a few dozen rows would otherwise fail every run's data checks)."""
    expected = _rate(found) * window_days
    if expected >= QUALITY_MIN_ROWS:
        return str(QUALITY_MIN_ROWS)
    return (f"{max(1, math.floor(expected * 0.8))}   # the table holds about {expected:.0f} rows a window: "
            f"fewer than {QUALITY_MIN_ROWS} are few to train and evaluate on")


def _rate(found: Inspection) -> float:
    """The table's rows per day, over its whole span."""
    return found.rows / max((found.end - found.start) / timedelta(days=1), 1.0)


#: Monitoring windows init may write, the smallest first: (window, its length in days, the monitor cron).
_MONITOR_WINDOWS = [("1d", 1.0, "@daily"), ("7d", 7.0, "@weekly"), ("1mo", 30.4, "@monthly"),
                    ("3mo", 91.3, "0 0 1 */3 *"), ("1y", 365.25, "@yearly")]
#: monitoring.min_rows' default: a window with fewer rows is "insufficient data" (no drift verdict).
MONITOR_MIN_ROWS = 100


def monitoring_window(found: Inspection) -> tuple[str, str, str]:
    """``(window, cron, why)``: the smallest monitoring window at least one step of the table long
    that holds :data:`MONITOR_MIN_ROWS` rows at the table's rate (rows over its span), and the cron
    that monitors each such window once; the largest when none does, and ``why`` says so."""
    rate = _rate(found)
    step = found.step / timedelta(days=1)
    fitting = [w for w in _MONITOR_WINDOWS if w[1] >= 0.9 * step] or _MONITOR_WINDOWS[-1:]  # a month is 28-31 days
    for window, days, cron in fitting:
        if rate * days >= MONITOR_MIN_ROWS:
            return window, cron, f"about {rate * days:.0f} rows a window at the table's rate"
    window, days, cron = fitting[-1]
    return window, cron, (f"about {rate * days:.0f} rows a window at the table's rate, fewer than monitoring.min_rows "
                          f"{MONITOR_MIN_ROWS}: drift has no verdict (insufficient data) until you lower min_rows")


def _guess_label(kinds: dict[str, str], frame: Any, timestamp: str) -> str:
    named = [c for c in kinds if _TARGET_NAMES.match(c.lower()) and kinds[c] in ("number", "bool")]
    if named:
        return named[0]
    numeric = [c for c, k in kinds.items() if k in ("number", "bool") and c != timestamp]
    if not numeric:
        raise TableError("no numeric or true/false column to predict: name the label with --label")
    return numeric[-1]


def _task(label: str, kind: str, values: Any) -> str:
    distinct = set(values.dropna().unique().tolist())
    if kind == "bool" or (kind == "number" and distinct <= {0, 1}):
        return "classification"
    if kind == "number" and values.dtype.kind in "iu" and len(distinct) <= MAX_CLASSES:
        shown = ", ".join(map(str, sorted(distinct)))
        raise TableError(f"label column {label!r} has {len(distinct)} distinct integers ({shown}): classes or "
                         "amounts? Classification is binary (multiclass is not supported): derive a 0/1 column, "
                         "or pass --task regression if they are amounts")
    if kind == "number":
        return "regression"
    raise TableError(f"label column {label!r} is {kind}: recode it as 0/1 (classification) or as a number "
                     "(regression); multiclass classification is not supported")


def _positive_text(label: str, values: Any) -> str:
    """A text label of two values is a classification: the rarer value is its positive class (1)."""
    counts = values.dropna().astype(str).value_counts()
    if len(counts) != 2:
        shown = ", ".join(map(repr, sorted(counts.index)[:10]))
        raise TableError(f"label column {label!r} is text with {len(counts)} distinct values ({shown}): classification "
                         "is binary (multiclass is not supported); recode it as two values, 0/1, or a number "
                         "(regression)")
    return str(counts.sort_index().idxmin())


def _keys(kinds: dict[str, str], frame: Any, timestamp: str, label: str, path: Path, key: str | None) -> list[str]:
    """The candidate entity keys, the one the skeleton joins on first (``key``, when the user chose it).

    The skeleton's view reads the table itself, so a row's features are those of the row with its
    key and time: the key must tell apart the rows of one instant, or a row gets another's values.
    A repeating column that does comes first; else any text or integer column that does (an id).
    """
    columns = [c for c, k in kinds.items() if c not in (timestamp, label) and _is_identifier(frame[c], k)]
    repeating = [c for c in columns if 1 < frame[c].nunique() <= min(MAX_KEYS, KEY_SHARE * len(frame))]
    if key is not None:
        if key not in columns:
            raise TableError(f"--key {key!r}: an entity key is a text or integer column of {path} other than the "
                             f"timestamp and the label: {', '.join(columns) or 'it has none'}")
        if frame.duplicated([key, timestamp]).any():
            raise _shared_key_and_time(path, frame, key, timestamp, tried=[key])
        return [key, *(c for c in repeating if c != key)]
    apart = [c for c in columns if not frame.duplicated([c, timestamp]).any()]
    if not repeating and not apart:
        raise TableError(f"{path} has no column that looks like an entity key (text or integers repeating over "
                         "time, e.g. a customer or city id)")
    chosen = next((c for c in repeating if c in apart), apart[0] if apart else None)
    if chosen is None:
        raise _shared_key_and_time(path, frame, repeating[0], timestamp, tried=columns)
    return [chosen, *(c for c in repeating if c != chosen)]


def _shared_key_and_time(path: Path, frame: Any, key: str, timestamp: str, *, tried: list[str]) -> TableError:
    """Rows of one ``key`` and instant, which the skeleton's join cannot tell apart: say which."""
    twins = frame[frame.duplicated([key, timestamp], keep=False)]
    first = twins.iloc[0]
    return TableError(
        f"{path}: rows share a {key!r} and a {timestamp!r} ({len(twins)} of the first {len(frame)} rows, e.g. "
        f"{int((twins[key] == first[key]).mul(twins[timestamp] == first[timestamp]).sum())} rows of "
        f"{key} {first[key]!r} at {first[timestamp]}), and no text or integer column tells them apart "
        f"(tried: {', '.join(tried)}): the skeleton's point-in-time join would give such a row the features "
        "of another. Add a column that identifies what each row is about (e.g. an id) and run again")


def _is_identifier(values: Any, kind: str) -> bool:
    return kind == "text" or (kind == "number" and values.dtype.kind in "iu")


def spec_text(name: str, table: str, found: Inspection, *, owner: str, service: str, start: str | None) -> str:
    """A commented spec for ``found``; ``table`` is the table's path as the spec names it."""
    from ctflow.spec.durations import format_duration

    monthly, yearly = found.step >= timedelta(days=25), found.step >= timedelta(days=300)
    window_days, holdout_days, first_days, why = fitted_windows(found)
    min_rows = _min_rows(found, window_days)
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
