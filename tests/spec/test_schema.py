"""The JSON Schema (editor autocompletion) and the Markdown reference of the spec."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from ctflow.cli import main
from ctflow.spec import PipelineSpec
from ctflow.spec.durations import (
    CALENDAR_PATTERN,
    DURATION_PATTERN,
    format_duration,
    parse_calendar_duration,
    parse_duration,
)
from ctflow.spec.schema import SCHEMA_ID, json_schema, markdown_reference

PROJECT = Path(__file__).resolve().parents[2]
COMMITTED = PROJECT / "dags" / "specs" / "ctflow-spec.schema.json"
FIXTURES = PROJECT / "tests" / "fixtures"
GOOD = [PROJECT / "dags" / "specs" / "flight_delay.yaml", *sorted((FIXTURES / "good_specs").glob("*.yaml"))]


def _as_json(path: Path) -> object:
    """The spec as an editor's schema validator sees it: JSON values, dates as strings."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


@pytest.fixture(scope="module")
def validator():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_draft_2020_12_and_describes_the_spec():
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"pipeline", "owner", "schedule", "data", "model", "evaluation"}
    assert set(schema["properties"]) == set(PipelineSpec.model_fields)
    duration = schema["$defs"]["Data"]["properties"]["window"]
    assert duration["type"] == "string" and duration["default"] == "90d"  # a value the spec accepts
    # "label: churned" is shorthand for {column: churned}: editors must accept both.
    label = schema["$defs"]["Data"]["properties"]["label"]
    assert label["anyOf"] == [{"type": "string"}, {"$ref": "#/$defs/Label"}]


def test_duration_defaults_are_written_as_in_a_spec():
    durations = [
        prop
        for model in json_schema()["$defs"].values()
        for prop in model.get("properties", {}).values()
        if prop.get("pattern") in (DURATION_PATTERN, CALENDAR_PATTERN) and "default" in prop
    ]
    assert len(durations) >= 5  # window, holdout, monitoring window (calendar), retry_delay, task_timeout
    for prop in durations:
        parse = parse_duration if prop["pattern"] == DURATION_PATTERN else parse_calendar_duration
        assert format_duration(parse(prop["default"])) == prop["default"], prop


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_specs_satisfy_the_schema(validator, path: Path):
    errors = sorted(validator.iter_errors(_as_json(path)), key=str)
    assert not errors, "\n".join(e.message for e in errors)


@pytest.mark.parametrize(
    ("fixture", "keywords"),
    [
        ("unknown_key_top", ["additionalProperties", "required"]),  # 'evalution' and no 'evaluation'
        ("unknown_key_deep", ["additionalProperties"]),
        ("missing_section", ["required"]),
        ("type_int", ["type"]),
        ("bad_duration", ["pattern"]),
        ("invalid_pipeline_name", ["pattern"]),
        ("bad_choice", ["enum"]),
    ],
)
def test_schema_catches_what_an_editor_can(validator, fixture: str, keywords: list[str]):
    errors = list(validator.iter_errors(_as_json(FIXTURES / "broken_specs" / f"{fixture}.yaml")))
    assert sorted(e.validator for e in errors) == keywords, [e.message for e in errors]


def test_committed_schema_is_up_to_date(capsys: pytest.CaptureFixture[str]):
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == json_schema()
    assert COMMITTED.read_text(encoding="utf-8") == printed, (
        f"{COMMITTED.relative_to(PROJECT)} is out of date with the spec models; run: make schema"
    )


def test_markdown_reference_has_a_table_per_section():
    text = markdown_reference()
    for section in ("top level", "schedule", "data", "data.label", "model.preprocessing", "monitoring.drift", "defaults"):
        assert f"\n#### `{section}`\n" in text, section
    assert "| `pipeline` | str | **required** |" in text
    assert "| `window` | calendar duration | `90d` |" in text
    assert "| `strategy` | `direct` \\| `shadow` \\| `canary` | `\"direct\"` |" in text


def _minimal(**changes: object) -> dict:
    """tests/fixtures/good_specs/minimal.yaml as an editor sees it, with ``section.key`` values changed."""
    spec = _as_json(FIXTURES / "good_specs" / "minimal.yaml")
    assert isinstance(spec, dict)
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = spec
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return spec


@pytest.mark.parametrize(
    ("changes", "keyword", "where"),
    [
        ({"model__estimator": "sklearn.ensemble.HistGradientBoostingClasifier"}, "enum", "model.estimator"),
        ({"model__params": {"max_iter": "many"}}, "type", "model.params.max_iter"),
        ({"model__params": {"max_itr": 100}}, "additionalProperties", "model.params"),  # not a LogisticRegression parameter
        ({"model__params": {"random_state": 1}}, "additionalProperties", "model.params"),  # model.seed sets it
        ({"schedule__train": "0 25 * * 1"}, "pattern", "schedule.train"),
        ({"schedule__monitor": "every day"}, "pattern", "schedule.monitor"),
        ({"evaluation__metric": "rocauc"}, "enum", "evaluation.metric"),
        ({"evaluation__metric": "rmse"}, "enum", "evaluation.metric"),  # a regression metric on a classifier
        ({"evaluation__thresholds": {"mae": {"max": 3}}}, "enum", "evaluation.thresholds"),
        ({"data__window": "3 months"}, "pattern", "data.window"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_schema_rejects_what_validate_rejects(validator, changes: dict, keyword: str, where: str):
    errors = list(validator.iter_errors(_minimal(**changes)))
    # Errors at the field only (an unknown metric is in neither list: two); a union's reasons are in its context.
    assert {".".join(map(str, e.absolute_path)) for e in errors} == {where}, [e.message for e in errors]
    assert keyword in {errors[0].validator, *(e.validator for e in errors[0].context)}, errors[0].message


@pytest.mark.parametrize(
    "changes",
    [
        {"model__params": {"max_iter": 500, "C": 1, "class_weight": None}},  # an integer is a number
        {"schedule__train": "*/15 0-6 * JAN-MAR mon-fri", "schedule__monitor": "@daily"},
        {"schedule__train": None},
        {"model__task": "regression", "model__estimator": "sklearn.linear_model.Ridge", "model__params": {"alpha": 0.5},
         "evaluation__metric": "rmse", "evaluation__thresholds": {"r2": {"min": 0.1}}},
    ],
)
def test_schema_accepts_what_validate_accepts(validator, changes: dict):
    spec = _minimal(**changes)
    assert not [e.message for e in validator.iter_errors(spec)]
    from ctflow.spec import parse_spec

    parse_spec(json.dumps(spec))  # and ctflow itself agrees (JSON is YAML)
