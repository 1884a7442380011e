"""A challenger judged by an A/B test that stays valid however often monitoring looks.

"Won ``promote_after`` windows in a row" has no error rate: a coin-flip challenger wins three
windows in a row one time in eight. Here each labelled row gives a loss difference
``d = loss(champion) - loss(challenger)`` (positive: the challenger is better): on the same rows
(shadow, paired) or, when each row was served by one model at random (canary), the
inverse-propensity difference ``d = loss * (1[champion] / (1 - p) - 1[challenger] / p)``, whose
mean is the same difference. The running sums of ``d`` feed an asymptotic confidence sequence
(the normal-mixture boundary of Howard et al. 2021 and Waudby-Smith et al. 2023): with
probability ``1 - alpha`` it covers the true mean difference at *every* look, so stopping at the
first look that excludes 0 keeps the false-promotion rate under ``alpha / 2``.

Decision, with a minimum effect ``delta`` worth a change (in loss units):

* promote when the lower bound is above ``delta`` (better by more than ``delta``);
* retire when the upper bound is below ``delta`` (not better by ``delta``: symmetric);
* keep otherwise.

With ``delta = 0`` (the default) a challenger no better than the champion is promoted with
probability at most ``alpha / 2``; with ``delta > 0``, one improving by ``delta`` or less.

Pure arithmetic on running sums (``n``, ``sum``, ``sum of squares``) that a store can keep per
challenger; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PROMOTE, RETIRE, KEEP = "promote", "retire", "keep"
#: The sample size the mixture is tuned to be tightest at (rows); the bound is valid at every n.
DEFAULT_TUNE_N = 10_000


def row_losses(y_true: Any, scores: Any) -> np.ndarray:
    """Per-row loss: Brier score for classification (probability of the positive class), squared
    error for regression; both proper, so the better-calibrated, sharper model has the lower mean."""
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(scores, dtype=float)
    return (s - y) ** 2


def paired_differences(champion_loss: Any, challenger_loss: Any) -> np.ndarray:
    """Shadow: both models scored every row."""
    return np.asarray(champion_loss, dtype=float) - np.asarray(challenger_loss, dtype=float)


def randomized_differences(loss: Any, served_by_challenger: Any, fraction: float) -> np.ndarray:
    """Canary: each row's loss under the model that served it (the challenger with probability
    ``fraction``); the inverse-propensity weights make each row's mean the loss difference."""
    loss = np.asarray(loss, dtype=float)
    on = np.asarray(served_by_challenger, dtype=bool)
    return np.where(on, -loss / fraction, loss / (1.0 - fraction))


def clustered(differences: Any, clusters: Any) -> np.ndarray:
    """Per-group differences, for rows randomized in groups: each group's sum scaled by
    groups/rows, so their mean is still the per-row mean, but their spread is the groups'.

    The canary routes by entity key, so every row of a key takes the same coin flip; counted as
    independent rows, a key's many rows would shrink the interval as if each had its own flip and
    an equal challenger would be promoted far more often than ``alpha`` says.
    """
    d = np.asarray(differences, dtype=float)
    _, group = np.unique(np.asarray(clusters), return_inverse=True)
    sums = np.bincount(group.ravel(), weights=d)
    return sums * (len(sums) / len(d)) if len(d) else sums


def window_evidence(y_true: Any, champion_scores: Any, challenger_scores: Any, *,
                    served_by_challenger: Any = None, fraction: float | None = None,
                    clusters: Any = None) -> Evidence:
    """One window's evidence: paired differences when both models' losses count (shadow), else
    the inverse-propensity ones of the model that served each row (canary: ``served_by_challenger``,
    the challenger serving a row with probability ``fraction``), summed per randomization unit
    when ``clusters`` names it for each row (:func:`clustered`; the canary's entity keys)."""
    champion_loss, challenger_loss = row_losses(y_true, champion_scores), row_losses(y_true, challenger_scores)
    if served_by_challenger is None:
        return Evidence().add(paired_differences(champion_loss, challenger_loss))
    if fraction is None:
        raise ValueError("canary evidence needs the fraction of rows the challenger serves")
    on = np.asarray(served_by_challenger, dtype=bool)
    differences = randomized_differences(np.where(on, challenger_loss, champion_loss), on, fraction)
    return Evidence().add(differences if clusters is None else clustered(differences, clusters))


@dataclass(frozen=True)
class Evidence:
    """Running sums of the per-row differences: what a store keeps between windows."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def add(self, differences: Any) -> Evidence:
        d = np.asarray(differences, dtype=float)
        d = d[np.isfinite(d)]
        return Evidence(self.n + len(d), self.total + float(d.sum()), self.total_sq + float(np.dot(d, d)))

    def __add__(self, other: Evidence) -> Evidence:
        """Pooled evidence of two sets of rows (sums add)."""
        return Evidence(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        if self.n < 2:
            return math.nan
        return max(self.total_sq / self.n - self.mean ** 2, 0.0)


def radius(n: int, variance: float, alpha: float, tune_n: int = DEFAULT_TUNE_N) -> float:
    """Half-width of the two-sided ``1 - alpha`` normal-mixture confidence sequence after ``n`` rows."""
    if n < 2 or not math.isfinite(variance):
        return math.inf
    rho2 = (-2.0 * math.log(alpha) + math.log(-2.0 * math.log(alpha) + 1.0)) / tune_n
    v = n * variance * rho2 + 1.0
    return math.sqrt(2.0 * v / (n * n * rho2) * math.log(math.sqrt(v) / alpha))


@dataclass(frozen=True)
class SequentialVerdict:
    action: str
    mean: float
    lower: float
    upper: float
    n: int
    alpha: float
    min_effect: float
    reason: str
    windows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(evidence: Evidence, *, alpha: float = 0.05, min_effect: float = 0.0, min_rows: int = 100,
           windows: int = 0, min_windows: int = 0, tune_n: int = DEFAULT_TUNE_N) -> SequentialVerdict:
    """Promote, retire or keep the challenger on the evidence so far (see the module docstring).

    ``windows``: how many monitoring windows the evidence comes from; before ``min_windows`` of
    them the verdict is keep whatever the bounds (one odd week does not change the champion;
    waiting only makes the test more careful, it stays valid)."""
    mean = evidence.mean
    half = radius(evidence.n, evidence.variance, alpha, tune_n) if evidence.n >= min_rows else math.inf
    lower, upper = mean - half, mean + half
    interval = f"loss difference {mean:.5g} in [{lower:.5g}, {upper:.5g}] ({1 - alpha:.0%}, {evidence.n} rows)"
    if lower > min_effect:
        action, why = PROMOTE, f"challenger better by more than {min_effect:g}: {interval}"
    elif upper < min_effect:
        action, why = RETIRE, f"challenger not better by {min_effect:g}: {interval}"
    else:
        action, why = KEEP, f"undecided: {interval}" if evidence.n >= min_rows else f"{evidence.n} rows so far"
    if windows:
        why = f"{why} over {windows} window(s)"
    if action != KEEP and windows < min_windows:
        action, why = KEEP, f"{why}; would {action} but waits for {min_windows} windows"
    return SequentialVerdict(action, mean, lower, upper, evidence.n, alpha, min_effect, why, windows)


__all__ = ["KEEP", "PROMOTE", "RETIRE", "Evidence", "SequentialVerdict", "clustered", "decide", "paired_differences",
           "radius", "randomized_differences", "row_losses", "window_evidence"]
