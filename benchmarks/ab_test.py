"""Simulated A/B tests of a challenger: false promotions (A/A) and power (+0.01 AUC).

Compares the sequential test of ``ctflow.core.monitoring.sequential``, as monitoring applies it
(``registry.challenger_test: sequential``: each window's loss differences from ``window_evidence``,
pooled, decided by ``decide`` no earlier than ``promote_after`` windows), with the streak rule
(``challenger_test: streak``: won ``promote_after`` windows in a row), on the same simulated windows.

    uv run --frozen python benchmarks/ab_test.py [--runs 200] [--windows 26] [--rows 2000]

Each row: a signal x ~ N(0, 1), a label y ~ Bernoulli(sigmoid(-1.4 + x)); a model sees x through
independent noise of its own (more noise: lower AUC) and predicts the calibrated probability
E[y | what it sees]. Shadow scores both models on every row; canary serves the challenger on a
random 10% of rows (each row's loss known for its serving model only).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from ctflow.core.monitoring.sequential import (
    PROMOTE,
    RETIRE,
    Evidence,
    decide,
    window_evidence,
)

BASE = -1.4


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _model(x: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Calibrated probability given x + noise (the posterior mean of x, probit-approximated)."""
    seen = x + noise * rng.standard_normal(len(x))
    shrink = 1.0 / (1.0 + noise ** 2)  # E[x | seen] = shrink * seen, Var = shrink * noise^2
    mean, var = shrink * seen, shrink * noise ** 2
    return _sigmoid((BASE + mean) / np.sqrt(1.0 + np.pi * var / 8.0))


def _window(rows: int, champion_noise: float, challenger_noise: float, rng: np.random.Generator):
    x = rng.standard_normal(rows)
    y = (rng.random(rows) < _sigmoid(BASE + x)).astype(float)
    return y, _model(x, champion_noise, rng), _model(x, challenger_noise, rng)


def _noise_for_auc_gain(champion_noise: float, gain: float, rng: np.random.Generator) -> tuple[float, float]:
    """The challenger noise whose AUC is ``gain`` above the champion's (on 400k rows)."""
    y, a, _ = _window(400_000, champion_noise, champion_noise, rng)
    base = roc_auc_score(y, a)
    low, high = 0.0, champion_noise
    for _ in range(30):
        mid = (low + high) / 2
        y, _, b = _window(400_000, champion_noise, mid, rng)
        if roc_auc_score(y, b) - base > gain:
            low = mid
        else:
            high = mid
    return base, (low + high) / 2


def simulate(mode: str, runs: int, windows: int, rows: int, champion_noise: float, challenger_noise: float,
             seed: int, fraction: float = 0.1, promote_after: int = 3) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    seq_promoted, seq_retired, seq_when, streak_promoted, streak_when = 0, 0, [], 0, []
    for _ in range(runs):
        evidence, streak, seq_done, streak_done = Evidence(), 0, False, False
        for w in range(1, windows + 1):
            y, a, b = _window(rows, champion_noise, challenger_noise, rng)
            if mode == "shadow":
                window = window_evidence(y, a, b)
                won = roc_auc_score(y, b) > roc_auc_score(y, a)
            else:
                on = rng.random(rows) < fraction
                window = window_evidence(y, a, b, served_by_challenger=on, fraction=fraction)
                won = roc_auc_score(y[on], b[on]) > roc_auc_score(y[~on], a[~on])
            if not seq_done:
                evidence += window  # as the store's per-window sums add up
                verdict = decide(evidence, windows=w, min_windows=promote_after)
                if verdict.action in (PROMOTE, RETIRE):
                    seq_done = True
                    seq_promoted += verdict.action == PROMOTE
                    seq_retired += verdict.action == RETIRE
                    if verdict.action == PROMOTE:
                        seq_when.append(w)
            if not streak_done:
                streak = streak + 1 if won else 0
                if streak >= promote_after:
                    streak_done, streak_promoted = True, streak_promoted + 1
                    streak_when.append(w)
    return {"sequential promoted": seq_promoted / runs, "sequential retired": seq_retired / runs,
            "sequential median windows": float(np.median(seq_when)) if seq_when else float("nan"),
            "streak promoted": streak_promoted / runs,
            "streak median windows": float(np.median(streak_when)) if streak_when else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--windows", type=int, default=26)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    champion_noise = 1.2
    base_auc, better = _noise_for_auc_gain(champion_noise, 0.01, rng)
    print(f"champion AUC {base_auc:.4f}; challenger noise {better:.3f} for +0.01 AUC; "
          f"{args.runs} runs x {args.windows} windows x {args.rows} rows")
    print("| scenario | mode | sequential: promoted | retired | median windows to promotion "
          "| streak (3 wins): promoted | median windows |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for scenario, noise in (("A/A (equal)", champion_noise), ("+0.01 AUC", better)):
        for mode in ("shadow", "canary"):
            started = time.perf_counter()
            r = simulate(mode, args.runs, args.windows, args.rows, champion_noise, noise, seed=args.seed)
            print(f"| {scenario} | {mode} | {r['sequential promoted']:.1%} | {r['sequential retired']:.1%} "
                  f"| {r['sequential median windows']:g} | {r['streak promoted']:.1%} "
                  f"| {r['streak median windows']:g} |  <!-- {time.perf_counter() - started:.0f} s -->")


if __name__ == "__main__":
    main()
