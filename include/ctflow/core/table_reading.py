"""Reading a user's table: an error the same table raises on every try, as a
:class:`~ctflow.exceptions.SourceDataError` naming the table, the column, what it should hold and
the fix.

:func:`feature_view_source` describes a feature view's table (what it declares of each column);
:meth:`SourceTable.reading` wraps where it is read: the ASOF join's query of each view
(:mod:`ctflow.core.feast_asof.job`) and each view's materialization (:mod:`ctflow.core.online`).
The readers are DuckDB and ibis (Feast's reader); which of their errors are final is
:func:`ctflow.exceptions.deterministic`'s rule, and any other error goes on as it is, to be
retried. No DuckDB, Feast or pandas import here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ctflow.exceptions import SourceDataError, deterministic

if TYPE_CHECKING:
    from feast import FeatureView

# DuckDB: "... when casting from source column read_at", 'Referenced column "x" not found ...';
# ibis: "Column 'load' is not found in table".
_COLUMN = re.compile(r"""source column "?(?P<a>[^\s"]+)"?|[Cc]olumn "(?P<b>[^"]+)"|[Cc]olumn '(?P<c>[^']+)'""")


@dataclass(frozen=True)
class Expected:
    """What one column of a table should hold, and how to make it so.

    :ivar column: the column's name in the table (before a source's field mapping).
    :ivar holds: what it should hold, e.g. "a timestamp (the view's event time)".
    :ivar fix: what to change when it does not.
    """

    column: str
    holds: str
    fix: str


def named_column(message: str) -> str | None:
    """The column a reader's error message names, if it names one."""
    found = _COLUMN.search(message)
    return next((name for name in found.groups() if name), None) if found else None


@dataclass(frozen=True)
class SourceTable:
    """A table and what its reader expects of it.

    :ivar reader: who reads it, e.g. "feature view origin_weather_hourly".
    :ivar table: the table (a file's path, else the source's name).
    :ivar expected: by the name the reader gives a column (after a field mapping), what it should hold.
    """

    reader: str
    table: str
    expected: Mapping[str, Expected]

    def error(self, error: BaseException) -> SourceDataError | None:
        """``error`` of reading the table as a :class:`SourceDataError`, or None when a retry may succeed."""
        if not deterministic(error):
            return None
        said = (str(error).strip().splitlines() or [type(error).__name__])[0]
        name = named_column(said)
        if name and "not found" in said:  # DuckDB's binder, ibis: a column the reader names is not there
            return self.missing([name])
        known = self.expected.get(name) if name else None
        problem = f"{self.reader} cannot read it: {said}"
        if known is None:
            return SourceDataError(problem, table=self.table, column=name,
                                   expected="the columns and types its feature view declares",
                                   fix=f"correct the table, or the {self.reader} that reads it")
        return SourceDataError(problem, table=self.table, column=known.column, expected=known.holds, fix=known.fix)

    def missing(self, names: list[str]) -> SourceDataError:
        """The table lacks the columns its reader names ``names`` (after a field mapping)."""
        columns = [self.expected[name].column if name in self.expected else name for name in names]
        return SourceDataError(f"{self.reader} reads column(s) {', '.join(columns)}, which the table does not have",
                               table=self.table, column=columns[0] if len(columns) == 1 else None,
                               expected=f"column(s) {', '.join(columns)}",
                               fix=f"add them to the table, or correct the {self.reader} (its schema, "
                                   "timestamp_field or field_mapping)")

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Run the block; an error the table would raise again (:meth:`error`) comes out as a
        :class:`SourceDataError`, any other as it is."""
        try:
            yield
        except Exception as error:
            translated = self.error(error)
            if translated is None:
                raise
            raise translated from error


def feature_view_source(view: FeatureView) -> SourceTable:
    """The batch source of ``view``, with what the view declares of its columns
    (:func:`ctflow.spec.column_types.declared_table`)."""
    from ctflow.spec.column_types import declared_table

    declared = declared_table(view)
    expected: dict[str, Expected] = {}
    for c in declared.columns:
        if c.entity_column is not None:
            holds = f"{c.dtype} values, in the entity table's join key {c.name} too"
            fix = f"give {c.column} the same type in {declared.table} and in the entity table (data.entities): {c.dtype}"
        elif c.dtype == "UnixTimestamp" and not c.role.startswith("feature"):
            holds = f"timestamps, the {c.role} of the {declared.reader}"
            field = "timestamp_field" if c.role == "event time" else "created_timestamp_column"
            fix = (f"store {c.column} in {declared.table} as a timestamp (pandas: datetime64 with a time zone), "
                   f"or name the right column in the source's {field}")
        else:
            holds = f"{c.dtype} values ({c.role.replace('feature ', f'feature {view.name}:', 1)})"
            fix = f"store {c.column} as {c.dtype}, or declare its type in the {declared.reader}"
        expected[c.name] = Expected(c.column, holds, fix)
    return SourceTable(reader=declared.reader, table=declared.table, expected=expected)
