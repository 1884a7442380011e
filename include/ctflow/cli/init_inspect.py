"""``ctflow init NAME --from TABLE.parquet``, first part: what the user's table holds, as ctflow needs it.

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

The spec's windows follow in :mod:`ctflow.cli.init_windows`, the texts init writes in
:mod:`ctflow.cli.init_table`.
"""

from __future__ import annotations

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
