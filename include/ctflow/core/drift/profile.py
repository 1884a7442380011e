"""Per-column summaries every method works on, and the saved reference profile.

A numeric column is sorted once (integers with a small range are counted with
``bincount`` instead) into run-length form; a categorical one is counted once. The
reference side is built once from training data and saved as one ``.npz`` so that a
monitoring run reads only the new window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctflow.core.drift.calibration import Null
from ctflow.core.drift.readers import (
    RawColumn,
    check_columns,
    column_names,
    get_column,
    map_columns,
    read_column,
    row_count,
)
from ctflow.core.drift.results import DriftInputError, Kind, json_float

#: Integer columns with at most this many distinct values are categorical.
INTEGER_CARDINALITY_LIMIT = 10
#: The saved profile's header names its format and version.
PROFILE_FORMAT = "ctflow-drift-profile"
PROFILE_VERSION = 1


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


def profile_from_raw(name: str, raw: RawColumn, kind: Kind | None, with_moments: bool) -> ColumnProfile:
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
        few_integers = is_integer and len(values) <= INTEGER_CARDINALITY_LIMIT
        kind = "categorical" if is_bool or few_integers else "numeric"
    if kind == "categorical":
        return _categorical_profile(name, values, np.diff(cum, prepend=0), n_total)
    return _numeric_profile(name, values, cum, n_total, is_integer, with_moments)


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Per-column reference summaries: build once from training data, reuse for every window.

    Saved as one ``.npz`` (numpy arrays plus a JSON header, no pickle).
    """

    columns: dict[str, ColumnProfile]
    skipped: tuple[str, ...] = field(default=())
    #: Per column, the empirical null of windows of the monitoring window's length (:mod:`.calibration`).
    nulls: dict[str, Null] = field(default_factory=dict)
    #: Per column, its permutation importance to the model this profile is the reference of.
    importances: dict[str, float] = field(default_factory=dict)

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
        available = column_names(frame)
        forced: dict[str, Kind] = dict.fromkeys(categorical, "categorical")
        forced.update(dict.fromkeys(numerical, "numeric"))
        check_columns(list(forced), available, "the reference data")
        if columns is not None:
            check_columns(list(columns), available, "the reference data")
        names = list(columns) if columns is not None else available
        profiles: dict[str, ColumnProfile] = {}
        skipped: list[str] = []

        def build(name: str) -> ColumnProfile | None:
            raw = read_column(get_column(frame, name))
            if raw[0] == "unsupported" and columns is None:
                return None  # skipped: only named columns must be supported
            kind = forced.get(name)
            if kind == "numeric" and raw[0] == "category":
                raise DriftInputError(f"column {name!r} cannot be numeric: its values are not numbers")
            return profile_from_raw(name, raw, kind, with_moments=True)

        for name, built in zip(names, map_columns(build, names, row_count(frame)), strict=True):
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
                "is_integer": col.is_integer, "mean": json_float(col.mean), "std": json_float(col.std),
                # optional keys: a profile without them (older, or uncalibrated) compares raw
                **({"null": self.nulls[col.name].to_dict()} if col.name in self.nulls else {}),
                **({"importance": json_float(self.importances[col.name])} if col.name in self.importances else {}),
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
                nulls: dict[str, Null] = {}
                importances: dict[str, float] = {}
                for i, meta in enumerate(header["columns"]):
                    if meta.get("null") is not None:
                        nulls[meta["name"]] = Null.from_dict(meta["null"])
                    if meta.get("importance") is not None:
                        importances[meta["name"]] = float(meta["importance"])
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
        return cls(profiles, tuple(header.get("skipped", ())), nulls, importances)

