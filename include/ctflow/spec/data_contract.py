"""The data contract of a spec, checked against its data before any run (``ctflow validate --deep``).

A valid spec can still name what the data does not have: a missing entity table, a timestamp
that is text, a label that is not binary, a feature service the Feast repository lacks. Each of
these would otherwise fail at run time, minutes in, as a traceback. Here each becomes one
:class:`~ctflow.spec.errors.Problem` at the field's line, with the closest valid name.

The contract:

* ``data.entities`` is a readable parquet file (inside the project: checked by the spec itself);
* ``data.timestamp`` is one of its columns, of a timestamp type;
* ``data.label.column`` is one of its columns and fits the task: numeric for regression;
  binary for classification (0/1 or true/false, or numeric with ``positive_when``). Multiclass
  is not supported: a label with more than two values is an error naming them;
* ``data.label.available_at``, when given, is one of its columns, of a timestamp type;
* ``data.features`` is a feature service of the pipeline's Feast repository; the entity table has
  every join key of its views, and none of its feature names is already an entity-table column;
* each view's parquet table can be read and stores every column the view declares (features,
  join keys, timestamp fields) in a type its readers read as declared, and the entity table's
  join keys have the type of the views' entities (:mod:`ctflow.spec.column_types`);
* ``data.columns``, ``model.categorical``, ``model.exclude``, ``quality.ranges``,
  ``quality.max_missing`` and ``monitoring.drift.columns`` name columns the rows will have
  (entity table or feature service); a range is on a numeric column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ctflow.spec.checks import Finding
from ctflow.spec.column_types import type_mismatches, unreadable
from ctflow.spec.data_sources import (
    EntityTable,
    FeatureServiceColumns,
    Unavailable,
    feature_repo_for,
    read_entity_table,
    read_feature_service,
)
from ctflow.spec.errors import Problem, did_you_mean
from ctflow.spec.load import line_of_path
from ctflow.spec.models import PipelineSpec
from ctflow.spec.paths import resolve_spec_path

#: Distinct label values named in an error, at most.
_SHOWN = 8


def check_data(spec: PipelineSpec, text: str, filename: str) -> list[Problem]:
    """Every data-contract problem of ``spec`` (read from ``text``, reported as ``filename``)."""
    findings = list(data_findings(spec))
    return [Problem(filename, line_of_path(text, f.path), f.path, f.message, f.suggestion) for f in findings]


def data_findings(spec: PipelineSpec) -> Iterator[Finding]:
    """The data-contract findings of ``spec``: reads the entity table's schema and the Feast registry."""
    path = resolve_spec_path(spec.data.entities)
    table = read_entity_table(path, spec.data.label.column, shown=spec.data.entities)
    service = read_feature_service(feature_repo_for(spec), spec.data.features)
    if isinstance(table, Unavailable):
        yield Finding(("data", "entities"), table.message)
    else:
        yield from _entity_table(spec, table)
    if isinstance(service, Unavailable):
        yield Finding(("data", "features"), service.message, service.suggestion)
    else:
        if not isinstance(table, Unavailable):
            yield from _service(spec, table, service)
        yield from _column_types(spec, service, entities=None if isinstance(table, Unavailable) else path)
    if not isinstance(table, Unavailable):
        features = {} if isinstance(service, Unavailable) else service.features
        yield from _named_columns(spec, {**table.columns, **features}, complete=not isinstance(service, Unavailable))


def _entity_table(spec: PipelineSpec, table: EntityTable) -> Iterator[Finding]:
    data, names = spec.data, list(table.columns)
    where = f"the entity table {data.entities}"
    if data.timestamp not in table.columns:
        yield Finding(("data", "timestamp"), f"{where} has no column {data.timestamp!r}; it has: {_list(names)}",
                      did_you_mean(data.timestamp, names))
    elif table.columns[data.timestamp] != "time":
        yield Finding(("data", "timestamp"), f"column {data.timestamp!r} of {where} is {table.columns[data.timestamp]}, "
                      "not a timestamp: store it as a parquet timestamp (pandas: pd.to_datetime(...))",
                      _closest_of_kind(data.timestamp, table.columns, "time"))
    yield from _label_known_at(spec, table)
    if data.label.column not in table.columns:
        yield Finding(("data", "label", "column"), f"{where} has no column {data.label.column!r}; it has: "
                      f"{_list(names)}", did_you_mean(data.label.column, names))
    else:
        yield from _label(spec, table)


def _label_known_at(spec: PipelineSpec, table: EntityTable) -> Iterator[Finding]:
    """``label.available_at`` names the column saying when each label became known: it must be a time."""
    column = spec.data.label.available_at
    if column is None:
        return
    where, field = f"the entity table {spec.data.entities}", ("data", "label", "available_at")
    if column not in table.columns:
        yield Finding(field, f"{where} has no column {column!r}; it has: {_list(list(table.columns))}",
                      did_you_mean(column, list(table.columns)))
    elif table.columns[column] != "time":
        yield Finding(field, f"column {column!r} of {where} is {table.columns[column]}, not a timestamp: "
                      "store when each label became known as a parquet timestamp",
                      _closest_of_kind(column, table.columns, "time"))


def _label(spec: PipelineSpec, table: EntityTable) -> Iterator[Finding]:
    label = spec.data.label
    kind, values = table.columns[label.column], table.label_values
    seen = f"in the first {table.sampled_rows} rows"
    if spec.model.task == "regression":
        if kind != "number":
            yield Finding(("data", "label", "column"),
                          f"label column {label.column!r} is {kind}: task regression needs a numeric label")
        return
    if label.positive_when is not None:
        yield from _comparison(label.column, label.comparison, kind, values, seen)  # type: ignore[arg-type]
        return
    example = f"'== {values[0]}'" if kind == "text" and values else "'== 1'"
    if len(values) > 2:
        yield Finding(("data", "label", "column"),
                      f"task classification is binary, but label column {label.column!r} has {len(values)} distinct "
                      f"values {seen} ({_values(values)}): multiclass classification is not supported; derive a "
                      f"binary label with data.label.positive_when (e.g. {example}), or use task: regression")
    elif kind not in ("bool", "number") or not set(values) <= {0, 1}:
        yield Finding(("data", "label", "column"),
                      f"a classification label is 0/1 or true/false, but label column {label.column!r} is {kind} with "
                      f"values {_values(values)} {seen}: derive one with data.label.positive_when "
                      f"(e.g. {example}), or recode the column as 0/1")


def _comparison(column: str, comparison: tuple[str, float | str], kind: str, values: list, seen: str) -> Iterator[Finding]:
    """``positive_when`` against the label column: numbers for a numeric label, a value it holds for a text one."""
    field = ("data", "label", "positive_when")
    op, value = comparison
    if isinstance(value, str) and kind != "text":
        yield Finding(field, f"compares text ({value!r}), but label column {column!r} is {kind} (values {seen}: "
                      f"{_values(values)}): compare a number, e.g. '{op} 1'")
    elif isinstance(value, str) and value not in {str(v) for v in values}:
        yield Finding(field, f"no label {value!r} in column {column!r} (values {seen}: {_values(values)}): every "
                      f"row's label would be {int(op == '!=')}")
    elif not isinstance(value, str) and kind not in ("number", "bool"):
        yield Finding(field, f"compares numbers, but label column {column!r} is {kind} (values {seen}: "
                      f"{_values(values)}): compare text, e.g. '== {values[0] if values else 'yes'}', or recode it "
                      "as numbers in the entity table")


def _service(spec: PipelineSpec, table: EntityTable, service: FeatureServiceColumns) -> Iterator[Finding]:
    name = spec.data.features
    for key, view in service.join_keys.items():
        if key not in table.columns:
            yield Finding(("data", "entities"),
                          f"the entity table has no column {key!r}, the join key of view {view!r} of feature service "
                          f"{name!r}; it has: {_list(list(table.columns))}", did_you_mean(key, list(table.columns)))
    clashes = [f for f in service.features if f in table.columns]
    if clashes:
        yield Finding(("data", "features"),
                      f"feature(s) {_list(clashes)} of feature service {name!r} are also entity-table columns: the "
                      "join would overwrite them; rename or drop those columns of the entity table")


def _column_types(spec: PipelineSpec, service: FeatureServiceColumns, *, entities: Path | None) -> Iterator[Finding]:
    """Every table of the service readable, each column stored as its view declares, the entity
    table's join keys as their entities declare."""
    for table in unreadable(service.tables):
        yield Finding(("data", "features"), f"{table.table}, the table of the {table.reader} of feature service "
                      f"{spec.data.features!r}, is no readable parquet file"
                      f"{'' if Path(table.table).exists() else ' (it does not exist)'}")
    for mismatch in type_mismatches(service.tables, entities=entities, entities_shown=spec.data.entities):
        field = ("data", "entities") if mismatch.entity_table else ("data", "features")
        yield Finding(field, mismatch.message, mismatch.suggestion)


def _named_columns(spec: PipelineSpec, columns: dict[str, str], *, complete: bool) -> Iterator[Finding]:
    """References to columns; without the service's features (``complete`` false) only the entity table is known."""
    if not complete:
        return  # every name might be a feature of the service that could not be read
    references: list[tuple[tuple[str | int, ...], str]] = []
    references += [(("data", "columns", i), c) for i, c in enumerate(spec.data.columns)]
    references += [(("model", "categorical", i), c) for i, c in enumerate(spec.model.categorical)]
    references += [(("model", "exclude", i), c) for i, c in enumerate(spec.model.exclude)]
    references += [(("quality", "ranges", c), c) for c in spec.quality.ranges]
    references += [(("quality", "max_missing", c), c) for c in spec.quality.max_missing]
    references += [(("monitoring", "drift", "columns", i), c) for i, c in enumerate(spec.monitoring.drift.columns or [])]
    names = list(columns)
    for path, column in references:
        if column not in columns:
            yield Finding(path, f"no column {column!r} in the entity table {spec.data.entities} nor in feature service "
                          f"{spec.data.features!r}", did_you_mean(column, names))
        elif path[:2] == ("quality", "ranges") and columns[column] != "number":
            yield Finding(path, f"column {column!r} is {columns[column]}: a range needs a numeric column")


def _closest_of_kind(name: str, columns: dict[str, str], kind: str) -> str | None:
    same = [c for c, k in columns.items() if k == kind]
    return (did_you_mean(name, same) or same[0]) if same else None


def _values(values: list[object]) -> str:
    shown = ", ".join(map(repr, values[:_SHOWN]))
    return shown + (f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else "") if values else "none"


def _list(names: list[str]) -> str:
    return ", ".join(names[:30]) + (f" and {len(names) - 30} more" if len(names) > 30 else "")
