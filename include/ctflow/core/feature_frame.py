"""Feast's retrieval result, an Arrow table, as ctflow's feature columns: converted to pandas once.

Feast's ``to_df`` is ``to_arrow().to_pandas()`` followed by a copy; sorting that frame by row
number, normalising each column and setting it beside the entity rows copied the whole frame
three or four times more (issue #17: 938 MB peak for the demo year, against 655 MB for pandas'
``merge_asof``). Here only the feature columns are kept, put in entity-row order and cast on
the Arrow side, and the table becomes pandas in one pass that frees each Arrow column as it
is converted (``self_destruct``) and keeps one block per column (``split_blocks``: no
consolidation copy). A column Arrow cannot cast as pandas would (text numbers, dates out of
the nanosecond range, unexpected types) is normalised in pandas, as before.

No Airflow and no Feast here: the table may come from any offline store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: pandas dtype of each kind of feature, whatever is missing.
DTYPES = {"number": "float64", "time": "datetime64[ns, UTC]", "other": "object"}
_UTC_NS = pa.timestamp("ns", tz="UTC")


class NotOneRowPerEntityRowError(ValueError):
    """The retrieval did not return each entity row exactly once."""

    def __init__(self, returned: int, expected: int):
        self.returned, self.expected = returned, expected
        super().__init__(f"{returned} rows returned for {expected} entity rows")


def feature_columns(table: pa.Table, kinds: dict[str, str], *, row: str, rows: int) -> pd.DataFrame:
    """The columns named in ``kinds`` (feature -> "number", "time" or "other"), in that order and
    in the order of ``table``'s ``row`` column, as ``float64``, ``datetime64[ns, UTC]`` and
    ``object`` with ``None`` for missing.

    ``table`` is consumed: pass it without keeping a reference (``feature_columns(job.to_arrow(), ...)``),
    so that its buffers are released as the columns are converted.

    :param row: column holding each row's entity-row position, 0 .. ``rows`` - 1, each once.
    :raises NotOneRowPerEntityRowError: ``row`` does not hold each position exactly once.
    """
    returned = table.num_rows
    # Without pandas' metadata: the final dtypes are ours, and it could rebuild an index or string dtype.
    table = _in_row_order(table.select([row, *kinds]).replace_schema_metadata(None), row, rows)
    if table is None:
        raise NotOneRowPerEntityRowError(returned, rows)
    in_pandas: dict[str, str] = {}
    columns = []
    for name, kind in kinds.items():
        column = _arrow_cast(table.column(name), kind)
        if column is None:
            column = table.column(name)
            in_pandas[name] = kind
        columns.append(column)
    table = pa.table(columns, names=list(kinds))
    del columns
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table  # self_destruct: the table is unusable from here on
    for name, kind in in_pandas.items():
        frame[name] = normalise(frame[name], kind)
    return frame


def _in_row_order(table: pa.Table, row: str, rows: int) -> pa.Table | None:
    """``table`` sorted by ``row``, or None unless ``row`` holds 0 .. rows - 1 once each.

    The ASOF store already returns rows in entity order: then nothing is copied.
    """
    if table.num_rows != rows:
        return None
    positions = table.column(row).to_numpy()
    expected = np.arange(rows, dtype=np.int64)
    if np.array_equal(positions, expected):
        return table
    order = np.argsort(positions, kind="stable")
    if not np.array_equal(positions[order], expected):
        return None
    return table.take(order)


def _arrow_cast(column: pa.ChunkedArray, kind: str) -> pa.ChunkedArray | None:
    """``column`` cast as pandas would cast it, or None to leave it to pandas."""
    kind_of = column.type
    if kind == "number" and (pa.types.is_integer(kind_of) or pa.types.is_floating(kind_of)):
        # Unchecked, as numpy's astype: a large integer rounds to the nearest float64.
        return pc.cast(column, pa.float64(), safe=False)
    if kind == "time" and pa.types.is_timestamp(kind_of):
        try:  # a naive time is UTC wall-clock time; Arrow relabels it, as tz_localize("UTC")
            return pc.cast(column, _UTC_NS)
        except pa.ArrowInvalid:  # outside the nanosecond range: pandas raises its own error
            return None
    return None


def normalise(values: pd.Series, kind: str) -> pd.Series:
    """``values`` in the dtype of ``kind`` (:data:`DTYPES`)."""
    if kind == "number":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    if kind == "time":
        return as_utc(values)
    return objects_with_none(values)


def as_utc(values: pd.Series) -> pd.Series:
    """``values`` as ``datetime64[ns, UTC]``; naive times are taken as UTC."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def objects_with_none(values: pd.Series) -> pd.Series:
    """``values`` as Python objects with ``None`` for every kind of missing marker (NaN, NaT, pd.NA)."""
    as_objects = values.astype(object, copy=False)  # ``where`` below makes the one copy
    # pandas accepts other=None (the stubs do not): None is the one marker every consumer reads alike.
    return as_objects.where(as_objects.notna(), None)  # type: ignore[call-overload]
