"""CBPE (:mod:`ctflow.core.monitoring.estimate`) on labels drawn from the scores themselves, and
DLE (:mod:`ctflow.core.monitoring.estimate_loss`) on a regression whose noise is known.

When labels are Bernoulli draws of the model's scores, the model is calibrated by construction,
so the estimate made without labels must land near the metric computed with them, for every
estimated metric and several score distributions; and it must follow a shift of the scores.
When a regression's labels are its true mean plus noise that grows with a feature, the model that
predicts the true mean errs more where that feature is high: a window moved there must get a
worse estimate, near the error realized once its labels are drawn.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from ctflow.core.evaluation import compute_metrics
from ctflow.core.monitoring.estimate import ESTIMATORS, Reference, estimate_window, needs_calibration
from ctflow.core.monitoring.estimate_loss import LOSSES, MIN_ROWS, LossReference
from ctflow.spec.catalog import higher_is_better

SHAPES = [(2, 5), (1, 1), (0.5, 3)]


def _calibrated(rng: np.random.Generator, shape: tuple[float, float], rows: int) -> tuple[np.ndarray, np.ndarray]:
    scores = rng.beta(*shape, rows)
    return scores, (rng.random(rows) < scores).astype(float)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("metric", sorted(ESTIMATORS))
def test_the_estimate_of_a_calibrated_model_is_its_realized_metric(metric, shape):
    rng = np.random.default_rng(zlib.crc32(repr((metric, shape)).encode()))
    reference = Reference.fit(metric, *_calibrated(rng, shape, 20_000), threshold=0.4)
    scores, labels = _calibrated(rng, shape, 5_000)
    realized = compute_metrics("classification", labels, scores, threshold=0.4)[metric]
    estimate = estimate_window(reference, scores, higher_is_better=higher_is_better("classification", metric))
    # The estimate is an expectation over the labels; the realized metric is one draw of them.
    # Its spread over draws, measured here, bounds how far the two may be apart.
    draws = [compute_metrics("classification", (rng.random(len(scores)) < scores).astype(float), scores,
                             threshold=0.4)[metric] for _ in range(20)]
    assert abs(estimate.value - realized) <= 4 * np.std(draws) + 1e-3
    # Around the mean of the draws, up to the calibration's own noise when one was fitted (20,000 rows).
    assert abs(estimate.value - np.mean(draws)) <= (2 if estimate.calibrated else 1) * np.std(draws) + 1e-3
    assert estimate.drop is None  # same distribution as the reference: no significant drop


def test_a_miscalibrated_model_is_calibrated_on_the_reference_first():
    rng = np.random.default_rng(7)
    truth, labels = _calibrated(rng, (2, 5), 20_000)
    squashed = truth**3  # same ranking, far too low probabilities
    assert needs_calibration(squashed, labels) and not needs_calibration(truth, labels)
    reference = Reference.fit("accuracy", squashed, labels)
    window_truth, window_labels = _calibrated(rng, (2, 5), 5_000)
    realized = compute_metrics("classification", window_labels, window_truth**3)["accuracy"]
    raw = ESTIMATORS["accuracy"][0](window_truth**3, window_truth**3, 0.5)  # trusting the scores as they are
    estimate = estimate_window(reference, window_truth**3, higher_is_better=True)
    assert estimate.calibrated and abs(estimate.value - realized) < 0.02 < abs(raw - realized)


def test_the_estimate_follows_a_shift_of_the_scores_and_a_big_drop_is_significant():
    rng = np.random.default_rng(11)
    reference = Reference.fit("roc_auc", *_calibrated(rng, (2, 5), 20_000))
    same = estimate_window(reference, rng.beta(2, 5, 5_000), higher_is_better=True)
    # Scores bunched in the middle: the model no longer separates the classes (if calibrated).
    bunched_scores, bunched_labels = _calibrated(rng, (30, 30), 5_000)
    bunched = estimate_window(reference, bunched_scores, higher_is_better=True)
    assert same.drop is None and abs(same.value - same.reference) < same.band
    assert bunched.value < same.value - 0.1
    assert abs(bunched.value - compute_metrics("classification", bunched_labels, bunched_scores)["roc_auc"]) < 0.03
    assert bunched.drop is not None and "below the reference's" in bunched.drop
    # Spread shrinks with the window's rows: a bigger window has a narrower band.
    assert reference.band(20_000) < reference.band(2_000)


def test_no_band_from_a_reference_too_small_to_measure_its_spread():
    rng = np.random.default_rng(3)
    reference = Reference.fit("roc_auc", *_calibrated(rng, (2, 5), 300))
    estimate = estimate_window(reference, rng.beta(2, 5, 1_000), higher_is_better=True)
    assert estimate.value is not None and estimate.band is None and estimate.drop is None


def test_a_metric_without_an_estimate_is_refused_by_name():
    with pytest.raises(ValueError, match="no performance estimate for 'rmse'"):
        Reference.fit("rmse", [0.1, 0.9], [0.0, 1.0])



def test_without_a_floor_a_drop_the_labels_confirm_is_a_realized_breach():
    """The replay scores the estimate's breaches against the realized ones (early, false alarm,
    missed). Without ``monitoring.performance`` a realized breach is the estimate's rule on the
    realized metric: worse than the reference's own by more than the band of realized metrics over
    the reference's chunks (it was never one: every estimated drop counted as a false alarm,
    however far the labels dropped too)."""
    from ctflow.core.monitoring.estimated import fit_reference, judge_window, realized_breach
    from ctflow.core.replay import override_spec
    from ctflow.spec import load_spec
    from tests.conftest import PROJECT

    spec = override_spec(load_spec(PROJECT / "dags" / "specs" / "flight_delay.yaml"), {"monitoring.performance": None})
    rng = np.random.default_rng(5)
    reference = fit_reference(spec, *_calibrated(rng, (2, 5), 20_000), threshold=0.5)

    def judged(scores: np.ndarray, labels: np.ndarray) -> tuple[str | None, str | None]:
        estimated = judge_window(spec, reference, scores, version=1, window_start=None, window_end=None)
        realized = compute_metrics("classification", labels, scores)[estimated["metric"]]
        return estimated["breach"], realized_breach(spec, reference, realized, len(scores))

    # Scores as in the reference, labels drawn from them, in 20 windows: the labels' chance alone
    # breaches no more often than the estimate's band allows (3 standard deviations).
    assert [judged(*_calibrated(rng, (2, 5), 5_000)) for _ in range(20)] == [(None, None)] * 20
    # The scores still look the same, but the labels no longer follow them: the estimate cannot
    # see it, the labels can.
    estimated, realized = judged(rng.beta(2, 5, 5_000), (rng.random(5_000) < 0.3).astype(float))
    assert estimated is None and realized is not None
    assert realized.startswith("realized ") and "below the reference's" in realized
    # Scores bunched in the middle, labels drawn from them: the estimate drops, and so do the labels.
    estimated, realized = judged(*_calibrated(rng, (30, 30), 5_000))
    assert estimated is not None and realized is not None
    # Without the reference (the estimate had none), only the bounds can breach: none here.
    assert realized_breach(spec, None, 0.1, 5_000) is None


# --------------------------------------------------------------------------- regression (DLE)


def _regression(rng: np.random.Generator, rows: int, shape: tuple[float, float],
                offset: float = 0.0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features, the model's predictions (the true mean) and the noise's standard deviation, which
    grows with ``x``: ``x ~ Beta(shape)`` decides where the rows lie, so how much the model errs."""
    x, z, kind = rng.beta(*shape, rows), rng.normal(size=rows), rng.choice(["a", "b", "c"], rows)
    return pd.DataFrame({"x": x, "z": z, "kind": kind}), offset + 3 * x + z + (kind == "b"), 0.2 + 2 * x**2


def _labels(rng: np.random.Generator, mean: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return mean + rng.normal(size=len(mean)) * noise


def _realized(metric: str, labels: np.ndarray, scores: np.ndarray) -> float:
    return compute_metrics("regression", labels, scores)[metric]


# mape on labels kept away from 0, where a percentage error is a steady quantity.
REGRESSION = [("mae", 0.0), ("rmse", 0.0), ("mape", 10.0)]


@pytest.mark.parametrize(("metric", "offset"), REGRESSION)
def test_the_loss_estimate_tracks_the_realized_error_where_the_window_moves(metric, offset):
    rng = np.random.default_rng(zlib.crc32(metric.encode()))
    features, scores, noise = _regression(rng, 5_000, (1, 3), offset)
    reference = LossReference.fit(metric, scores, labels := _labels(rng, scores, noise), features)
    assert reference.own_estimate() == pytest.approx(_realized(metric, labels, scores), rel=0.05)
    for shape, moved in (((1, 3), False), ((1, 3), False), ((2, 2), True), ((2, 2), True)):
        features, scores, noise = _regression(rng, 2_000, shape, offset)
        estimate = estimate_window(reference, scores, features=features, higher_is_better=False)
        # The estimate is an expectation over the labels; the realized metric is one draw of them.
        # The mean of many draws is the truth it is judged against.
        draws = [_realized(metric, _labels(rng, scores, noise), scores) for _ in range(50)]
        truth = float(np.mean(draws))
        assert estimate.method == "DLE" and not estimate.calibrated
        if not moved:  # drawn as the reference: its error, and no drop
            assert estimate.value == pytest.approx(truth, rel=0.05) and estimate.drop is None
        else:
            # Into the region where the noise is large and the reference thinner (its trees extend
            # their last leaves, so the estimate falls somewhat short), far above the reference's.
            assert estimate.value == pytest.approx(truth, rel=0.10)
            assert estimate.value - estimate.reference > 0.75 * (truth - estimate.reference) > 0
            assert estimate.drop is not None and "above the reference's" in estimate.drop


def test_the_reference_s_own_loss_estimate_is_cross_fitted_not_optimistic():
    """Fitted on a reference's rows, a loss model predicts those rows' losses too well; each row's
    loss predicted by a model that never saw it is what a new window from the same rows gets."""
    rng = np.random.default_rng(23)
    features, scores, noise = _regression(rng, 3_000, (2, 2))
    reference = LossReference.fit("rmse", scores, labels := _labels(rng, scores, noise), features)
    inputs = reference.encoding.matrix(features, scores)
    in_sample = float(np.sqrt(np.clip(reference.model.predict(inputs), 0, None).mean()))
    realized = _realized("rmse", labels, scores)
    assert reference.own_estimate() == pytest.approx(realized, rel=0.05)
    # A new window's category the reference never saw is read as missing, not refused.
    window, window_scores, _ = _regression(rng, 500, (2, 2))
    window["kind"] = window["kind"].replace("c", "unseen")
    assert reference.estimate(window_scores, window) is not None
    assert in_sample != reference.own_estimate()


def test_a_small_holdout_or_a_metric_without_a_mean_loss_gets_no_loss_estimate():
    rng = np.random.default_rng(5)
    features, scores, noise = _regression(rng, MIN_ROWS - 1, (1, 3))
    labels = _labels(rng, scores, noise)
    with pytest.raises(ValueError, match=f"has {MIN_ROWS - 1} rows < {MIN_ROWS}, too few to fit a loss model"):
        LossReference.fit("mae", scores, labels, features)
    with pytest.raises(ValueError, match="no performance estimate for 'r2'; estimated: mae, rmse, mape"):
        LossReference.fit("r2", scores, labels, features)
    assert set(LOSSES) == {"mae", "rmse", "mape"}
