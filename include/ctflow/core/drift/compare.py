"""The drift API: choose a method per column, compare, and give the dataset verdict."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from ctflow.core.drift import sufficiency
from ctflow.core.drift.calibration import Null, calibrate, rest_pairs, sampled_rest_pairs, surprise, weighted_share
from ctflow.core.drift.methods import aligned_counts, measure
from ctflow.core.drift.profile import ColumnProfile, ReferenceProfile, profile_from_raw
from ctflow.core.drift.readers import check_columns, column_names, get_column, map_columns, read_column, row_count
from ctflow.core.drift.results import (
    DEFAULT_THRESHOLDS,
    METHODS,
    NUMERIC_ONLY_METHODS,
    ColumnDrift,
    DriftInputError,
    DriftResult,
    Kind,
    suggest,
)

#: Evidently's sample-size switch between p-value tests and distances.
AUTO_LARGE_SAMPLE = 1000


def _n_values(ref: ColumnProfile, cur: ColumnProfile) -> int:
    """Distinct values in reference and current together (only exact when small)."""
    if ref.n_unique > 5:
        return ref.n_unique  # already past every auto cut-off
    return len(aligned_counts(ref, cur)[0])


def auto_method(ref: ColumnProfile, cur: ColumnProfile) -> str:
    """Evidently 0.7's default test for this column (see :mod:`ctflow.core.drift`)."""
    n_values = _n_values(ref, cur)
    if ref.n <= AUTO_LARGE_SAMPLE:
        if n_values <= 2:
            return "z"
        if ref.kind == "categorical" or n_values <= 5:
            return "chi2"
        return "ks"
    if ref.kind == "categorical" or n_values <= 5:
        return "jensenshannon"
    return "wasserstein"


def _check_method(method: str | None, *, allow_auto: bool = True) -> None:
    if method is None or (allow_auto and method == "auto"):
        return
    if method not in METHODS:
        choices = ("auto", *METHODS) if allow_auto else METHODS
        raise DriftInputError(
            f"unknown drift method {method!r}{suggest(method, choices)}; choose from {', '.join(choices)}")


#: Default quantile of the reference's null above which a calibrated column drifts.
CALIBRATION_QUANTILE = 0.95


def _compare(ref: ColumnProfile, cur: ColumnProfile, method: str, threshold: float | None,
             null: Null | None = None, quantile: float = CALIBRATION_QUANTILE) -> ColumnDrift:
    if method == "auto":
        method = null.method if null is not None else auto_method(ref, cur)
    if method in NUMERIC_ONLY_METHODS and ref.kind != "numeric":
        raise DriftInputError(
            f"method {method!r} needs a numeric column but {ref.name!r} is categorical; "
            "choose a categorical method (cat_method / --cat-method)")
    limit = DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
    counts: dict[str, Any] = dict(n_reference=ref.n, n_current=cur.n, missing_reference=ref.n_missing,
                                  missing_current=cur.n_missing)
    if ref.n == 0 or cur.n == 0:
        return ColumnDrift(ref.name, method, math.nan, None, limit, False, ref.kind, **counts)
    statistic, p_value = measure(method, ref, cur)
    if null is not None and null.method == method:
        # the threshold is on the statistic, also for the tests (see .calibration). For a distance,
        # calibration only ever raises the threshold: a column that barely varies within the
        # reference (a stable traffic mix) would otherwise drift on any small, harmless change.
        bound = null.limit(quantile)
        if p_value is None:
            bound = max(bound, limit)
        drifted = surprise(method, statistic) > bound
        return ColumnDrift(ref.name, method, float(statistic), p_value, bound, bool(drifted), ref.kind, **counts,
                           calibrated=True)
    drifted = p_value < limit if p_value is not None else statistic >= limit
    return ColumnDrift(ref.name, method, float(statistic), p_value, limit, bool(drifted), ref.kind, **counts)


def _chosen(ref: ColumnProfile, method: str, num_method: str | None, cat_method: str | None) -> str:
    return (num_method if ref.kind == "numeric" else cat_method) or method or "auto"


def calibrate_profile(
    profile: ReferenceProfile,
    frame: Any,
    *,
    times: Any,
    window: timedelta,
    method: str = "auto",
    num_method: str | None = None,
    cat_method: str | None = None,
    min_rows: int = 1,
    reference_rows: int | None = None,
    seed: int = 0,
) -> ReferenceProfile:
    """``profile`` (built from ``frame``) with the empirical null of each column for windows of
    ``window`` (:mod:`.calibration`); ``times`` are the rows' timestamps. Each window is compared
    with the rest of ``frame``, or with ``reference_rows`` rows of it drawn at random (``seed``)
    when monitoring's reference has that many (:func:`.calibration.sampled_rest_pairs`). A
    reference shorter than three windows gets no null: its columns are then compared raw."""
    for m in (method, num_method, cat_method):
        _check_method(m)
    names = profile.names
    forced_kinds = {name: col.kind for name, col in profile.columns.items()}

    def build(rows: Any, columns: Sequence[str]) -> ReferenceProfile:
        return ReferenceProfile.from_frame(
            rows, list(columns), categorical=[n for n in columns if forced_kinds[n] == "categorical"],
            numerical=[n for n in columns if forced_kinds[n] == "numeric"])

    def choose(ref: ColumnProfile, cur: ColumnProfile) -> str:
        chosen = _chosen(ref, method, num_method, cat_method)
        return auto_method(ref, cur) if chosen == "auto" else chosen

    times = np.asarray(times)
    pairs = (rest_pairs(times, window) if reference_rows is None
             else sampled_rest_pairs(times, window, reference_rows, seed=seed))
    nulls = calibrate(frame, names, pairs=pairs, window=window, choose=choose, build=build, measure=measure,
                      min_rows=min_rows)
    return dataclasses.replace(profile, nulls=nulls)


def _current_profile(ref: ColumnProfile, values: Any) -> ColumnProfile:
    return profile_from_raw(ref.name, read_column(values), ref.kind, with_moments=False)


def dataset_drift_from_profile(
    profile: ReferenceProfile,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    method: str = "auto",
    num_method: str | None = None,
    cat_method: str | None = None,
    threshold: float | None = None,
    max_drifted_share: float = 0.5,
    min_rows: int = 1,
    calibration: str = "none",
    quantile: float = CALIBRATION_QUANTILE,
    weighting: str = "none",
) -> DriftResult:
    """Drift of ``current`` against a saved reference profile (see :func:`dataset_drift`).

    ``calibration="reference"``: a column with an empirical null in the profile drifts when its
    statistic is beyond the null's ``quantile`` (``threshold`` then applies to the other columns
    only). ``weighting="importance"``: the drifted share counts each column by its importance in
    the profile (:func:`.calibration.weighted_share`).
    """
    for m in (method, num_method, cat_method):
        _check_method(m)
    names = list(columns) if columns is not None else profile.names
    check_columns(names, profile.names, "the reference")
    available = column_names(current)
    missing = [n for n in names if n not in set(available)]
    if missing:
        raise DriftInputError(f"unknown column {missing[0]!r} in the current data{suggest(missing[0], available)}")

    def compare(name: str) -> ColumnDrift:
        ref = profile.columns[name]
        chosen = _chosen(ref, method, num_method, cat_method)
        null = profile.nulls.get(name) if calibration == "reference" else None
        if null is not None and chosen not in ("auto", null.method):
            null = None  # calibrated for another method: raw
        result = _compare(ref, _current_profile(ref, get_column(current, name)), chosen, threshold, null, quantile)
        if weighting == "importance" and profile.importances:
            result = dataclasses.replace(result, weight=profile.importances.get(name, 0.0))
        return result

    n_rows = row_count(current)
    results = map_columns(compare, names, n_rows)
    evaluated = [r for r in results if not math.isnan(r.statistic)]
    share = weighted_share([r.drifted for r in evaluated], [r.weight for r in evaluated]) if evaluated else 0.0
    insufficient = sufficiency.insufficient_reason(
        rows=n_rows, usable=[(r.column, r.n_reference, r.n_current) for r in results], min_rows=min_rows)
    drifted = not insufficient and bool(evaluated) and share >= max_drifted_share
    return DriftResult(results, share, drifted, max_drifted_share, insufficient)


def dataset_drift(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    method: str = "auto",
    num_method: str | None = None,
    cat_method: str | None = None,
    threshold: float | None = None,
    max_drifted_share: float = 0.5,
    min_rows: int = 1,
) -> DriftResult:
    """Per-column drift of ``current`` against ``reference`` and the dataset verdict.

    ``reference`` / ``current``: pandas DataFrames (or pyarrow Tables, or mappings
    of column name to array). ``columns=None`` compares every reference column with
    a supported dtype. ``method`` applies to every column unless ``num_method`` /
    ``cat_method`` set one for that kind; ``threshold`` overrides every method's
    default. The dataset drifts when the share of drifted columns is
    ``>= max_drifted_share``. With fewer than ``min_rows`` rows in ``current``, or no
    column with that many usable values, the result is ``insufficient_data`` instead.
    """
    for m in (method, num_method, cat_method):
        _check_method(m)
    profile = ReferenceProfile.from_frame(reference, columns)
    return dataset_drift_from_profile(profile, current, columns=columns, method=method, num_method=num_method,
                                      cat_method=cat_method, threshold=threshold,
                                      max_drifted_share=max_drifted_share, min_rows=min_rows)


def column_drift(reference: Any, current: Any, *, method: str = "auto", threshold: float | None = None,
                 name: str | None = None, kind: Kind | None = None, null: Null | None = None,
                 quantile: float = CALIBRATION_QUANTILE) -> ColumnDrift:
    """Drift of one column (pandas Series, array or sequence); ``kind`` overrides inference.

    With ``null`` (its empirical null, :mod:`.calibration`) the column drifts when its statistic is
    beyond the null's ``quantile``, as a calibrated column of :func:`dataset_drift_from_profile` does
    (a null calibrated for another method than ``method`` is not used: the column is compared raw).
    """
    _check_method(method)
    name = name if name is not None else str(getattr(reference, "name", None) or "value")
    raw = read_column(reference)
    if kind == "numeric" and raw[0] == "category":
        raise DriftInputError(f"column {name!r} cannot be numeric: its values are not numbers")
    ref = profile_from_raw(name, raw, kind, with_moments=True)
    return _compare(ref, _current_profile(ref, current), method, threshold, null, quantile)


def prediction_drift(reference_scores: Any, current_scores: Any, *, method: str = "auto",
                     threshold: float | None = None, name: str = "prediction",
                     kind: Kind | None = None, null: Null | None = None,
                     quantile: float = CALIBRATION_QUANTILE) -> ColumnDrift:
    """Drift of a model's output: scores/probabilities (numeric) or predicted labels (``null``:
    calibrated, see :func:`column_drift`)."""
    return column_drift(reference_scores, current_scores, method=method, threshold=threshold, name=name, kind=kind,
                        null=null, quantile=quantile)
