"""Columns out of whatever the caller holds: pandas, pyarrow, numpy or plain sequences.

Each reader returns a :data:`RawColumn` (numbers as float64, or category counts) that
:mod:`.profile` summarises; the frame helpers name, count and fetch columns, and run a
function over columns on threads when the data is large.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ctflow.core.drift.results import DriftInputError, suggest

#: Below this many cells (rows x columns) threads cost more than they save.
PARALLEL_MIN_CELLS = 2_000_000


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
RawColumn = tuple[str, Any, Any, Any, int]


def _read_pandas(series: Any) -> RawColumn:
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


def _read_arrow(array: Any) -> RawColumn:
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


def read_column(values: Any) -> RawColumn:
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


def row_count(frame: Any) -> int:
    if hasattr(frame, "num_rows"):  # pyarrow.Table
        return int(frame.num_rows)
    if hasattr(frame, "columns") or not isinstance(frame, Mapping):
        return len(frame)
    return max((len(v) for v in frame.values()), default=0)


def map_columns(fn: Any, names: Sequence[str], n_rows: int) -> list[Any]:
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


def column_names(frame: Any) -> list[str]:
    if hasattr(frame, "column_names"):  # pyarrow.Table
        return [str(c) for c in frame.column_names]
    if hasattr(frame, "columns"):  # pandas.DataFrame
        return [str(c) for c in frame.columns]
    if isinstance(frame, Mapping):
        return [str(c) for c in frame]
    raise DriftInputError(f"expected a DataFrame, pyarrow Table or mapping of columns, got {type(frame).__name__}")


def get_column(frame: Any, name: str) -> Any:
    if hasattr(frame, "column_names"):
        return frame.column(name)
    return frame[name]


def check_columns(requested: Sequence[str], available: Sequence[str], where: str) -> None:
    known = set(available)
    for name in requested:
        if name not in known:
            raise DriftInputError(f"unknown column {name!r} in {where}{suggest(name, available)}")

