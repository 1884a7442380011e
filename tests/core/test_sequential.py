"""The challenger's sequential A/B test: valid under repeated looks, and it finds a better model."""

from __future__ import annotations

import numpy as np
import pytest

from ctflow.core.monitoring.sequential import (
    KEEP,
    PROMOTE,
    RETIRE,
    Evidence,
    decide,
    paired_differences,
    radius,
    randomized_differences,
    row_losses,
)


def _window(rng: np.random.Generator, rows: int, challenger_noise: float, champion_noise: float = 1.0):
    """Labels from a logistic signal; each model predicts from the signal plus its own noise."""
    x = rng.standard_normal(rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(1.4 - x))).astype(float)

    def model(noise: float) -> np.ndarray:
        seen = x + noise * rng.standard_normal(rows)
        return 1 / (1 + np.exp(1.4 - seen / (1 + noise ** 2)))

    return y, model(champion_noise), model(challenger_noise)


def _run(rng: np.random.Generator, challenger_noise: float, *, canary: bool, windows: int = 15, rows: int = 1000):
    evidence = Evidence()
    for w in range(1, windows + 1):
        y, a, b = _window(rng, rows, challenger_noise)
        if canary:
            on = rng.random(rows) < 0.1
            d = randomized_differences(row_losses(y, np.where(on, b, a)), on, 0.1)
        else:
            d = paired_differences(row_losses(y, a), row_losses(y, b))
        verdict = decide(evidence := evidence.add(d))
        if verdict.action != KEEP:
            return verdict.action, w
    return KEEP, windows


def test_an_equal_challenger_is_promoted_under_alpha_despite_looking_every_window():
    rng = np.random.default_rng(11)
    for canary in (False, True):
        outcomes = [_run(rng, 1.0, canary=canary)[0] for _ in range(60)]
        assert outcomes.count(PROMOTE) / len(outcomes) <= 0.05


def test_a_clearly_better_challenger_is_promoted_and_a_clearly_worse_one_retired():
    rng = np.random.default_rng(3)
    assert _run(rng, 0.3, canary=False)[0] == PROMOTE
    assert _run(rng, 0.3, canary=True, windows=40)[0] == PROMOTE
    assert _run(rng, 2.5, canary=False)[0] == RETIRE


def test_the_randomized_difference_estimates_the_paired_one():
    rng = np.random.default_rng(5)
    y, a, b = _window(rng, 400_000, 0.5)
    paired = paired_differences(row_losses(y, a), row_losses(y, b)).mean()
    on = rng.random(len(y)) < 0.1
    randomized = randomized_differences(row_losses(y, np.where(on, b, a)), on, 0.1)
    standard_error = randomized.std() / np.sqrt(len(randomized))
    assert paired > 0 and abs(randomized.mean() - paired) < 4 * standard_error  # unbiased, only noisier


def test_the_boundary_shrinks_with_rows_and_a_minimum_effect_retires_a_tiny_gain():
    assert radius(1_000, 1.0, 0.05) > radius(100_000, 1.0, 0.05) > 0
    tiny = Evidence().add(np.random.default_rng(2).normal(0.001, 0.05, 200_000))
    assert decide(tiny).action == PROMOTE
    assert decide(tiny, min_effect=0.01).action == RETIRE
    assert decide(Evidence().add([0.5] * 50)).action == KEEP  # fewer rows than min_rows


def test_rows_randomized_by_key_count_as_one_unit_per_key():
    """The canary routes by entity key: rows of one key share a coin flip, so the evidence must be
    one unit per key (its mean unchanged), or an equal challenger would be promoted far above alpha."""
    from ctflow.core.monitoring.sequential import clustered, window_evidence

    rng = np.random.default_rng(7)
    false_promotions = {"rows": 0, "keys": 0}
    for _ in range(200):
        keys = np.repeat(np.arange(60), 50)  # 60 keys of 50 rows, a new draw of keys each run
        hardness = rng.uniform(0.05, 0.6, 60)[keys]  # some keys are harder for every model
        y = (rng.random(len(keys)) < hardness).astype(float)
        scores = np.clip(hardness + 0.05 * rng.standard_normal(len(keys)), 0.01, 0.99)
        on = (rng.random(60) < 0.3)[keys]  # A/A: the same model on both sides
        by_row = window_evidence(y, scores, scores, served_by_challenger=on, fraction=0.3)
        by_key = window_evidence(y, scores, scores, served_by_challenger=on, fraction=0.3, clusters=keys)
        assert by_key.n == 60 and by_row.n == len(keys)
        assert by_key.mean == pytest.approx(by_row.mean)  # same estimate, honest spread
        false_promotions["rows"] += decide(by_row, min_rows=10).action == PROMOTE
        false_promotions["keys"] += decide(by_key, min_rows=10).action == PROMOTE
    assert false_promotions["keys"] / 200 < 0.05
    assert false_promotions["rows"] > 2 * max(false_promotions["keys"], 1)  # what counting rows did
    d = np.array([1.0, 3.0, 2.0, 2.0])
    assert clustered(d, ["a", "b", "a", "b"]).tolist() == [1.5, 2.5]  # sums 3 and 5, times 2 groups / 4 rows
