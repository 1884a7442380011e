"""The spec as a JSON Schema (editor autocompletion) and as a Markdown field reference."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema

from ctflow.spec.catalog import ESTIMATORS, TaskType, metrics_for
from ctflow.spec.durations import CalendarDuration, format_duration
from ctflow.spec.models import CRON_PRESETS, PipelineSpec

SCHEMA_ID = "https://ctflow.dev/schemas/ctflow-spec.schema.json"


class _SpecJsonSchema(GenerateJsonSchema):
    def encode_default(self, dft: Any) -> Any:
        # Defaults are encoded by their Python type, which would spell 90 days "P90D".
        if isinstance(dft, timedelta | CalendarDuration):
            return format_duration(dft)
        return super().encode_default(dft)


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema, with what an editor can check beyond the models' types: the estimator
    allowlist and each estimator's parameters, the metrics of each task, and cron expressions."""
    schema = PipelineSpec.model_json_schema(schema_generator=_SpecJsonSchema)
    defs = schema["$defs"]
    _estimators(defs["Model"])
    for name in ("train", "monitor"):
        cron = defs["Schedule"]["properties"][name]
        cron["anyOf"] = [{"type": "string", "pattern": CRON_PATTERN}, {"type": "null"}]
    schema["allOf"] = [_task_metrics(task) for task in typing.get_args(TaskType)]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def _cron_field(value: str) -> str:
    item = rf"(?:\*|(?:{value})(?:-(?:{value}))?)(?:/[0-9]+)?"
    return f"{item}(?:,{item})*"


_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAYS = "SUN|MON|TUE|WED|THU|FRI|SAT"
_CRON_FIELDS = (  # minute, hour, day of month, month, day of week
    "[0-5]?[0-9]",
    "[01]?[0-9]|2[0-3]",
    "0?[1-9]|[12][0-9]|3[01]",
    f"0?[1-9]|1[0-2]|{_MONTHS}|{_MONTHS.lower()}",
    f"[0-7]|{_DAYS}|{_DAYS.lower()}",
)
#: A preset, or five cron fields within their ranges: what an editor can check of what croniter
#: accepts (``0 25 * * 1`` is refused).
CRON_PATTERN = "^(?:" + "|".join(CRON_PRESETS) + r"|\s*" + r"\s+".join(map(_cron_field, _CRON_FIELDS)) + r"\s*)$"

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}


def _estimators(model: dict[str, Any]) -> None:
    """The allowlist as an enum, and each estimator's parameters with their types."""
    model["properties"]["estimator"]["enum"] = list(ESTIMATORS)
    model["allOf"] = [
        {
            "if": {"properties": {"estimator": {"const": path}}, "required": ["estimator"]},
            "then": {"properties": {"params": {
                "properties": {name: _param_schema(kind) for name, kind in sorted(estimator.params.items())},
                "additionalProperties": False,
            }}},
        }
        for path, estimator in ESTIMATORS.items()
    ]


def _param_schema(kind: object) -> dict[str, Any]:
    members = typing.get_args(kind) or (kind,)
    types_ = [_JSON_TYPES[m] for m in members if isinstance(m, type)]
    return {"type": types_[0] if len(types_) == 1 else types_}


def _task_metrics(task: TaskType) -> dict[str, Any]:
    """A spec of ``task`` names only that task's metrics."""
    names = {"enum": [m.name for m in metrics_for(task)]}
    return {
        "if": {"properties": {"model": {"properties": {"task": {"const": task}}, "required": ["task"]}},
               "required": ["model"]},
        "then": {"properties": {
            "evaluation": {"properties": {"metric": names, "thresholds": {"propertyNames": names},
                                          "slice_thresholds": {"anyOf": [{"propertyNames": names}, {"type": "null"}]}}},
            "monitoring": {"properties": {"performance": {"anyOf": [{"properties": {"metric": names}},
                                                                     {"type": "null"}]}}},
        }},
    }


def markdown_reference() -> str:
    """One table per section of the spec: key, type, default, meaning."""
    out = [("Every key, its type and default. Unknown keys are errors. Durations read like `90d`, `12h`, `1d12h`; "
           "windows, holdouts and label delays may count calendar months: `1mo`, `3mo`, `1y` (Jan 31 + 1mo = Feb 28/29).")]
    for path, model in _sections(PipelineSpec, ""):
        out.append(f"\n#### `{path or 'top level'}`\n")
        if model.__doc__ and path:
            out.append(model.__doc__.strip().splitlines()[0] + "\n")
        out.append("| key | type | default | meaning |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            default = _default(field)
            out.append(f"| `{name}` | {_type_name(field.annotation)} | {default} | {field.description or ''} |")
    return "\n".join(out) + "\n"


def _sections(model: type[BaseModel], path: str) -> Iterator[tuple[str, type[BaseModel]]]:
    yield path, model
    for name, field in model.model_fields.items():
        inner = _model_in(field.annotation)
        if inner is not None:
            yield from _sections(inner, f"{path}.{name}" if path else name)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found:
                return found
    return None


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if annotation is type(None):
        return "null"
    if annotation is timedelta:
        return "duration"
    if annotation is CalendarDuration:
        return "calendar duration"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)  # no spec factory reads other fields
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, timedelta | CalendarDuration):
        return f"`{format_duration(value)}`"
    return f"`{json.dumps(value, default=str)}`"
