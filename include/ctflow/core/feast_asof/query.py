"""The point-in-time join as one DuckDB query: the entity rows, then one ``ASOF LEFT JOIN`` per view.

Feast's rule for a row and a view: among the view's rows with equal join keys and
``event time <= row time`` (and, with a TTL, ``event time + ttl >= row time``), the one with
the newest event time, then the newest created time. ``ASOF LEFT JOIN`` finds the newest
event time directly (a null key matches nothing, as in Feast's equi-join); rows sharing an
event time are first reduced to their newest created time; the TTL is checked on the match,
since an older row cannot be fresher. Every entity row is kept, duplicates included: each
result row carries the entity row's position, and the job puts the views side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from ctflow.core.feast_asof.plan import ViewPlan

#: Column added to the entity rows: their position, to give them back in order.
ROW = "__asof_row"
#: The entity rows' event time, as TIMESTAMPTZ.
ENTITY_TIME = "__asof_entity_time"
#: A view's event time, as TIMESTAMPTZ.
EVENT_TIME = "__asof_event_time"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_queries(*, entity_table: str, event_timestamp: str, views: Sequence[ViewPlan]) -> list[str]:
    """One query per view: :data:`ROW` and the view's features, one row per entity row (in no order).

    Each join reads only the entity rows' position, time and keys: the ASOF join sorts its
    left side, so carrying the entity columns and the other views' features through every
    join would sort them again and again (measured: each chained join slower than the last).

    :param entity_table: a registered table with the entity columns and :data:`ROW`.
    :param event_timestamp: the entity column the features are joined as of.
    """
    queries = []
    for view in views:
        keys = list(dict.fromkeys(view.keys.values()))
        narrow = ", ".join([ROW, *(quote(key) for key in keys), f"CAST({quote(event_timestamp)} AS TIMESTAMPTZ) AS {ENTITY_TIME}"])
        conditions = [f"e.{quote(entity_key)} = v.{quote(key)}" for key, entity_key in view.keys.items()]
        conditions.append(f"e.{ENTITY_TIME} >= v.{EVENT_TIME}")
        fresh = _fresh("v", view.ttl)
        selected = [f"e.{ROW}"]
        for feature, output in view.features.items():
            value = f"v.{quote(feature)}"
            selected.append(f"{f'CASE WHEN {fresh} THEN {value} END' if fresh else value} AS {quote(output)}")
        queries.append(
            f"SELECT {', '.join(selected)} FROM (SELECT {narrow} FROM {quote(entity_table)}) AS e "
            f"ASOF LEFT JOIN ({_view_sql(view)}) AS v ON {' AND '.join(conditions)}"
        )
    return queries


def _view_sql(view: ViewPlan) -> str:
    """The view's rows as the join reads them: mapped names, UTC event time, one row per (keys, event time)."""
    columns = ", ".join(f"{quote(source)} AS {quote(name)}" for source, name in view.columns.items())
    renamed = f"SELECT {columns} FROM read_parquet({literal(view.path)})"
    sql = f"SELECT *, CAST({quote(view.timestamp)} AS TIMESTAMPTZ) AS {EVENT_TIME} FROM ({renamed})"
    if not view.created:
        return sql
    partition = ", ".join([*(quote(key) for key in view.keys), EVENT_TIME])
    created = f"CAST({quote(view.created)} AS TIMESTAMPTZ)"
    # Same event time: the newest created row wins (Feast orders by event, then created, descending).
    return f"SELECT * FROM ({sql}) QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {created} DESC NULLS LAST) = 1"


def _fresh(alias: str, ttl: timedelta | None) -> str | None:
    if ttl is None:
        return None
    micros = (ttl.days * 86_400 + ttl.seconds) * 1_000_000 + ttl.microseconds
    # Feast keeps a row while event time + ttl >= row time: a row exactly ttl old is still used.
    return f"{alias}.{EVENT_TIME} + to_microseconds({micros}) >= e.{ENTITY_TIME}"
