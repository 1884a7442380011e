"""The spec models: defaults for the common case, strictness, durations, invariants."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from ctflow.spec import PipelineSpec, load_spec
from ctflow.spec.durations import format_duration, parse_duration
from ctflow.spec.models import Bound, Data, Label, Registry, Runner, Schedule

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOOD = FIXTURES / "good_specs"
REFERENCE = Path(__file__).resolve().parents[2] / "dags" / "specs" / "flight_delay.yaml"


@pytest.fixture(scope="module")
def minimal() -> PipelineSpec:
    return load_spec(GOOD / "minimal.yaml")


def test_minimal_spec_is_short_and_names_only_the_required_sections():
    text = (GOOD / "minimal.yaml").read_text()
    keys = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(keys) <= 15, "the minimal spec should stay short"
    top_level = {line.split(":", 1)[0] for line in keys if not line.startswith(" ")}
    assert top_level == {"pipeline", "owner", "schedule", "data", "model", "evaluation"}
    required = {name for name, field in PipelineSpec.model_fields.items() if field.is_required()}
    assert required == top_level


def test_minimal_spec_gets_the_documented_defaults(minimal: PipelineSpec):
    s = minimal
    assert (s.pipeline, s.ct_dag_id, s.monitor_dag_id) == ("minimal", "ct_minimal", "monitor_minimal")
    assert s.description == "" and s.tags == []
    # schedule
    assert (s.schedule.train, s.schedule.monitor) == ("@weekly", "@daily")
    assert s.schedule.start_date == date(2024, 1, 1) and s.schedule.end_date is None
    assert s.schedule.catchup is False and s.schedule.timezone == "UTC"
    assert s.schedule.retrain_on == ["drift", "performance"]
    assert s.schedule.after == [] and s.schedule.assets == []
    # data: "label: churned" is shorthand for {column: churned}
    assert s.data.label == Label(column="churned") and s.data.label.comparison is None
    assert s.data.columns == []
    assert (s.data.window, s.data.holdout) == (timedelta(days=90), timedelta(days=14))
    # quality
    assert (s.quality.min_rows, s.quality.max_missing_fraction) == (1000, 0.05)
    assert s.quality.max_missing == {} and s.quality.ranges == {}
    assert s.quality.max_staleness is None and s.quality.label_balance is None
    # model
    assert s.model.params == {} and s.model.categorical == [] and s.model.exclude == []
    assert s.model.seed == 42
    p = s.model.preprocessing
    assert (p.impute, p.scale, p.encode, p.max_categories) == ("auto", "auto", "auto", 30)
    # evaluation
    assert s.evaluation.thresholds == {} and s.evaluation.slices == []
    assert s.evaluation.versus_champion.enabled is True and s.evaluation.versus_champion.min_improvement == 0.0
    assert s.evaluation.min_slice_rows == 200
    # registry: the model is registered under the pipeline name
    r = s.registry
    assert (r.model, r.strategy, r.approval, r.canary_fraction, r.promote_after) == (None, "direct", "auto", 0.1, 3)
    assert (r.challenger_test, r.alpha, r.min_effect) == ("sequential", 0.05, 0.0)
    assert s.model_name == "minimal"
    # monitoring
    m = s.monitoring
    assert (m.reference, m.window, m.ground_truth_delay) == ("champion_training_data", timedelta(days=1), None)
    assert (s.data.label.available_after, s.data.label.available_at, s.label_available_after) == (None, None, None)
    assert (m.drift.method, m.drift.threshold, m.drift.max_drifted_share, m.drift.columns) == ("auto", None, 0.3, None)
    assert m.prediction_drift.max_drifted_share == 1.0
    assert m.performance is None and m.alerts == ["log"]
    # runner and task defaults
    assert (s.runner.kind, s.runner.image) == ("in_process", None)
    assert (s.defaults.retries, s.defaults.retry_delay, s.defaults.task_timeout) == (
        2,
        timedelta(minutes=2),
        timedelta(hours=1),
    )
    assert set(s.metrics) >= {"roc_auc", "log_loss"} and s.metrics["log_loss"] is False


def test_default_sections_are_not_shared_between_specs(minimal: PipelineSpec):
    other = load_spec(GOOD / "churn.yaml")
    assert minimal.schedule.retrain_on is not other.schedule.retrain_on
    assert minimal.monitoring.alerts is not load_spec(GOOD / "minimal.yaml").monitoring.alerts


def test_reference_spec_loads_with_its_values():
    spec = load_spec(REFERENCE)
    assert spec.pipeline == "flight_delay"
    assert spec.data.label.comparison == (">", 15.0)
    assert (spec.data.window, spec.data.holdout) == (timedelta(days=60), timedelta(days=14))
    assert spec.model.params == {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31}
    assert spec.evaluation.thresholds["roc_auc"] == Bound(min=0.65)
    assert spec.quality.max_staleness == timedelta(days=2)


def test_spec_round_trips_through_json():
    spec = load_spec(REFERENCE)
    dumped = spec.model_dump(mode="json")
    assert dumped["data"]["window"] == "60d" and dumped["monitoring"]["window"] == "7d"
    assert dumped["schedule"]["start_date"] == "2013-02-01"
    assert PipelineSpec.model_validate(dumped) == spec


def test_specs_are_immutable(minimal: PipelineSpec):
    with pytest.raises(ValidationError):
        minimal.owner = "someone-else"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        minimal.data.window = timedelta(days=1)  # type: ignore[misc]


def test_the_challenger_test_takes_a_known_rule_and_a_sound_alpha():
    assert Registry.model_validate({"challenger_test": "streak", "promote_after": 2}).challenger_test == "streak"
    with pytest.raises(ValidationError, match="'sequential' or 'streak'"):
        Registry.model_validate({"challenger_test": "bayes"})
    with pytest.raises(ValidationError, match="less than 0.5"):
        Registry.model_validate({"alpha": 0.5})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Registry.model_validate({"min_effect": -0.01})
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        Registry.model_validate({"confidence": 0.95})


def test_unknown_keys_are_errors_in_nested_models_too():
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        Schedule.model_validate({"start_date": "2024-01-01", "cron": "@daily"})
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        Bound.model_validate({"min": 0.1, "minimum": 0.2})


@pytest.mark.parametrize(
    ("text", "expected"),
    [(">= 0.5", (">=", 0.5)), ("<=-2.5", ("<=", -2.5)), ("== 1", ("==", 1.0)), (" != 0 ", ("!=", 0.0)), ("< 3", ("<", 3.0))],
)
def test_label_comparison(text: str, expected: tuple[str, float]):
    assert Label(column="y", positive_when=text).comparison == expected


@pytest.mark.parametrize("text", ["15", "> fifteen", "=> 15", "> 15 and < 20", "between 1 and 2"])
def test_label_comparison_rejects_anything_else(text: str):
    with pytest.raises(ValidationError, match="expected a comparison"):
        Label(column="y", positive_when=text)


# --- invariants hold when models are built in code too, not only from files


def _data(**overrides) -> dict:
    return {"entities": "e.parquet", "timestamp": "ts", "label": "y", "features": "fs", **overrides}


def test_holdout_must_be_shorter_than_window_also_with_the_default_holdout():
    assert Data.model_validate(_data(window="15d")).holdout == timedelta(days=14)
    with pytest.raises(ValidationError, match=r"holdout \(14d\) must be shorter than window \(14d\)") as caught:
        Data.model_validate(_data(window="14d"))
    assert caught.value.errors()[0]["loc"] == ("holdout",)
    with pytest.raises(ValidationError, match=r"holdout \(100d\) must be shorter than window \(90d\)"):
        Data.model_validate(_data(holdout="100d"))


def test_end_date_must_follow_start_date():
    assert Schedule(start_date=date(2024, 1, 1), end_date=date(2024, 1, 2)).end_date == date(2024, 1, 2)
    with pytest.raises(ValidationError, match="end_date 2024-01-01 must be after start_date 2024-01-01") as caught:
        Schedule(start_date=date(2024, 1, 1), end_date=date(2024, 1, 1))
    assert caught.value.errors()[0]["loc"] == ("end_date",)


def test_bounds_and_runner():
    assert Bound(min=0.5, max=0.5) == Bound(min=0.5, max=0.5)
    with pytest.raises(ValidationError, match="min 0.9 is greater than max 0.5"):
        Bound(min=0.9, max=0.5)
    with pytest.raises(ValidationError, match="give min, max or both"):
        Bound()
    assert Runner(kind="docker", image="img:1").image == "img:1"
    with pytest.raises(ValidationError, match="runner.kind docker needs runner.image"):
        Runner(kind="docker")


# --- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("2w", timedelta(weeks=2)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 1d 12h ", timedelta(days=1, hours=12)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("1d1d", timedelta(days=2)),
    ],
)
def test_parse_duration(text: str, expected: timedelta):
    assert parse_duration(text) == expected


def test_parse_duration_passes_timedeltas_through():
    assert parse_duration(timedelta(hours=3)) == timedelta(hours=3)


@pytest.mark.parametrize("value", ["", "90", "d", "1x", "3 months", "1.5d", "-1d", "90d!", 90, 1.5, True, None, ["1d"]])
def test_parse_duration_rejects(value: object):
    with pytest.raises(ValueError, match="expected a duration such as '90d'"):
        parse_duration(value)


@pytest.mark.parametrize("value", ["0d", "0s", "0h0m"])
def test_parse_duration_rejects_zero(value: str):
    with pytest.raises(ValueError, match="expected a positive duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(days=90), "90d"),
        (timedelta(weeks=2), "14d"),
        (timedelta(days=1, hours=12), "1d12h"),
        (timedelta(minutes=2), "2m"),
        (timedelta(hours=1, seconds=1), "1h1s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_duration(duration: timedelta, text: str):
    assert format_duration(duration) == text


@pytest.mark.parametrize("text", ["90d", "1d12h", "2m", "1h1s", "3d4h5m6s", "59s"])
def test_duration_round_trip_of_canonical_spellings(text: str):
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("text", ["2w", "36h", "90m", "1w1d", "7200s", " 1d 12h "])
def test_duration_round_trip_of_other_spellings(text: str):
    duration = parse_duration(text)
    assert parse_duration(format_duration(duration)) == duration


def test_decision_threshold_defaults_to_one_half_for_classifiers_and_is_refused_for_regression():
    from ctflow.spec.models import Model

    classifier = {"task": "classification", "estimator": "sklearn.linear_model.LogisticRegression"}
    assert Model.model_validate(classifier).threshold == 0.5
    assert Model.model_validate({**classifier, "decision_threshold": 0.3}).threshold == 0.3
    with pytest.raises(ValidationError, match="less than 1"):
        Model.model_validate({**classifier, "decision_threshold": 1})
    regressor = {"task": "regression", "estimator": "sklearn.linear_model.Ridge"}
    assert Model.model_validate(regressor).threshold is None
    with pytest.raises(ValidationError, match="decision_threshold applies to classification, not to task 'regression'"):
        Model.model_validate({**regressor, "decision_threshold": 0.5})


def test_a_decision_threshold_rule_names_its_target_when_it_needs_one():
    from ctflow.spec.models import Model, ThresholdRule

    classifier = {"task": "classification", "estimator": "sklearn.linear_model.LogisticRegression"}
    rule = Model.model_validate({**classifier, "decision_threshold": {"rule": "precision_at", "target": 0.8}})
    assert rule.decision_threshold == ThresholdRule(rule="precision_at", target=0.8)
    assert rule.threshold == 0.5  # until the fit chooses one
    assert Model.model_validate({**classifier, "decision_threshold": {"rule": "max_f1"}}).threshold == 0.5
    with pytest.raises(ValidationError, match="rule recall_at needs a target"):
        Model.model_validate({**classifier, "decision_threshold": {"rule": "recall_at"}})
    with pytest.raises(ValidationError, match="rule max_f1 takes no target"):
        Model.model_validate({**classifier, "decision_threshold": {"rule": "max_f1", "target": 0.5}})
