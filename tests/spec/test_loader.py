"""Loading spec text: opted-in ${ENV} interpolation, several problems at once, lines, odd documents.

One problem per file is covered by the broken corpus (test_broken_corpus.py); these are the
success cases and the behaviours a single broken file cannot show.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ctflow.spec import SpecError, load_spec, parse_spec
from ctflow.spec.errors import format_path
from ctflow.spec.load import line_of_path

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "good_specs"
MINIMAL = (GOOD / "minimal.yaml").read_text()


def _problems(text: str) -> list[tuple[int | None, str, str, str | None]]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "spec.yaml")
    return [(p.line, format_path(p.path), p.message, p.suggestion) for p in caught.value.problems]


# --- ${ENV} interpolation: only opted-in variables


def test_env_variable_is_interpolated(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CTFLOW_SPEC_TEST_OWNER", "team-x")
    monkeypatch.setenv("CTFLOW_SPEC_TEST_DATA", "/srv/data")
    monkeypatch.setenv("CTFLOW_DATA_ROOTS", "/srv/data")
    text = MINIMAL.replace("owner: data-science", "owner: ${CTFLOW_SPEC_TEST_OWNER}").replace(
        "entities: data/minimal.parquet", "entities: ${CTFLOW_SPEC_TEST_DATA}/${CTFLOW_SPEC_TEST_OWNER}.parquet"
    )
    spec = parse_spec(text)
    assert spec.owner == "team-x"
    assert spec.data.entities == "/srv/data/team-x.parquet"


def test_env_variable_listed_in_the_allow_list_is_interpolated(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEAM_NAME", "team-z")
    monkeypatch.setenv("CTFLOW_SPEC_ENV_ALLOW", "OTHER, TEAM_NAME")
    assert parse_spec(MINIMAL.replace("owner: data-science", "owner: ${TEAM_NAME}")).owner == "team-z"


def test_env_default_is_used_when_unset_or_empty(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CTFLOW_SPEC_TEST_UNSET", raising=False)
    monkeypatch.setenv("CTFLOW_SPEC_TEST_EMPTY", "")
    text = MINIMAL.replace("owner: data-science", "owner: ${CTFLOW_SPEC_TEST_UNSET:-ml-platform}").replace(
        "features: minimal_v1", "features: ${CTFLOW_SPEC_TEST_EMPTY:-minimal_v2}"
    )
    spec = parse_spec(text)
    assert spec.owner == "ml-platform"
    assert spec.data.features == "minimal_v2"


def test_env_value_wins_over_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CTFLOW_SPEC_TEST_OWNER", "team-y")
    spec = parse_spec(MINIMAL.replace("owner: data-science", "owner: ${CTFLOW_SPEC_TEST_OWNER:-ml-platform}"))
    assert spec.owner == "team-y"


def test_env_interpolated_number_is_validated_as_a_number(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CTFLOW_SPEC_TEST_MIN_ROWS", "5000")
    spec = parse_spec(MINIMAL + "quality:\n  min_rows: ${CTFLOW_SPEC_TEST_MIN_ROWS:-100}\n")
    assert spec.quality.min_rows == 5000


def test_text_without_braces_is_not_interpolated(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", "/root")
    spec = parse_spec(MINIMAL.replace("owner: data-science", "owner: $HOME-team"))
    assert spec.owner == "$HOME-team"


def test_every_undefined_variable_is_reported_at_its_own_line(monkeypatch: pytest.MonkeyPatch):
    for name in ("CTFLOW_SPEC_TEST_A", "CTFLOW_SPEC_TEST_B"):
        monkeypatch.delenv(name, raising=False)
    text = MINIMAL.replace("owner: data-science", "owner: ${CTFLOW_SPEC_TEST_A}\ntags: [x, '${CTFLOW_SPEC_TEST_B}']")
    problems = _problems(text)
    assert [(line, path) for line, path, _, _ in problems] == [(3, "owner"), (4, "tags[1]")]
    assert "${CTFLOW_SPEC_TEST_A} is not set" in problems[0][2]
    assert "${CTFLOW_SPEC_TEST_B} is not set" in problems[1][2]


SECRET = "s3cr3t-value-7e1a"


@pytest.mark.parametrize("reference", [
    "${AIRFLOW__API_AUTH__JWT_SECRET}",
    "${AIRFLOW__API_AUTH__JWT_SECRET:-x}",  # a default would tell whether the variable is set
    "${CTFLOW_HOOK_PASSWORD}",
    "${CTFLOW_SPEC_DB_PASSWORD}",  # the prefix does not make a secret-looking name fit to show
    "${HOME}",  # not opted in
])
def test_a_variable_not_opted_in_is_an_error_naming_it_never_its_value(monkeypatch: pytest.MonkeyPatch, reference):
    name = reference[2:].split(":")[0].rstrip("}")
    for variable in ("AIRFLOW__API_AUTH__JWT_SECRET", "CTFLOW_HOOK_PASSWORD", "CTFLOW_SPEC_DB_PASSWORD", "HOME"):
        monkeypatch.setenv(variable, SECRET)
    monkeypatch.setenv("CTFLOW_SPEC_ENV_ALLOW", "AIRFLOW__API_AUTH__JWT_SECRET,CTFLOW_HOOK_PASSWORD")  # listed: still no
    text = MINIMAL.replace("pipeline: minimal", f"pipeline: minimal\ndescription: {reference}")
    problems = _problems(text)
    assert [(line, path) for line, path, _, _ in problems] == [(3, "description")]
    assert f"environment variable ${{{name}}} is not allowed" in problems[0][2]
    assert SECRET not in str(problems)


def test_an_unlisted_name_suggests_the_opted_in_variable_it_resembles(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CTFLOW_SPEC_OWNER", "team-x")
    (problem,) = _problems(MINIMAL.replace("owner: data-science", "owner: ${CTFLOW_OWNER}"))
    assert problem[3] == "CTFLOW_SPEC_OWNER"


# --- several problems of one file are reported together, in file order


def test_all_problems_of_a_file_are_reported_in_line_order():
    text = (
        MINIMAL.replace("owner: data-science", "owner: ''")
        .replace("  start_date: 2024-01-01", "  start_date: 2024-01-01\n  catchup: maybe")
        .replace("  estimator:", "  estimater:")
    )
    problems = _problems(text)
    assert [(line, path) for line, path, _, _ in problems] == [
        (3, "owner"),
        (6, "schedule.catchup"),
        (14, "model.estimater"),
    ]
    # The misspelt key is not also reported as a missing "estimator".
    assert problems[2][3] == "estimator"


def test_yaml_level_problems_are_all_reported_before_validation():
    text = MINIMAL.replace("owner: data-science", "owner: data-science\nowner: !!python/name:os.system")
    problems = _problems(text)
    # The duplicate key is skipped (first value kept), so its tag is never built: one problem.
    assert problems == [(4, "owner", "duplicate key (first defined on line 3)", None)]
    text = MINIMAL.replace("owner: data-science", "owner: !custom x").replace("features: minimal_v1", "features: !!python/none ''")
    assert [(line, path) for line, path, _, _ in _problems(text)] == [(3, "owner"), (10, "data.features")]


def test_cross_field_checks_run_only_on_an_otherwise_valid_spec():
    # An unknown metric is a cross-field check: with a type error elsewhere only that is reported.
    text = MINIMAL.replace("metric: roc_auc", "metric: rmse").replace("owner: data-science", "owner: [a]")
    assert [path for _, path, _, _ in _problems(text)] == ["owner"]
    (problem,) = _problems(MINIMAL.replace("metric: roc_auc", "metric: rmse"))
    assert problem[:2] == (15, "evaluation.metric")
    assert problem[2].startswith("unknown classification metric 'rmse'; known: roc_auc, ")


# --- unions are reported once, at the real path


def test_alert_with_a_misspelt_key_is_one_problem_with_a_suggestion():
    problems = _problems(MINIMAL + "monitoring:\n  alerts: [log, {webhok: slack}]\n")
    assert problems == [
        (17, "monitoring.alerts[1].webhok", "unknown key; expected one of: webhook", "webhook"),
    ]


def test_list_param_with_a_bad_item_points_at_the_item():
    text = MINIMAL.replace(
        "  estimator: sklearn.linear_model.LogisticRegression",
        "  estimator: sklearn.linear_model.LogisticRegression\n  params: {C: [1, [2]]}",
    )
    problems = _problems(text)
    assert problems == [(14, "model.params.C[1]", "expected an integer, a number or a string, got [2]", None)]


def test_default_holdout_longer_than_window_points_at_data():
    problems = _problems(MINIMAL.replace("  features: minimal_v1", "  features: minimal_v1\n  window: 7d"))
    assert problems == [
        (6, "data.holdout", "holdout (14d) must be shorter than window (7d), or nothing is left to train on", None)
    ]


# --- documents that are not specs


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", None, "the spec is empty: expected a YAML mapping (key: value)"),
        ("# only a comment\n", None, "the spec is empty: expected a YAML mapping (key: value)"),
        ("---\n...\n", None, "the spec is empty: expected a YAML mapping (key: value)"),
        ("# c\nhello\n", 2, "a spec is a YAML mapping (key: value), got text"),
        ("42\n", 1, "a spec is a YAML mapping (key: value), got a single int value"),
        ("\n\n- a\n", 3, "a spec is a YAML mapping (key: value), got a list"),
    ],
)
def test_not_a_mapping(text: str, line: int | None, message: str):
    assert _problems(text) == [(line, "(top level)", message, None)]


def test_invalid_scalars_are_problems_not_crashes():
    text = MINIMAL.replace("owner: data-science", "owner: !!int many").replace("2024-01-01", "2024-02-30")
    assert _problems(text) == [
        (3, "owner", "'many' is not a valid integer", None),
        (5, "schedule.start_date", "'2024-02-30' is not a valid date: day is out of range for month", None),
    ]


def test_merge_keys_are_rejected_and_anchors_allowed():
    text = MINIMAL.replace("owner: data-science", "owner: &team data-science\ndescription: *team")
    assert parse_spec(text).description == "data-science"
    problems = _problems(MINIMAL.replace("owner: data-science", "<<: {owner: data-science}"))
    assert problems[0][:2] == (3, "(top level)")
    assert problems[0][2] == "merge keys and complex keys are not supported in a spec"


def test_missing_file_is_a_spec_error(tmp_path: Path):
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "nope.yaml")
    (problem,) = caught.value.problems
    assert problem.line is None and problem.path == ()
    assert str(problem).startswith(f"{tmp_path / 'nope.yaml'}: cannot read spec: ")


def test_load_spec_names_the_file_as_given(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text(MINIMAL.replace("owner: data-science", "owner: ''"))
    with pytest.raises(SpecError) as caught:
        load_spec(path, display_name="specs/x.yaml")
    assert str(caught.value) == "specs/x.yaml:3: owner: must not be empty"
    assert caught.value.file == "specs/x.yaml"


def test_line_of_path_falls_back_to_the_nearest_parent():
    assert line_of_path(MINIMAL, ("data", "timestamp")) == 8
    assert line_of_path(MINIMAL, ("data", "window")) == 6
    assert line_of_path(MINIMAL, ("model", "params", "C")) == 11
    assert line_of_path("a: [\n", ("a",)) is None
