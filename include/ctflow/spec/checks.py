"""Rules that need more than one field of a valid spec. Each finding names a field path."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from ctflow.spec.catalog import ESTIMATORS
from ctflow.spec.errors import did_you_mean
from ctflow.spec.models import PipelineSpec
from ctflow.spec.paths import PATH_FIELDS, PathOutsideError, resolve_spec_path


class Finding(NamedTuple):
    path: tuple[str | int, ...]
    message: str
    suggestion: str | None = None


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    # Strict for unions too: a quoted "8" for ``int | None`` would reach scikit-learn as a string.
    return TypeAdapter(kind, config={"strict": True})


def _describe(kind: Any) -> str:
    names: dict[Any, str] = {
        int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"
    }
    members = getattr(kind, "__args__", (kind,))
    return " or ".join(names.get(m, getattr(m, "__name__", str(m))) for m in members)


def check_spec(spec: PipelineSpec) -> list[Finding]:
    """Every cross-field problem of ``spec``; an empty list means it is usable."""
    return [*_model(spec), *_metrics(spec), *_columns(spec), *_quality(spec), *_schedule(spec),
            *_paths(spec), *_placeholders(spec)]


def _model(spec: PipelineSpec) -> Iterator[Finding]:
    estimator = ESTIMATORS[spec.model.estimator]
    if estimator.task != spec.model.task:
        same_task = sorted(e.rsplit(".", 1)[-1] for e, v in ESTIMATORS.items() if v.task == spec.model.task)
        yield Finding(
            ("model", "estimator"),
            f"{spec.model.estimator} is a {estimator.task} estimator but model.task is "
            f"{spec.model.task!r}; use one of: {', '.join(same_task)}",
        )
    for name, value in spec.model.params.items():
        if name == "random_state":
            yield Finding(("model", "params", name), "set the seed with model.seed, not params.random_state")
            continue
        kind = estimator.params.get(name)
        if kind is None:
            yield Finding(
                ("model", "params", name),
                f"{estimator.path.rsplit('.', 1)[-1]} has no parameter {name!r} ctflow allows; "
                f"allowed: {', '.join(sorted(estimator.params))}",
                did_you_mean(name, estimator.params),
            )
            continue
        try:
            _adapter(kind).validate_python(value)
        except ValidationError:
            if not (kind is float and isinstance(value, int) and not isinstance(value, bool)):
                yield Finding(("model", "params", name), f"expected {_describe(kind)}, got {value!r}")
    if spec.data.label.positive_when and spec.model.task != "classification":
        yield Finding(("data", "label", "positive_when"), "derives a binary label: use it with task: classification")


def _metrics(spec: PipelineSpec) -> Iterator[Finding]:
    known = spec.metrics
    listed = ", ".join(known)
    references: list[tuple[tuple[str | int, ...], str]] = [(("evaluation", "metric"), spec.evaluation.metric)]
    references += [(("evaluation", "thresholds", name), name) for name in spec.evaluation.thresholds]
    references += [(("evaluation", "slice_thresholds", name), name) for name in spec.evaluation.slice_thresholds or {}]
    if spec.monitoring.performance:
        references.append((("monitoring", "performance", "metric"), spec.monitoring.performance.metric))
    for path, name in references:
        if name not in known:
            message = f"unknown {spec.model.task} metric {name!r}; known: {listed}"
            yield Finding(path, message, did_you_mean(name, known))


def _columns(spec: PipelineSpec) -> Iterator[Finding]:
    data = spec.data
    reserved = {data.timestamp, data.label.column}
    for i, column in enumerate(data.columns):
        if column in reserved:
            yield Finding(("data", "columns", i), f"{column!r} is the timestamp or label, not a feature")
    for i, column in enumerate(spec.evaluation.slices):
        if column not in data.columns:
            yield Finding(
                ("evaluation", "slices", i),
                f"slice column {column!r} must be one of data.columns ({', '.join(data.columns) or 'none listed'})",
                did_you_mean(column, data.columns),
            )
    for i, column in enumerate(spec.model.categorical):
        if column in spec.model.exclude:
            yield Finding(("model", "categorical", i), f"{column!r} is also in model.exclude")


def _quality(spec: PipelineSpec) -> Iterator[Finding]:
    if spec.quality.label_balance is not None and spec.model.task != "classification":
        yield Finding(("quality", "label_balance"),
                      f"bounds the share of positive labels: it applies to task classification, not {spec.model.task}")


#: How `ctflow init`'s template marks what the user must fill in.
PLACEHOLDER = "TODO_"


def _placeholders(spec: PipelineSpec) -> Iterator[Finding]:
    data = spec.data
    fields = {("data", "entities"): data.entities, ("data", "timestamp"): data.timestamp,
              ("data", "label", "column"): data.label.column, ("data", "features"): data.features}
    for path, value in fields.items():
        if PLACEHOLDER in value:
            yield Finding(path, f"{value!r} is a placeholder of the `ctflow init` template: replace it with yours "
                          "(or write the spec from your table: ctflow init NAME --from TABLE.parquet)")


def _schedule(spec: PipelineSpec) -> Iterator[Finding]:
    for i, upstream in enumerate(spec.schedule.after):
        if upstream == spec.pipeline:
            yield Finding(("schedule", "after", i), "a pipeline cannot be triggered by its own promotions (cycle)")


def _paths(spec: PipelineSpec) -> Iterator[Finding]:
    for path in PATH_FIELDS:
        value: object = spec
        for part in path:
            value = getattr(value, part)
        if value is None:  # an optional path left to the deployment's default
            continue
        try:
            resolve_spec_path(str(value))
        except PathOutsideError as err:
            yield Finding(path, str(err))
