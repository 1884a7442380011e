"""The predictions store: what the monitoring DAG scored, and how each model did, in SQL.

Two tables, created on first use (SQLAlchemy Core, no Airflow here):

``ctflow_predictions``
    One row per scored entity row and model: pipeline, model name, version, alias
    (``champion``/``challenger``), the scoring window, the row's position in the window, its
    entity key (JSON of the Feast join keys), its timestamp, the score and when it was scored.
    A window is written with :meth:`PredictionStore.replace_window`: delete the window's rows and
    insert the new ones in **one transaction**, so re-running a window replaces, never duplicates,
    and a reader never sees half a window.

``ctflow_performance``
    One row per pipeline and ground-truth window: the metric of the champion and, when there is
    one, of the challenger on the same rows, and whether the challenger won. It is both the
    metric-over-time history of the report and the bookkeeping of a challenger's consecutive
    wins and losses (:meth:`PredictionStore.streak`). With a challenger it also keeps the window's
    per-row loss differences (champion minus challenger) as running sums (rows, sum, sum of
    squares), which :meth:`PredictionStore.challenger_evidence` adds up for the sequential test
    (:mod:`ctflow.core.monitoring.sequential`). Also replaced per window.

Where: :func:`default_url` is ``$CTFLOW_PREDICTIONS_URL`` (e.g. a PostgreSQL URL in production),
else a SQLite file ``predictions.db`` under :func:`ctflow.settings.home`. Timestamps are stored as
naive UTC.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

URL_ENV = "CTFLOW_PREDICTIONS_URL"

metadata = MetaData()

predictions = Table(
    "ctflow_predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("model_name", String(256), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("alias", String(32), nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("window_end", DateTime, nullable=False),
    Column("row", Integer, nullable=False),
    Column("entity_key", Text, nullable=False),
    Column("event_timestamp", DateTime, nullable=False),
    Column("score", Float, nullable=True),
    Column("scored_at", DateTime, nullable=False),
    Column("run_key", String(512), nullable=True),
    Index("ix_ctflow_predictions_window", "pipeline", "window_start", "window_end"),
)

performance = Table(
    "ctflow_performance",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("window_end", DateTime, nullable=False),
    Column("metric", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("champion_version", String(32), nullable=False),
    Column("champion_value", Float, nullable=True),
    Column("challenger_version", String(32), nullable=True),
    Column("challenger_value", Float, nullable=True),
    Column("challenger_won", Boolean, nullable=True),
    Column("loss_diff_rows", Integer, nullable=True),
    Column("loss_diff_sum", Float, nullable=True),
    Column("loss_diff_sum_sq", Float, nullable=True),
    Column("recorded_at", DateTime, nullable=False),
    Column("run_key", String(512), nullable=True),
    Index("ix_ctflow_performance_window", "pipeline", "window_end"),
)


def default_url() -> str:
    """``$CTFLOW_PREDICTIONS_URL``, else SQLite ``predictions.db`` in ctflow's home."""
    from ctflow import settings

    return os.environ.get(URL_ENV) or f"sqlite:///{settings.home() / 'predictions.db'}"


def utc_naive(moment: Any) -> datetime:
    """``moment`` (datetime, pandas Timestamp or ISO text) as a naive UTC datetime, as stored."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if hasattr(moment, "to_pydatetime"):
        moment = moment.to_pydatetime()
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


@functools.lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # readers do not block the writer of a window
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    metadata.create_all(engine)
    _add_missing_columns(engine, performance)
    return engine


def _add_missing_columns(engine: Engine, table: Table) -> None:
    """Add the nullable columns a store made by an older ctflow lacks (``create_all`` only makes
    missing tables); their rows read as null: windows recorded before the column existed."""
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import DBAPIError

    present = {c["name"] for c in inspect(engine).get_columns(table.name)}
    for column in table.columns:
        if column.name in present or not column.nullable:
            continue
        kind = column.type.compile(dialect=engine.dialect)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
        except DBAPIError:  # another process added it first
            if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                raise


@dataclass(frozen=True)
class PerformanceRecord:
    """One ground-truth window's result (a row of ``ctflow_performance``)."""

    pipeline: str
    window_start: datetime
    window_end: datetime
    metric: str
    rows: int
    champion_version: str
    champion_value: float | None
    challenger_version: str | None = None
    challenger_value: float | None = None
    challenger_won: bool | None = None
    #: The window's per-row loss differences (champion minus challenger): rows, sum, sum of squares.
    loss_diff_rows: int | None = None
    loss_diff_sum: float | None = None
    loss_diff_sum_sq: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}


class PredictionStore:
    """
    The predictions and performance tables at ``url`` (default :func:`default_url`).

    :param url: a SQLAlchemy URL; engines are shared per URL within a process.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine = _engine(self.url)

    # -- predictions --------------------------------------------------------------------------

    def replace_window(
        self,
        *,
        pipeline: str,
        window_start: datetime,
        window_end: datetime,
        rows: Sequence[dict[str, Any]],
        run_key: str | None = None,
    ) -> int:
        """Replace the predictions of one window of ``pipeline`` with ``rows``, atomically.

        Each row holds ``model_name, model_version, alias, row, entity_key, event_timestamp, score``;
        pipeline, window, ``scored_at`` and ``run_key`` are added here. Returns rows written.
        """
        start, end = utc_naive(window_start), utc_naive(window_end)
        scored_at = utc_naive(datetime.now(UTC))
        records = [
            {**row, "event_timestamp": utc_naive(row["event_timestamp"]), "pipeline": pipeline, "window_start": start,
             "window_end": end, "scored_at": scored_at, "run_key": run_key}
            for row in rows
        ]
        with self.engine.begin() as conn:  # one transaction: delete + insert, or nothing
            conn.execute(delete(predictions).where(_window(predictions, pipeline, start, end)))
            if records:
                conn.execute(predictions.insert(), records)
        return len(records)

    def count(self, *, pipeline: str, window_start: datetime | None = None, window_end: datetime | None = None,
              alias: str | None = None) -> int:
        """Stored predictions of ``pipeline`` (of one window and alias, if given)."""
        query = select(func.count()).select_from(predictions).where(predictions.c.pipeline == pipeline)
        if window_start is not None and window_end is not None:
            query = query.where(_window(predictions, pipeline, utc_naive(window_start), utc_naive(window_end)))
        if alias is not None:
            query = query.where(predictions.c.alias == alias)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def window_rows(self, *, pipeline: str, window_start: datetime, window_end: datetime) -> list[dict[str, Any]]:
        """The stored predictions of one window, in row order."""
        query = (
            select(predictions)
            .where(_window(predictions, pipeline, utc_naive(window_start), utc_naive(window_end)))
            .order_by(predictions.c.row, predictions.c.alias)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- performance and a challenger's record ------------------------------------------------

    def record_performance(self, record: PerformanceRecord, *, run_key: str | None = None) -> None:
        """Store one window's result, replacing an earlier result of the same window."""
        start, end = utc_naive(record.window_start), utc_naive(record.window_end)
        values = {**asdict(record), "window_start": start, "window_end": end, "run_key": run_key,
                  "recorded_at": utc_naive(datetime.now(UTC))}
        with self.engine.begin() as conn:
            conn.execute(delete(performance).where(_window(performance, record.pipeline, start, end)))
            conn.execute(performance.insert(), [values])

    def performance_history(
        self, pipeline: str, *, until: datetime | None = None, limit: int = 365
    ) -> list[PerformanceRecord]:
        """Results of ``pipeline``'s windows ending at or before ``until``, oldest first (at most ``limit``)."""
        query = select(performance).where(performance.c.pipeline == pipeline)
        if until is not None:
            query = query.where(performance.c.window_end <= utc_naive(until))
        query = query.order_by(performance.c.window_end.desc(), performance.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        fields = PerformanceRecord.__dataclass_fields__
        return [PerformanceRecord(**{k: v for k, v in row.items() if k in fields}) for row in reversed(rows)]

    def streak(
        self, pipeline: str, *, challenger_version: str, champion_version: str, until: datetime
    ) -> tuple[int, int]:
        """``(wins, losses)`` in a row of this challenger against this champion, ending at ``until``.

        Counted back from the newest recorded window: windows the pair did not both score
        (no challenger, another champion or challenger) end the run, as does the other outcome.
        Windows with no labelled rows record nothing and so neither extend nor break a run.
        """
        wins = losses = 0
        for record in reversed(self.performance_history(pipeline, until=until, limit=1000)):
            if (record.challenger_version != challenger_version or record.champion_version != champion_version
                    or record.challenger_won is None):
                break
            if record.challenger_won and not losses:
                wins += 1
            elif not record.challenger_won and not wins:
                losses += 1
            else:
                break
        return wins, losses

    def challenger_evidence(
        self, pipeline: str, *, challenger_version: str, champion_version: str, until: datetime
    ) -> EvidenceTotals:
        """The loss differences of this challenger against this champion summed over every recorded
        window ending at or before ``until`` (not only consecutive ones: the test pools them all)."""
        query = select(
            func.count(), func.sum(performance.c.loss_diff_rows), func.sum(performance.c.loss_diff_sum),
            func.sum(performance.c.loss_diff_sum_sq),
        ).where(
            performance.c.pipeline == pipeline, performance.c.challenger_version == challenger_version,
            performance.c.champion_version == champion_version, performance.c.window_end <= utc_naive(until),
            performance.c.loss_diff_rows > 0,
        )
        with self.engine.connect() as conn:
            windows, rows, total, total_sq = conn.execute(query).one()
        return EvidenceTotals(int(windows), int(rows or 0), float(total or 0.0), float(total_sq or 0.0))


@dataclass(frozen=True)
class EvidenceTotals:
    """Summed loss differences of a challenger against a champion, and over how many windows."""

    windows: int
    rows: int
    total: float
    total_sq: float


def _window(table: Table, pipeline: str, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(table.c.pipeline == pipeline, table.c.window_start == start, table.c.window_end == end)


def entity_keys(frame: Any, columns: Iterable[str]) -> list[str]:
    """Each row's entity key as compact JSON of ``columns`` (sorted keys; missing values are null)."""
    import json

    names = sorted(columns)
    if not names:
        return ["{}"] * len(frame)
    values = frame[names].astype(object).where(frame[names].notna(), None)
    out = []
    for row in values.itertuples(index=False, name=None):
        record = dict(zip(names, (_plain(v) for v in row), strict=True))
        out.append(json.dumps(record, separators=(",", ":"), sort_keys=True, default=str))
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
