"""Calibrated drift: is this window's statistic unusual for a window of its length?

A raw test on tens of thousands of rows calls every real-world column drifted: weather, prices
and rolling statistics move from week to week by design. Calibration asks instead how much
windows of the monitoring window's length vary *within the reference*: at training, the
reference rows are cut into consecutive sub-windows of that length, each is compared with the
rest of the reference by the column's method, and the statistics (the empirical null) are saved
in the reference profile. At monitoring a column drifts when its statistic is beyond the null's
``quantile``, so monitoring still reads only the new window. Sub-windows overlap (one starts every
quarter window) so that a reference of a few windows still gives a null of a couple dozen values.

Statistics are compared as *surprise*: the method's statistic (KS distance, chi-squared, ``|z|``,
PSI, Wasserstein, Jensen-Shannon), never the p-value: on tens of thousands of rows the p-values of
ordinary weeks underflow to 0, so they cannot tell an ordinary week from an unusual one, while the
statistics of windows of equal length stay comparable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

#: Fewer reference sub-windows than this say too little about the null: the column stays raw.
MIN_WINDOWS = 3
#: At most this many sub-windows (evenly spread) are measured: the cost is one profile of the rest each.
MAX_WINDOWS = 24
#: Sub-windows start every 1/STRIDES_PER_WINDOW of a window.
STRIDES_PER_WINDOW = 4


@dataclass(frozen=True)
class Null:
    """One column's empirical null: the surprise of each reference sub-window of ``window_seconds``."""

    method: str
    window_seconds: float
    values: tuple[float, ...]

    def limit(self, quantile: float) -> float:
        """The surprise above which a window is unusual."""
        return float(np.quantile(np.asarray(self.values), quantile))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "window_seconds": self.window_seconds, "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Null:
        return cls(str(data["method"]), float(data["window_seconds"]), tuple(float(v) for v in data["values"]))


def surprise(method: str, statistic: float) -> float:
    """Larger is more drift: the statistic (``|z|`` for the signed z-test)."""
    return abs(float(statistic)) if method == "z" else float(statistic)


def window_slices(times: np.ndarray, window: timedelta) -> list[np.ndarray]:
    """Row indices of ``window``-long sub-windows of ``times`` (datetime64), starting every quarter
    window (overlapping: more of them make the null's upper quantiles less coarse), at most
    :data:`MAX_WINDOWS` evenly spread; none when fewer than :data:`MIN_WINDOWS` whole windows fit."""
    if not len(times):
        return []
    ns = np.asarray(times, dtype="datetime64[ns]").astype(np.int64)
    width = int(window.total_seconds() * 1e9)
    start, end = int(ns.min()), int(ns.max())
    if width <= 0 or (end - start) // width < MIN_WINDOWS:
        return []
    stride = max(width // STRIDES_PER_WINDOW, 1)
    starts = np.arange(start, end - width + 1, stride)
    chosen = starts[np.unique(np.linspace(0, len(starts) - 1, min(len(starts), MAX_WINDOWS)).round().astype(int))]
    order = np.argsort(ns, kind="stable")
    ordered = ns[order]
    return [order[np.searchsorted(ordered, s): np.searchsorted(ordered, s + width)] for s in chosen]


def rest_pairs(times: np.ndarray, window: timedelta) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(rest, sub-window)`` row indices for each of :func:`window_slices`: data drift compares a
    window with the whole reference, so its null compares each sub-window with the rest of it."""
    pairs = []
    for rows in window_slices(times, window):
        keep = np.ones(len(times), dtype=bool)
        keep[rows] = False
        pairs.append((np.flatnonzero(keep), rows))
    return pairs


def sampled_rest_pairs(times: np.ndarray, window: timedelta, rows: int, *, seed: int = 0
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`rest_pairs` with each rest cut to ``rows`` rows drawn at random (without replacement,
    ``seed``): score drift compares a window with the holdout, whose size is fixed, so its null keeps
    that size. Against the whole rest the statistic has far less sampling noise than against the
    holdout (a month of 22 rows against 440 rows where the holdout has 44), the null is too tight,
    and ordinary windows drift."""
    rng = np.random.default_rng(seed)
    return [(np.sort(rng.choice(rest, size=rows, replace=False)) if 0 < rows < len(rest) else rest, part)
            for rest, part in rest_pairs(times, window)]


def calibrate(
    frame: Any,
    names: Sequence[str],
    *,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    window: timedelta,
    choose: Callable[[Any, Any], str],
    build: Callable[[Any, Sequence[str]], Any],
    measure: Callable[[str, Any, Any], tuple[float, float | None]],
    min_rows: int = 1,
) -> dict[str, Null]:
    """The null of every column of ``names`` that has one (see the module docstring).

    :param frame: the reference rows (pandas DataFrame).
    :param pairs: ``(reference, current)`` row indices of ``frame`` (:func:`rest_pairs`,
        :func:`sampled_rest_pairs`); a pair whose current part has fewer than ``min_rows`` rows is left out.
    :param window: the length of the current parts (stored with the null).
    :param choose: the method for (reference, current) column profiles, as monitoring chooses it.
    :param build: ``(frame, names) -> ReferenceProfile``; ``measure``: the method on two profiles.
    """
    pairs = [(ref, cur) for ref, cur in pairs if len(cur) >= min_rows and len(ref)]
    if len(pairs) < MIN_WINDOWS:
        return {}
    values: dict[str, list[float]] = {name: [] for name in names}
    methods: dict[str, str] = {}
    for reference_rows, current_rows in pairs:
        rest = build(frame.iloc[reference_rows], names)
        part = build(frame.iloc[current_rows], names)
        for name in names:
            ref, cur = rest.columns.get(name), part.columns.get(name)
            if ref is None or cur is None or ref.n == 0 or cur.n == 0 or ref.kind != cur.kind:
                continue
            method = methods.setdefault(name, choose(ref, cur))
            statistic, _ = measure(method, ref, cur)
            if math.isfinite(statistic):
                values[name].append(surprise(method, statistic))
    seconds = window.total_seconds()
    return {name: Null(methods[name], seconds, tuple(v)) for name, v in values.items() if len(v) >= MIN_WINDOWS}


def weighted_share(drifted: Sequence[bool], weights: Sequence[float | None]) -> float:
    """Share of drifted columns, each counted by its weight (importance to the model, floored at 0).

    Without a positive weight anywhere (no importances, or a model that uses nothing) every column
    counts once, as the unweighted share does.
    """
    w = np.array([max(x, 0.0) if x is not None and math.isfinite(x) else 0.0 for x in weights])
    if not len(w):
        return 0.0
    if w.sum() <= 0:
        return float(np.mean(drifted))
    return float(np.dot(w, np.asarray(drifted, dtype=float)) / w.sum())


__all__ = ["MAX_WINDOWS", "MIN_WINDOWS", "Null", "calibrate", "rest_pairs", "sampled_rest_pairs", "surprise",
           "weighted_share", "window_slices"]
