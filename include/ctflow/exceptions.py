"""Exceptions raised by ctflow, and the one rule of which errors a retry cannot change.

Each exception carries the data a caller needs to act on it. :func:`not_retried` says whether an
error is final: a :class:`ConfigurationError` (a :class:`SourceDataError` too), or an error a
library raises for the same input every time (DuckDB failing to convert, bind or parse; ibis
meeting a column it cannot type). Operators fail their task for good on it
(``AirflowFailException``), ``ctflow run-step`` exits 2; anything else keeps the task's retries.
"""

from __future__ import annotations

import sys


class CtflowError(Exception):
    """Base class of every ctflow error."""


class ConfigurationError(CtflowError):
    """The spec or the deployment asks for something that does not exist or does not fit the data.

    A retry cannot change it: operators fail the task for good (``AirflowFailException``),
    ``ctflow run-step`` exits 2. Only a fix of the spec, the data or the deployment does.

    :ivar field: what is wrong, as the spec (``data.features``) or the deployment names it.
    :ivar fix: what to change.
    """

    def __init__(self, problem: str, *, field: str, fix: str) -> None:
        self.problem = problem
        self.field = field
        self.fix = fix
        super().__init__(f"{field}: {problem}; fix: {fix}")


class SourceDataError(ConfigurationError):
    """A user's table holds what ctflow cannot read as declared: a column of another type, a value
    that does not convert, a missing column. Every try reads the same table, so it is final.

    :ivar table: the table (file) read.
    :ivar column: the column at fault, None when the reader did not say.
    :ivar expected: what the column (or the table) should hold.
    """

    def __init__(self, problem: str, *, table: str, column: str | None, expected: str, fix: str) -> None:
        self.table = table
        self.column = column
        self.expected = expected
        where = f"{table}, column {column!r}" if column else table
        super().__init__(f"{problem}; expected {expected}", field=where, fix=fix)


#: Errors that the same input raises again, by the module that defines them. DuckDB's conversion,
#: binder, catalog and parser errors depend only on the query and the data. Not listed, so retried:
#: its IO errors (a lock held by another process, a network read) and its invalid-input errors,
#: which include a parquet file read while its writer is still writing it.
DETERMINISTIC: dict[str, tuple[str, ...]] = {
    "duckdb": ("ConversionException", "OutOfRangeException", "TypeMismatchException", "BinderException",
               "CatalogException", "ParserException", "SyntaxException", "InvalidTypeException"),
    "ibis.common.exceptions": ("IbisTypeError",),
}


def deterministic(error: BaseException) -> bool:
    """Whether ``error`` is one of :data:`DETERMINISTIC`. A module not imported yet raised nothing,
    so none is imported here (DAG parsing must not import DuckDB)."""
    for module_name, names in DETERMINISTIC.items():
        module = sys.modules.get(module_name)
        # getattr's default: a library version without one of the classes cannot have raised it.
        classes = tuple(cls for name in names if isinstance(cls := getattr(module, name, None), type))
        if classes and isinstance(error, classes):
            return True
    return False


def final_reason(error: BaseException) -> tuple[str, str] | None:
    """The kind (``configuration`` or ``data``) of an error a retry cannot change, and why, as one line
    for the task log; None: a retry may succeed."""
    if isinstance(error, ConfigurationError):
        return "configuration", f"configuration error (not retried): {error}"
    if deterministic(error):
        said = str(error).strip().splitlines()
        return "data", f"data error (not retried): {type(error).__name__}: {said[0] if said else ''}"
    return None


def not_retried(error: BaseException) -> str | None:
    """Why a retry cannot change ``error``, as one line for the task log; None: a retry may succeed."""
    found = final_reason(error)
    return found[1] if found else None
