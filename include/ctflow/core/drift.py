"""Data and prediction drift between a reference sample and a current window.

Airflow-free and pandas-optional: inputs may be pandas objects, pyarrow tables or
arrays, numpy arrays or plain sequences. Everything is computed with numpy on a
compact per-column summary, so a monitoring run reads only the new window: the
reference side can be a saved :class:`ReferenceProfile`.

Per-column methods (``METHODS``):

``ks``
    Two-sample Kolmogorov-Smirnov test; drift when ``p < threshold`` (default 0.05).
    Statistic and p-value equal ``scipy.stats.ks_2samp`` (``method="auto"``): scipy
    itself for its exact mode (both samples <= 10000), else the statistic from the
    run-length summaries and the asymptotic p-value from :mod:`.drift_pvalues`,
    which avoids importing scipy (1.5 s of a CLI run).
``chi2``
    Chi-squared test of independence on the 2 x K table of category counts;
    drift when ``p < threshold`` (0.05). Equals ``scipy.stats.chi2_contingency``
    (Yates' correction when there are two categories, as scipy does).
``z``
    Two-proportion z-test for binary columns (Evidently's choice for small binary
    samples); the first category in sorted order against the rest. ``p < 0.05``.
``psi``
    Population stability index over 10 quantile bins of the reference (per-value
    frequencies for categoricals and numerics with <= 20 distinct reference
    values); empty bins get Evidently's small floor. Drift when ``psi >= 0.1``.
``wasserstein``
    Wasserstein-1 distance divided by the reference standard deviation (floored at
    0.001), as Evidently's ``wasserstein``. Drift when ``>= 0.1``. Numeric only.
``jensenshannon``
    Jensen-Shannon distance (natural log) between frequency vectors: per-value
    frequencies for categoricals and numerics with <= 20 distinct reference values,
    else a histogram with Sturges' rule over the combined range, exactly as
    Evidently bins it. Drift when ``>= 0.1``.

Column kinds (inferred from the reference, as Evidently 0.7's ``infer_column_type``
infers them): float -> numeric; integer -> categorical when it has <= 10 distinct
values, else numeric; bool, string, object and categorical dtypes -> categorical.
Datetime and other dtypes are skipped unless named explicitly (then an error).
Evidently treats strings with mostly distinct values as text; ctflow keeps them
categorical.

``method="auto"`` follows Evidently 0.7's default test selection
(``evidently.legacy.calculations.stattests.registry._get_default_stattest``), with
``n_ref`` the number of non-missing reference values and ``n_values`` the number of
distinct non-missing values in reference and current together:

* ``n_ref <= 1000``: numeric -> ``z`` if ``n_values <= 2``, ``chi2`` if
  ``n_values <= 5``, else ``ks``; categorical -> ``z`` if ``n_values <= 2``, else
  ``chi2``.
* ``n_ref > 1000``: numeric -> ``jensenshannon`` if ``n_values <= 5``, else
  ``wasserstein``; categorical -> ``jensenshannon``.

Precedence is ``num_method`` / ``cat_method`` > ``method`` > auto, as in Evidently.

Missing values (null, NaN and +-inf, which Evidently also drops) are removed per
column and counted in the result. A column that is empty on either side is
reported with a NaN statistic and ``drifted=False``. A current window with too few
rows or usable values (``min_rows``) gets the state ``insufficient_data``, never
"no drift" (:mod:`.drift_sufficiency`).

Where this knowingly differs from Evidently 0.7 (see ``benchmarks/drift.py``):
``chi2`` is the two-sample contingency test, Evidently's ``chisquare`` is a
goodness-of-fit test against reference frequencies (smaller p-values, and p = 0 as
soon as the current window has a category the reference lacks); ``psi`` uses
reference quantile bins where Evidently uses equal-width bins; Evidently infers
kinds from the current data, ctflow from the reference (a profile has no other);
Evidently's ``ks`` drifts at ``p <= threshold``, ctflow at ``p < threshold``.

Speed: each numeric column is sorted once per side (integers with a small range are
counted with ``bincount`` instead), categoricals are counted once, and every method
works on those summaries. Large frames are processed a column per thread.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ctflow.core import drift_sufficiency
from ctflow.core.drift_pvalues import chi2_sf, kstwo_sf
from ctflow.exceptions import CtflowError

Kind = Literal["numeric", "categorical"]

METHODS: tuple[str, ...] = ("ks", "chi2", "z", "psi", "wasserstein", "jensenshannon")
P_VALUE_METHODS = frozenset({"ks", "chi2", "z"})
NUMERIC_ONLY_METHODS = frozenset({"ks", "wasserstein"})
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chi2": 0.05,
    "z": 0.05,
    "psi": 0.1,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
}

#: Evidently's sample-size switch between p-value tests and distances.
AUTO_LARGE_SAMPLE = 1000
#: Integer columns with at most this many distinct values are categorical.
INTEGER_CARDINALITY_LIMIT = 10
#: Numerics with at most this many distinct reference values are binned per value.
PER_VALUE_BINNING_LIMIT = 20
PSI_BINS = 10
#: Below this many cells (rows x columns) threads cost more than they save.
PARALLEL_MIN_CELLS = 2_000_000
#: scipy's ks_2samp computes the exact p-value up to this sample size.
KS_EXACT_MAX_N = 10000

PROFILE_FORMAT = "ctflow-drift-profile"
PROFILE_VERSION = 1


class DriftInputError(CtflowError, ValueError):
    """Input that drift cannot be computed on: unknown column, bad dtype or method."""


# --------------------------------------------------------------------------- results


def _json_float(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class ColumnDrift:
    """Drift verdict for one column.

    ``statistic`` is the test statistic or distance; ``p_value`` is set for the
    p-value methods only. ``score`` is what is compared to ``threshold``.
    """

    column: str
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    kind: Kind
    n_reference: int = 0
    n_current: int = 0
    missing_reference: int = 0
    missing_current: int = 0

    @property
    def score(self) -> float:
        """The value compared to ``threshold``: the p-value or the distance."""
        if self.method in P_VALUE_METHODS:
            return math.nan if self.p_value is None else self.p_value
        return self.statistic

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        return {
            "column": self.column,
            "method": self.method,
            "kind": self.kind,
            "statistic": _json_float(self.statistic),
            "p_value": _json_float(self.p_value),
            "threshold": float(self.threshold),
            "drifted": bool(self.drifted),
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "missing_reference": int(self.missing_reference),
            "missing_current": int(self.missing_current),
        }


@dataclass(frozen=True)
class DriftResult:
    """Per-column verdicts and the dataset verdict.

    ``drifted`` is ``drifted_share >= max_drifted_share`` (Evidently's
    ``drift_share`` rule); the share counts only columns that could be evaluated.
    ``insufficient`` says why the window cannot be judged (then ``drifted`` is False
    and :attr:`state` is ``insufficient_data``), None when it can.
    """

    columns: list[ColumnDrift]
    drifted_share: float
    drifted: bool
    max_drifted_share: float = 0.5
    insufficient: str | None = None

    @property
    def state(self) -> str:
        """``drift``, ``no_drift`` or ``insufficient_data``."""
        return drift_sufficiency.state(drifted=self.drifted, insufficient=self.insufficient)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        return {
            "columns": [c.to_dict() for c in self.columns],
            "drifted_share": float(self.drifted_share),
            "drifted": bool(self.drifted),
            "max_drifted_share": float(self.max_drifted_share),
            "state": self.state,
            "insufficient": self.insufficient,
        }


# ------------------------------------------------------------------ column summaries


@dataclass(frozen=True, eq=False)
class ColumnProfile:
    """What every method needs from one side of one column.

    Numeric: ``values`` are the sorted distinct finite values (float64) and
    ``cum_counts[i]`` the number of observations ``<= values[i]``; this is the whole
    sorted sample in run-length form, so KS stays exact. Categorical: sorted
    distinct ``keys`` (str or float64) and their ``counts``.
    """

    name: str
    kind: Kind
    n: int
    n_missing: int
    # the arrays of the other kind stay empty
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cum_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    is_integer: bool = False
    mean: float = math.nan
    std: float = math.nan

    @property
    def n_unique(self) -> int:
        return len(self.values) if self.kind == "numeric" else len(self.keys)

    def frequencies(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, counts) view of either kind, for per-value methods."""
        if self.kind == "numeric":
            return self.values, np.diff(self.cum_counts, prepend=0)
        return self.keys, self.counts


def _runs(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and the cumulative count up to each."""
    n = len(sorted_values)
    if n == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    changes = sorted_values[1:] != sorted_values[:-1]
    if changes.all():  # continuous data: every value distinct, skip the gather
        return sorted_values, np.arange(1, n + 1, dtype=np.int64)
    last = np.append(np.flatnonzero(changes), n - 1)
    return sorted_values[last], last + 1


def _distinct_counts(data: np.ndarray, is_integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct finite values of ``data`` and the cumulative count up to each.

    Integer data with a modest range is counted with ``bincount`` (linear time, no
    sort); everything else is sorted once.
    """
    finite = np.isfinite(data)
    owned = False
    if not finite.all():
        data = data[finite]
        owned = True  # a fresh copy: safe to sort in place
    n = len(data)
    if is_integer and n:
        low, high = data.min(), data.max()
        if high - low <= max(4096, 2 * n):
            counts = np.bincount((data - low).astype(np.intp), minlength=int(high - low) + 1)
            present = np.flatnonzero(counts)
            return present.astype(np.float64) + low, np.cumsum(counts[present])
    if owned:
        data.sort()
    else:
        data = np.sort(data)
    return _runs(data)


def _numeric_profile(name: str, values: np.ndarray, cum: np.ndarray, n_total: int, is_integer: bool,
                     with_moments: bool) -> ColumnProfile:
    n = int(cum[-1]) if len(cum) else 0
    mean = std = math.nan
    if with_moments and n:
        if n == len(values):  # all distinct
            mean, std = float(values.mean()), float(values.std())
        else:
            counts = np.diff(cum, prepend=0)
            mean = float(np.dot(values, counts) / n)
            std = float(math.sqrt(np.dot(counts, (values - mean) ** 2) / n))
    return ColumnProfile(name, "numeric", n, n_total - n, values=values, cum_counts=cum,
                         is_integer=is_integer, mean=mean, std=std)


def _categorical_profile(name: str, keys: np.ndarray, counts: np.ndarray, n_total: int) -> ColumnProfile:
    counts = np.asarray(counts, dtype=np.int64)
    keep = counts > 0
    keys, counts = keys[keep], counts[keep]
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    n = int(counts.sum())
    return ColumnProfile(name, "categorical", n, n_total - n, keys=keys, counts=counts)


def _normalise_keys(raw: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Category keys as a str or float64 array (both save without pickle)."""
    arr = np.asarray(raw)
    if arr.dtype.kind in "US":
        return arr.astype(str)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    items = list(arr)
    if all(isinstance(v, str) for v in items):
        return np.array(items, dtype=str) if items else np.array([], dtype=str)
    if all(isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)) for v in items):
        return np.asarray(items, dtype=np.float64)
    return np.array([str(v) for v in items], dtype=str)


# What a raw column looks like once read: ("number", float64 data, is_integer, is_bool)
# or ("category", keys, counts); plus the total row count.
_Raw = tuple[str, Any, Any, Any, int]


def _read_pandas(series: Any) -> _Raw:
    import pandas as pd  # already imported: the caller handed us a pandas object

    dtype = series.dtype
    n_total = len(series)
    if isinstance(dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        counts = np.bincount(codes[codes >= 0], minlength=len(dtype.categories))
        return ("category", _normalise_keys(dtype.categories.to_numpy()), counts, None, n_total)
    if pd.api.types.is_bool_dtype(dtype):
        data = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return ("number", data, True, True, n_total)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        data = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return ("number", data, dtype.kind in "iu", False, n_total)
    if dtype.kind in "mM" or isinstance(dtype, pd.DatetimeTZDtype):
        return ("unsupported", str(dtype), None, None, n_total)
    counts = series.value_counts(dropna=True, sort=False)
    return ("category", _normalise_keys(counts.index.to_numpy()), counts.to_numpy(), None, n_total)


def _arrow_numbers(array: Any, dtype: type) -> np.ndarray:
    """A fixed-width pyarrow array as numpy, straight from its buffers; nulls become NaN.

    ``to_numpy`` and ``pc.fill_null`` would do, but both import pandas (~1.5 s).
    """
    array = array.combine_chunks() if hasattr(array, "combine_chunks") else array
    itemsize = np.dtype(dtype).itemsize
    validity, data = array.buffers()[:2]
    values: np.ndarray = np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * itemsize)
    if array.null_count:
        bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
        values = np.where(bits[array.offset: array.offset + len(array)].astype(bool), values, np.nan)
    return values


def _read_arrow(array: Any) -> _Raw:
    import pyarrow as pa
    import pyarrow.compute as pc

    typ = array.type
    n_total = len(array)
    if pa.types.is_boolean(typ) or pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        is_bool = pa.types.is_boolean(typ)
        data = _arrow_numbers(pc.cast(array, pa.float64()), np.float64)
        return ("number", data, is_bool or pa.types.is_integer(typ), is_bool, n_total)
    if pa.types.is_null(typ):  # a column with no value at all (e.g. an empty or all-missing window)
        return ("category", np.array([], dtype=str), np.zeros(0, dtype=np.int64), None, n_total)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_dictionary(typ):
        vc = pc.value_counts(array)
        values = vc.field("values")
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        keys = values.to_pylist()  # one entry per distinct value: small
        counts = _arrow_numbers(vc.field("counts"), np.int64)
        valid = np.array([k is not None for k in keys], dtype=bool)
        return ("category", _normalise_keys([k for k in keys if k is not None]), counts[valid], None, n_total)
    return ("unsupported", str(typ), None, None, n_total)


def _read_any(values: Any) -> _Raw:
    """Read one column from pandas, pyarrow, numpy or a sequence."""
    module = type(values).__module__
    if module.startswith("pandas"):
        return _read_pandas(values)
    if module.startswith("pyarrow"):
        return _read_arrow(values)
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return ("number", arr.astype(np.float64), True, True, len(arr))
    if arr.dtype.kind in "iuf":
        return ("number", arr.astype(np.float64, copy=False), arr.dtype.kind in "iu", False, len(arr))
    if arr.dtype.kind in "mM":
        return ("unsupported", str(arr.dtype), None, None, len(arr))
    # strings or mixed objects: count per distinct non-missing value
    items = [v for v in arr.tolist() if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not items:
        return ("category", np.array([], dtype=str), np.zeros(0, dtype=np.int64), None, len(arr))
    keys, counts = np.unique(_normalise_keys(items), return_counts=True)
    return ("category", keys, counts, None, len(arr))


def _profile_from_raw(name: str, raw: _Raw, kind: Kind | None, with_moments: bool) -> ColumnProfile:
    tag, a, b, is_bool, n_total = raw
    if tag == "unsupported":
        raise DriftInputError(f"column {name!r} has unsupported dtype {a}; drift needs numeric or categorical data")
    if tag == "category":
        if kind == "numeric" and not np.any(b):  # no value at all: an empty numeric sample
            return _numeric_profile(name, np.zeros(0), np.zeros(0, dtype=np.int64), n_total, False, with_moments)
        if kind == "numeric":
            raise DriftInputError(f"column {name!r} is numeric in the reference but not numeric in this data")
        return _categorical_profile(name, a, b, n_total)
    data, is_integer = a, bool(b)
    values, cum = _distinct_counts(data, is_integer)  # once: it decides the kind and is the summary
    if kind is None:
        if is_bool or (is_integer and len(values) <= INTEGER_CARDINALITY_LIMIT):
            kind = "categorical"
        else:
            kind = "numeric"
    if kind == "categorical":
        return _categorical_profile(name, values, np.diff(cum, prepend=0), n_total)
    return _numeric_profile(name, values, cum, n_total, is_integer, with_moments)


def _n_rows(frame: Any) -> int:
    if hasattr(frame, "num_rows"):  # pyarrow.Table
        return int(frame.num_rows)
    if hasattr(frame, "columns") or not isinstance(frame, Mapping):
        return len(frame)
    return max((len(v) for v in frame.values()), default=0)


def _map_columns(fn: Any, names: Sequence[str], n_rows: int) -> list[Any]:
    """``[fn(name) for name in names]``, on a thread per core when the data is large.

    Columns are independent and the heavy work (sort, searchsorted, bincount, arrow
    kernels) releases the GIL, so threads use every core. Results keep the input
    order and the first failing column raises, exactly as the serial loop would.
    """
    workers = min(len(names), os.cpu_count() or 1)
    if workers <= 1 or n_rows * len(names) < PARALLEL_MIN_CELLS:
        return [fn(name) for name in names]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, names))


def _column_names(frame: Any) -> list[str]:
    if hasattr(frame, "column_names"):  # pyarrow.Table
        return [str(c) for c in frame.column_names]
    if hasattr(frame, "columns"):  # pandas.DataFrame
        return [str(c) for c in frame.columns]
    if isinstance(frame, Mapping):
        return [str(c) for c in frame.keys()]
    raise DriftInputError(f"expected a DataFrame, pyarrow Table or mapping of columns, got {type(frame).__name__}")


def _get_column(frame: Any, name: str) -> Any:
    if hasattr(frame, "column_names"):
        return frame.column(name)
    return frame[name]


def suggest(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_columns(requested: Sequence[str], available: Sequence[str], where: str) -> None:
    known = set(available)
    for name in requested:
        if name not in known:
            raise DriftInputError(f"unknown column {name!r} in {where}{suggest(name, available)}")


# -------------------------------------------------------------------- reference profile


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Per-column reference summaries: build once from training data, reuse for every window.

    Saved as one ``.npz`` (numpy arrays plus a JSON header, no pickle).
    """

    columns: dict[str, ColumnProfile]
    skipped: tuple[str, ...] = field(default=())

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        columns: Sequence[str] | None = None,
        *,
        categorical: Sequence[str] = (),
        numerical: Sequence[str] = (),
    ) -> ReferenceProfile:
        """Summarise ``frame`` (pandas DataFrame, pyarrow Table or mapping of columns).

        ``columns=None`` takes every column with a supported dtype; named columns
        must exist and be supported. ``categorical`` / ``numerical`` force a kind.
        """
        available = _column_names(frame)
        forced: dict[str, Kind] = {c: "categorical" for c in categorical}
        forced.update({c: "numeric" for c in numerical})
        _check_columns(list(forced), available, "the reference data")
        if columns is not None:
            _check_columns(list(columns), available, "the reference data")
        names = list(columns) if columns is not None else available
        profiles: dict[str, ColumnProfile] = {}
        skipped: list[str] = []

        def build(name: str) -> ColumnProfile | None:
            raw = _read_any(_get_column(frame, name))
            if raw[0] == "unsupported" and columns is None:
                return None  # skipped: only named columns must be supported
            kind = forced.get(name)
            if kind == "numeric" and raw[0] == "category":
                raise DriftInputError(f"column {name!r} cannot be numeric: its values are not numbers")
            return _profile_from_raw(name, raw, kind, with_moments=True)

        for name, built in zip(names, _map_columns(build, names, _n_rows(frame))):
            if built is None:
                skipped.append(name)
            else:
                profiles[name] = built
        return cls(profiles, tuple(skipped))

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def save(self, path: str | Path) -> Path:
        """Write the profile to ``path`` (``.npz``; the name is kept as given)."""
        path = Path(path)
        header: dict[str, Any] = {"format": PROFILE_FORMAT, "version": PROFILE_VERSION, "columns": []}
        arrays: dict[str, np.ndarray] = {}
        for i, col in enumerate(self.columns.values()):
            header["columns"].append({
                "name": col.name, "kind": col.kind, "n": col.n, "n_missing": col.n_missing,
                "is_integer": col.is_integer, "mean": _json_float(col.mean), "std": _json_float(col.std),
            })
            if col.kind == "numeric":
                arrays[f"{i}.values"], arrays[f"{i}.cum_counts"] = col.values, col.cum_counts
            else:
                arrays[f"{i}.keys"], arrays[f"{i}.counts"] = col.keys, col.counts
        header["skipped"] = list(self.skipped)
        arrays["header"] = np.array(json.dumps(header))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:  # a file object stops numpy from appending ".npz"
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub mistypes **kwds
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        """Read a profile written by :meth:`save`."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                header = json.loads(str(npz["header"][()]))
                if header.get("format") != PROFILE_FORMAT:
                    raise DriftInputError(f"{path} is not a ctflow drift profile")
                if header.get("version") != PROFILE_VERSION:
                    raise DriftInputError(f"{path}: unsupported profile version {header.get('version')}")
                profiles: dict[str, ColumnProfile] = {}
                for i, meta in enumerate(header["columns"]):
                    common = dict(
                        name=meta["name"], kind=meta["kind"], n=int(meta["n"]), n_missing=int(meta["n_missing"]),
                        is_integer=bool(meta["is_integer"]),
                        mean=math.nan if meta["mean"] is None else meta["mean"],
                        std=math.nan if meta["std"] is None else meta["std"],
                    )
                    if meta["kind"] == "numeric":
                        profiles[meta["name"]] = ColumnProfile(
                            values=npz[f"{i}.values"], cum_counts=npz[f"{i}.cum_counts"], **common)
                    else:
                        profiles[meta["name"]] = ColumnProfile(
                            keys=npz[f"{i}.keys"], counts=npz[f"{i}.counts"], **common)
        except (OSError, ValueError, KeyError) as exc:
            if isinstance(exc, DriftInputError):
                raise
            raise DriftInputError(f"cannot read drift profile {path}: {exc}") from exc
        return cls(profiles, tuple(header.get("skipped", ())))


# ---------------------------------------------------------------------- methods


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


def _aligned_counts(ref: ColumnProfile, cur: ColumnProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    _, rc, cc = _aligned_counts(ref, cur)
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
    _, rc, cc = _aligned_counts(ref, cur)
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
    _, rc, cc = _aligned_counts(ref, cur)
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


def _n_values(ref: ColumnProfile, cur: ColumnProfile) -> int:
    """Distinct values in reference and current together (only exact when small)."""
    if ref.n_unique > 5:
        return ref.n_unique  # already past every auto cut-off
    return len(_aligned_counts(ref, cur)[0])


def auto_method(ref: ColumnProfile, cur: ColumnProfile) -> str:
    """Evidently 0.7's default test for this column (see the module docstring)."""
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


def _compare(ref: ColumnProfile, cur: ColumnProfile, method: str, threshold: float | None) -> ColumnDrift:
    if method == "auto":
        method = auto_method(ref, cur)
    if method in NUMERIC_ONLY_METHODS and ref.kind != "numeric":
        raise DriftInputError(
            f"method {method!r} needs a numeric column but {ref.name!r} is categorical; "
            "choose a categorical method (cat_method / --cat-method)")
    limit = DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
    counts = dict(n_reference=ref.n, n_current=cur.n, missing_reference=ref.n_missing, missing_current=cur.n_missing)
    if ref.n == 0 or cur.n == 0:
        return ColumnDrift(ref.name, method, math.nan, None, limit, False, ref.kind, **counts)
    p_value: float | None = None
    if method == "ks":
        statistic, p_value = _ks(ref, cur)
    elif method == "chi2":
        statistic, p_value = _chi2(ref, cur)
    elif method == "z":
        statistic, p_value = _z(ref, cur)
    elif method == "psi":
        statistic = _psi(ref, cur)
    elif method == "wasserstein":
        statistic = _wasserstein(ref, cur)
    else:
        statistic = _jensenshannon(ref, cur)
    drifted = p_value < limit if p_value is not None else statistic >= limit
    return ColumnDrift(ref.name, method, float(statistic), p_value, limit, bool(drifted), ref.kind, **counts)


# ------------------------------------------------------------------------- API


def _current_profile(ref: ColumnProfile, values: Any) -> ColumnProfile:
    return _profile_from_raw(ref.name, _read_any(values), ref.kind, with_moments=False)


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
) -> DriftResult:
    """Drift of ``current`` against a saved reference profile (see :func:`dataset_drift`)."""
    for m in (method, num_method, cat_method):
        _check_method(m)
    names = list(columns) if columns is not None else profile.names
    _check_columns(names, profile.names, "the reference")
    available = _column_names(current)
    missing = [n for n in names if n not in set(available)]
    if missing:
        raise DriftInputError(f"unknown column {missing[0]!r} in the current data{suggest(missing[0], available)}")

    def compare(name: str) -> ColumnDrift:
        ref = profile.columns[name]
        chosen = (num_method if ref.kind == "numeric" else cat_method) or method or "auto"
        return _compare(ref, _current_profile(ref, _get_column(current, name)), chosen, threshold)

    n_rows = _n_rows(current)
    results = _map_columns(compare, names, n_rows)
    evaluated = [r for r in results if not math.isnan(r.statistic)]
    share = sum(r.drifted for r in evaluated) / len(evaluated) if evaluated else 0.0
    insufficient = drift_sufficiency.insufficient_reason(
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
                 name: str | None = None, kind: Kind | None = None) -> ColumnDrift:
    """Drift of one column (pandas Series, array or sequence); ``kind`` overrides inference."""
    _check_method(method)
    name = name if name is not None else str(getattr(reference, "name", None) or "value")
    raw = _read_any(reference)
    if kind == "numeric" and raw[0] == "category":
        raise DriftInputError(f"column {name!r} cannot be numeric: its values are not numbers")
    ref = _profile_from_raw(name, raw, kind, with_moments=True)
    return _compare(ref, _current_profile(ref, current), method, threshold)


def prediction_drift(reference_scores: Any, current_scores: Any, *, method: str = "auto",
                     threshold: float | None = None, name: str = "prediction",
                     kind: Kind | None = None) -> ColumnDrift:
    """Drift of a model's output: scores/probabilities (numeric) or predicted labels."""
    return column_drift(reference_scores, current_scores, method=method, threshold=threshold, name=name, kind=kind)


__all__ = [
    "DEFAULT_THRESHOLDS",
    "METHODS",
    "ColumnDrift",
    "ColumnProfile",
    "DriftInputError",
    "DriftResult",
    "ReferenceProfile",
    "auto_method",
    "column_drift",
    "dataset_drift",
    "dataset_drift_from_profile",
    "prediction_drift",
    "suggest",
]
