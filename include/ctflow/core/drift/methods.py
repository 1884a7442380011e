"""The six per-column methods, computed on two :class:`.ColumnProfile` summaries.

Each equals its scipy / Evidently counterpart (see :mod:`ctflow.core.drift` and the
tests, which compare with scipy); :func:`measure` is the one entry point.
"""

from __future__ import annotations

import math

import numpy as np

from ctflow.core.drift.profile import ColumnProfile
from ctflow.core.drift.pvalues import chi2_sf, kstwo_sf

#: Numerics with at most this many distinct reference values are binned per value.
PER_VALUE_BINNING_LIMIT = 20
PSI_BINS = 10
#: scipy's ks_2samp computes the exact p-value up to this sample size.
KS_EXACT_MAX_N = 10000


def _count_le(values: np.ndarray, cum: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Number of observations <= each x, from a run-length summary."""
    k = np.searchsorted(values, x, side="right")
    if len(values) and cum[-1] == len(values):  # all distinct: cum[i] == i + 1
        return k
    return np.where(k > 0, cum[k - 1], 0)


def _count_lt(values: np.ndarray, cum: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Number of observations < each x, from a run-length summary."""
    k = np.searchsorted(values, x, side="left")
    if len(values) and cum[-1] == len(values):
        return k
    return np.where(k > 0, cum[k - 1], 0)


def _ks(ref: ColumnProfile, cur: ColumnProfile) -> tuple[float, float]:
    """Two-sided two-sample KS exactly as ``scipy.stats.ks_2samp(method="auto")``."""
    n1, n2 = ref.n, cur.n
    if max(n1, n2) <= KS_EXACT_MAX_N:
        # Small samples: scipy's exact p-value; expanding the runs is cheap here.
        from scipy.stats import ks_2samp

        res = ks_2samp(np.repeat(ref.values, np.diff(ref.cum_counts, prepend=0)),
                       np.repeat(cur.values, np.diff(cur.cum_counts, prepend=0)))
        return float(res.statistic), float(res.pvalue)
    # scipy evaluates both ECDFs at every observation; equal observations give equal
    # ECDF values, so evaluating at the distinct values of each side yields the same
    # set of (i/n1 - j/n2) numbers and hence a bit-identical statistic.
    rv, rc, cv, cc = ref.values, ref.cum_counts, cur.values, cur.cum_counts
    cdf1 = np.concatenate([rc, _count_le(rv, rc, cv)]) / n1
    cdf2 = np.concatenate([_count_le(cv, cc, rv), cc]) / n2
    diffs = cdf1 - cdf2
    max_s = float(diffs.max())
    min_s = float(np.clip(-diffs.min(), 0, 1))
    d = min_s if min_s > max_s else max_s
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    # p-value: scipy's asymptotic mode, kstwo.sf(d, round(en)), computed without scipy
    return d, kstwo_sf(d, int(np.round(en)))


def aligned_counts(ref: ColumnProfile, cur: ColumnProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of keys (sorted) with both sides' counts; keys seen on neither side dropped."""
    rk, rc = ref.frequencies()
    ck, cc = cur.frequencies()
    if rk.dtype.kind != ck.dtype.kind:
        # e.g. string categories in the reference, numbers in the window: compare as text
        rk, ck = rk.astype(str), ck.astype(str)
    keys, inverse = np.unique(np.concatenate([rk, ck]), return_inverse=True)
    ref_counts = np.zeros(len(keys), dtype=np.int64)
    cur_counts = np.zeros(len(keys), dtype=np.int64)
    np.add.at(ref_counts, inverse[: len(rk)], rc)
    np.add.at(cur_counts, inverse[len(rk):], cc)
    return keys, ref_counts, cur_counts


def _chi2(ref: ColumnProfile, cur: ColumnProfile) -> tuple[float, float]:
    """Chi-squared contingency test, the arithmetic of ``scipy.stats.chi2_contingency``."""
    _, rc, cc = aligned_counts(ref, cur)
    observed = np.vstack([rc, cc]).astype(np.float64)
    # scipy.stats.contingency.expected_freq: product of margins / total
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    dof = expected.size - sum(expected.shape) + expected.ndim - 1
    if dof == 0:
        return 0.0, 1.0
    if dof == 1:  # Yates' continuity correction, as scipy applies by default
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    stat = float(((observed - expected) ** 2 / expected).sum())
    return stat, chi2_sf(stat, dof)


def _z(ref: ColumnProfile, cur: ColumnProfile) -> tuple[float, float]:
    """Evidently's two-proportion z-test: first sorted key against the rest."""
    _, rc, cc = aligned_counts(ref, cur)
    if len(rc) == 1:
        return 0.0, 1.0
    n1, n2 = rc.sum(), cc.sum()
    p1 = (n1 - rc[0]) / n1
    p2 = (n2 - cc[0]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(z), math.erfc(abs(z) / math.sqrt(2.0))  # = 2 * (1 - Phi(|z|))


def _wasserstein(ref: ColumnProfile, cur: ColumnProfile) -> float:
    """W1 distance (as ``scipy.stats.wasserstein_distance``) over the reference std."""
    merged = np.concatenate([ref.values, cur.values])
    merged.sort(kind="stable")  # two sorted runs: timsort merges them in linear time
    grid = merged[np.append(True, merged[1:] != merged[:-1])]
    if len(grid) < 2:
        distance = 0.0
    else:
        at = grid[:-1]
        f1 = _count_le(ref.values, ref.cum_counts, at) / ref.n
        f2 = _count_le(cur.values, cur.cum_counts, at) / cur.n
        distance = float(np.dot(np.abs(f1 - f2), np.diff(grid)))
    return distance / max(ref.std, 0.001)


def _sturges_edges(ref: ColumnProfile, cur: ColumnProfile) -> np.ndarray:
    """``np.histogram_bin_edges(concat(ref, cur), "sturges")`` from the two summaries."""
    first = min(ref.values[0], cur.values[0])
    last = max(ref.values[-1], cur.values[-1])
    width = (last - first) / (np.log2(ref.n + cur.n) + 1.0)
    if ref.is_integer and cur.is_integer and width < 1:  # numpy's rule for integer data
        width = 1
    if first == last:  # numpy widens an empty range by 0.5 on each side
        first, last = first - 0.5, last + 0.5
    n_bins = int(np.ceil((last - first) / width)) if width else 1
    return np.linspace(first, last, n_bins + 1, endpoint=True)


def _histogram(col: ColumnProfile, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(sample, edges)[0]`` (last bin closed) from a summary."""
    below = np.append(_count_lt(col.values, col.cum_counts, edges[:-1]),
                      _count_le(col.values, col.cum_counts, edges[-1:]))
    return np.diff(below)


def _binned(ref: ColumnProfile, cur: ColumnProfile, quantile_bins: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current counts over shared bins (or per value)."""
    if ref.kind == "numeric" and ref.n_unique > PER_VALUE_BINNING_LIMIT:
        if quantile_bins is None:
            edges = _sturges_edges(ref, cur)
            return _histogram(ref, edges), _histogram(cur, edges)
        inner = np.unique(_quantiles(ref, np.linspace(0, 1, quantile_bins + 1)[1:-1]))
        edges = np.concatenate([[-np.inf], inner, [np.inf]])
        # bins [e_i, e_{i+1}); the last edge is +inf so the closed last bin is harmless
        return _histogram(ref, edges), _histogram(cur, edges)
    _, rc, cc = aligned_counts(ref, cur)
    return rc, cc


def _quantiles(col: ColumnProfile, q: np.ndarray) -> np.ndarray:
    """``np.quantile(sample, q)`` (linear interpolation) from the run-length summary."""
    pos = q * (col.n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, col.n - 1)
    a = col.values[np.searchsorted(col.cum_counts, lo, side="right")]
    b = col.values[np.searchsorted(col.cum_counts, hi, side="right")]
    return a + (b - a) * (pos - lo)


def _fill_zeros(p: np.ndarray) -> np.ndarray:
    """Evidently's floor for empty bins, so PSI's log stays finite."""
    nonzero = p[p != 0]
    floor = nonzero.min() / 10**6 if nonzero.min() <= 0.0001 else 0.0001
    return np.where(p == 0, floor, p)


def _psi(ref: ColumnProfile, cur: ColumnProfile) -> float:
    rc, cc = _binned(ref, cur, PSI_BINS)
    r = _fill_zeros(rc / ref.n)
    c = _fill_zeros(cc / cur.n)
    return float(np.sum((r - c) * np.log(r / c)))


def _rel_entr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(x / y), 0.0)


def _jensenshannon(ref: ColumnProfile, cur: ColumnProfile) -> float:
    """``scipy.spatial.distance.jensenshannon`` of Evidently's binned frequencies."""
    rc, cc = _binned(ref, cur, None)
    p = rc / rc.sum()
    q = cc / cc.sum()
    m = (p + q) / 2.0
    js = np.sum(_rel_entr(p, m)) + np.sum(_rel_entr(q, m))
    return float(np.sqrt(js / 2.0))


def measure(method: str, ref: ColumnProfile, cur: ColumnProfile) -> tuple[float, float | None]:
    """``(statistic, p_value)`` of ``method`` (a name from ``METHODS``, not ``auto``) on two
    non-empty summaries; ``p_value`` is None for the distances."""
    if method == "ks":
        return _ks(ref, cur)
    if method == "chi2":
        return _chi2(ref, cur)
    if method == "z":
        return _z(ref, cur)
    if method == "psi":
        return _psi(ref, cur), None
    if method == "wasserstein":
        return _wasserstein(ref, cur), None
    return _jensenshannon(ref, cur), None
