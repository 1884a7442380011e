"""Column types as part of the data contract: each table's parquet schema against what Feast declares.

A feature view declares the type of each feature, of its entities' join keys and of its
timestamp fields; the entity table (``data.entities``) holds the same join keys. A table that
stores another type fails late or not at all: a join key of text in one table and integers in
the other fails the point-in-time join on the first value DuckDB cannot convert; a Float64
feature stored as text reaches training as NaN (the frame's numbers go through
``pd.to_numeric(errors="coerce")``); Feast's materialization raises a generic ``ValueError`` or
``AssertionError`` that the task retries. Here the schemas are compared first (the parquet
footer only, no row is read), and each mismatch names the table, the column, the declared type,
the stored type and the fix.

Which stored types each declaration accepts is what both readers (ctflow's ASOF join in DuckDB,
Feast's materialization through ibis) read to the same values, measured on real tables
(``tests/spec/test_column_types.py`` keeps the measurement):

* Float64: int64, float64, decimal. Feast's materialization asserts the Python type of the
  first value and refuses float32, the other integer widths and booleans;
* Float32, Int32, Int64: any integer, floating or decimal column (Feast converts with
  ``float()``/``int()``); text is refused: the ASOF join turns what is no number into NaN;
* String: string, large_string, dictionary-encoded strings. Numbers are refused: training would
  see the numbers and the online store their text;
* Bool: booleans. UnixTimestamp, and every timestamp field: a timestamp of any unit, naive
  (taken as UTC) or with any time zone, or a date (midnight UTC). Text is refused (Feast's
  materialization cannot read it; a value that is no time fails the join), integers too (the
  join would read epoch seconds as nanoseconds);
* join keys: text for a String entity, integers (or floats holding them) for an Int32/Int64
  entity, in the view's table and in the entity table alike. An integer key for a String entity
  joins in DuckDB but is stored under another key online, where no lookup finds it;
* a column of nulls only (pandas' all-None column) holds no value to misread: accepted.

A type this module does not know (bytes, arrays, maps, JSON) is not checked. A table that
cannot be opened is no type mismatch: at run time its reader reports it (and retries, as a file
being rewritten may be back); :func:`unreadable` lists them for ``ctflow validate --deep``.

pyarrow and Feast are imported inside the functions: :mod:`ctflow.spec` is read at DAG parse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctflow.exceptions import SourceDataError
from ctflow.spec.errors import did_you_mean

#: How a declared type is to be stored, as the fix says it.
_STORE_AS = {
    "Float64": "float64 (pandas: pd.to_numeric(column).astype('float64'))",
    "Float32": "numbers (pandas: pd.to_numeric(column))",
    "Int64": "integers (pandas: pd.to_numeric(column).astype('Int64'))",
    "Int32": "integers (pandas: pd.to_numeric(column).astype('Int64'))",
    "String": "text (pandas: column.astype('string'))",
    "Bool": "booleans (pandas: column.astype('boolean'))",
    "UnixTimestamp": "a timestamp (pandas: pd.to_datetime(column, utc=True))",
}


@dataclass(frozen=True)
class DeclaredColumn:
    """One column a feature view reads, and the type it declares for it.

    :ivar column: the column's name in the view's table (before the source's field mapping).
    :ivar dtype: the declared Feast type, e.g. "Float64", "String" ("UnixTimestamp" for a timestamp field).
    :ivar role: what the column is to the view, e.g. "feature temp", "join key origin", "event time".
    :ivar entity_column: for a join key, its name in the entity table; else None.
    :ivar name: the name the view gives the column (after the field mapping), which readers' errors use.
    """

    column: str
    dtype: str
    role: str
    entity_column: str | None = None
    name: str = ""


@dataclass(frozen=True)
class DeclaredTable:
    """A feature view's parquet table and the columns it declares.

    :ivar table: the file's path as the source names it.
    :ivar reader: who reads it, e.g. "feature view origin_weather_hourly".
    """

    table: str
    reader: str
    columns: tuple[DeclaredColumn, ...]


@dataclass(frozen=True)
class TypeMismatch:
    """A column stored otherwise than declared, or missing (``found`` None).

    :ivar table: the file (as the view's source names it, or as the spec names the entity table).
    :ivar entity_table: whether ``table`` is the entity table (``data.entities``).
    :ivar suggestion: for a missing column, the table's closest column name.
    """

    table: str
    column: str
    declared: str
    found: str | None
    reader: str
    role: str
    fix: str
    entity_table: bool = False
    suggestion: str | None = None

    @property
    def message(self) -> str:
        """One line naming the table, the column, the declared and the stored type, and the fix."""
        where = f"{self.table}, column {self.column!r}"
        if self.found is None:
            return f"{where}: the {self.reader} reads it ({self.role}), but the table has no such column; fix: {self.fix}"
        return (f"{where}: the {self.reader} declares {self.declared} ({self.role}), but the table stores "
                f"{self.found}; fix: {self.fix}")

    def error(self, *, more: int = 0) -> SourceDataError:
        """This mismatch as the run's error; ``more``: how many other mismatches were found."""
        found = "no such column" if self.found is None else f"{self.found} values stored"
        others = (f" ({more} other column type mismatch(es): `ctflow validate --deep` lists them all)"
                  if more else "")
        return SourceDataError(f"{found} where the {self.reader} declares {self.role} as {self.declared}{others}",
                               table=self.table, column=self.column, expected=f"{self.declared} values", fix=self.fix)


def declared_tables(store: Any, service: Any, *, allow_registry_cache: bool = True) -> list[DeclaredTable]:
    """What each view of Feast feature service ``service`` declares of its parquet table.

    Every feature of a view, not only those the service selects: materialization reads them all.
    A view whose source is no local parquet file or folder (a query, a warehouse table, a remote
    URI), or an on-demand view, is left out: its reader is not DuckDB over a local file.
    """
    from feast.errors import FeatureViewNotFoundException

    tables = []
    for projection in service.feature_view_projections:
        try:
            view = store.get_feature_view(projection.name, allow_registry_cache=allow_registry_cache)
        except FeatureViewNotFoundException:  # an on-demand view: no table of its own
            continue
        path = getattr(view.batch_source, "path", None)
        if not path or not str(path).endswith(".parquet") or "://" in str(path):  # remote: read by Feast's store
            continue
        tables.append(declared_table(view, join_key_map=projection.join_key_map))
    return tables


def declared_table(view: Any, *, join_key_map: dict[str, str] | None = None) -> DeclaredTable:
    """What Feast feature view ``view`` declares of its batch source's table (a file's path, else the
    source's name): each feature, join key and timestamp field, by its name in the table.

    :param join_key_map: a service's renaming of the view's join keys in the entity table.
    """
    source = view.batch_source
    original = {new: old for old, new in (source.field_mapping or {}).items()}
    columns = [DeclaredColumn(original.get(f.name, f.name), _dtype_name(f.dtype), f"feature {f.name}", name=f.name)
               for f in view.features]
    entity_names = join_key_map or {}
    columns += [DeclaredColumn(original.get(k.name, k.name), _dtype_name(k.dtype), f"join key {k.name}",
                               entity_column=entity_names.get(k.name, k.name), name=k.name) for k in view.entity_columns]
    for role, name in (("event time", source.timestamp_field), ("created time", source.created_timestamp_column)):
        if name:
            columns.append(DeclaredColumn(original.get(name, name), "UnixTimestamp", role, name=name))
    table = getattr(source, "path", None) or source.name
    return DeclaredTable(str(table), f"feature view {view.name}", tuple(columns))


def type_mismatches(
    tables: Sequence[DeclaredTable], *, entities: Path | None = None, entities_shown: str = ""
) -> list[TypeMismatch]:
    """Every column of ``tables`` (and the join keys of the entity table ``entities``) stored
    otherwise than declared, or missing from a view's table. A table that cannot be opened is skipped.

    :param entities_shown: how the spec names the entity table.
    """
    mismatches: list[TypeMismatch] = []
    for table in tables:
        schema = _schema(Path(table.table))
        if schema is not None:
            mismatches += _table_mismatches(table, schema)
    keys = {c.entity_column: (c, t) for t in tables for c in t.columns if c.entity_column}
    schema = _schema(entities) if entities is not None else None
    if schema is not None:
        for name, (key, table) in keys.items():
            if name in schema.names and not accepts(key.dtype, schema.field(name).type, join_key=True):
                mismatches.append(TypeMismatch(
                    entities_shown, name, key.dtype, _type_name(schema.field(name).type), table.reader, key.role,
                    f"store {name} in the entity table as {_key_kind(key.dtype)}, as {table.table} and the "
                    f"{table.reader}'s entity declare it ({key.dtype})", entity_table=True))
    return mismatches


def unreadable(tables: Iterable[DeclaredTable]) -> list[DeclaredTable]:
    """The tables of ``tables`` that are no readable parquet file."""
    return [t for t in tables if _schema(Path(t.table)) is None]


def raise_on_mismatch(mismatches: Sequence[TypeMismatch]) -> None:
    """Raise the first of ``mismatches`` as a :class:`SourceDataError` (final), saying how many more."""
    if mismatches:
        raise mismatches[0].error(more=len(mismatches) - 1)


def accepts(dtype: str, found: Any, *, join_key: bool = False) -> bool:
    """Whether a column of pyarrow type ``found`` is read as declared Feast type ``dtype`` (a type
    not known here is accepted: not checked)."""
    import pyarrow as pa

    t = pa.types
    if t.is_null(found):
        return True
    text = t.is_string(found) or t.is_large_string(found) or (
        t.is_dictionary(found) and (t.is_string(found.value_type) or t.is_large_string(found.value_type)))
    if dtype == "String":
        return text
    if join_key and dtype in ("Int64", "Int32"):
        return t.is_integer(found) or t.is_floating(found)
    if dtype == "Float64":
        return found in (pa.int64(), pa.float64()) or t.is_decimal(found)
    if dtype in ("Float32", "Int64", "Int32"):
        return t.is_integer(found) or t.is_floating(found) or t.is_decimal(found)
    if dtype == "Bool":
        return t.is_boolean(found)
    if dtype == "UnixTimestamp":
        return t.is_timestamp(found) or t.is_date32(found)
    return True


def _table_mismatches(table: DeclaredTable, schema: Any) -> list[TypeMismatch]:
    found = []
    for column in table.columns:
        if column.column not in schema.names:
            found.append(TypeMismatch(
                table.table, column.column, column.dtype, None, table.reader, column.role,
                f"add {column.column} to the table, or correct the {table.reader} (its schema, timestamp_field "
                "or the source's field_mapping)", suggestion=did_you_mean(column.column, schema.names)))
        elif not accepts(column.dtype, kind := schema.field(column.column).type, join_key=column.entity_column is not None):
            found.append(TypeMismatch(table.table, column.column, column.dtype, _type_name(kind), table.reader, column.role,
                                      _fix(table, column)))
    return found


def _fix(table: DeclaredTable, column: DeclaredColumn) -> str:
    if column.entity_column is not None:
        return (f"store {column.column} as {_key_kind(column.dtype)}, as its entity declares ({column.dtype}), here "
                f"and in the entity table's {column.entity_column}")
    if column.role.startswith("feature"):
        return (f"store {column.column} as {_STORE_AS.get(column.dtype, column.dtype)}, or declare its type in the "
                f"{table.reader} (Field(name={column.role.removeprefix('feature ')!r}, dtype=...))")
    field = "timestamp_field" if column.role == "event time" else "created_timestamp_column"
    return f"store {column.column} as {_STORE_AS['UnixTimestamp']}, or name the right column in the source's {field}"


def _key_kind(dtype: str) -> str:
    return "text (pandas: column.astype('string'))" if dtype == "String" else "integers"


def _type_name(kind: Any) -> str:
    """A pyarrow type as the user wrote it: pyarrow calls float64 "double" and float32 "float"."""
    import pyarrow as pa

    return f"float{kind.bit_width}" if pa.types.is_floating(kind) else str(kind)


def _schema(path: Path) -> Any:
    """The arrow schema of the parquet file ``path`` (its footer; a folder of parquet files: its
    first file's, with the folder names' hive partition columns, as DuckDB reads it), or None if it
    cannot be read."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    try:
        return ds.dataset(path, format="parquet", partitioning="hive").schema if path.is_dir() else pq.read_schema(path)
    except (pa.ArrowException, OSError):
        return None


#: Feast's primitive types by member name, as a repository's declarations name them.
_FEAST_NAMES = {"FLOAT64": "Float64", "FLOAT32": "Float32", "INT64": "Int64", "INT32": "Int32", "STRING": "String",
                "BOOL": "Bool", "UNIX_TIMESTAMP": "UnixTimestamp"}


def _dtype_name(dtype: Any) -> str:
    """Feast's type as a repository declares it ("Float64", "String", ...); another type as Feast prints it."""
    name = getattr(dtype, "name", None)
    return _FEAST_NAMES.get(name, str(name)) if isinstance(name, str) else str(dtype)
