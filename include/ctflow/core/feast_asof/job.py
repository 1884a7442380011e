"""The retrieval job Feast gets back: the ASOF queries, run in DuckDB when the result is asked for."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata

from ctflow.core.feast_asof.query import ROW

if TYPE_CHECKING:
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.saved_dataset import SavedDatasetStorage

    from ctflow.core.table_reading import SourceTable

#: Name the entity rows are registered under in the job's DuckDB connection.
ENTITY_TABLE = "asof_entity_rows"


class AsofRetrievalJob(RetrievalJob):
    """Runs :func:`~ctflow.core.feast_asof.query.view_queries` and sets the views beside the entity rows.

    The entity columns are returned as given (Arrow, typed as Feast's store types them),
    never copied through DuckDB; each view's features are put in entity-row order with one
    Arrow ``take``. Each run opens its own in-memory DuckDB connection, so a job can run
    twice and leaves nothing behind. ``to_df`` and ``to_arrow`` are Feast's (they also apply
    on-demand views); :meth:`to_parquet` writes the Arrow result without going through pandas.
    A query that fails on what a view's table holds (a column DuckDB cannot convert or compare)
    raises a :class:`~ctflow.exceptions.SourceDataError` naming that table and column.
    """

    def __init__(
        self,
        *,
        queries: list[str],
        sources: list[SourceTable],
        entity_rows: pa.Table,
        on_demand_feature_views: list[OnDemandFeatureView],
        full_feature_names: bool,
        metadata: RetrievalMetadata,
        repo_path: str,
    ) -> None:
        """:param sources: the table each query reads, in the same order.
        :param entity_rows: the entity columns, then :data:`~ctflow.core.feast_asof.query.ROW` (0, 1, ...)."""
        super().__init__()
        self.queries = queries
        self._sources = sources
        self._entity_rows = entity_rows
        self._on_demand_feature_views = on_demand_feature_views
        self._full_feature_names = full_feature_names
        self._metadata = metadata
        self._repo_path = repo_path

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._on_demand_feature_views

    @property
    def metadata(self) -> RetrievalMetadata:
        return self._metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        rows = self._entity_rows.num_rows
        result = self._entity_rows.drop_columns([ROW])
        connection = self._connect()
        try:
            for query, source in zip(self.queries, self._sources, strict=True):
                with source.reading():
                    part = connection.sql(query).to_arrow_table()
                # part's i-th row belongs to entity row position[i]: invert to take them in entity order.
                position = part.column(ROW).to_numpy()
                order = np.empty(rows, dtype=np.int64)
                order[position] = np.arange(rows, dtype=np.int64)
                part = part.drop_columns([ROW]).take(order)
                for field, column in zip(part.schema, part.columns, strict=True):
                    result = result.append_column(field, column)
        finally:
            connection.close()
        return result

    def to_parquet(self, path: str | Path) -> Path:
        """Write the joined rows to a parquet file from Arrow (no pandas frame; no on-demand views)."""
        if self._on_demand_feature_views:
            raise NotImplementedError("on-demand feature views are computed in Python: use to_arrow()")
        pq.write_table(self._to_arrow_internal(), path)
        return Path(path)

    def persist(self, storage: SavedDatasetStorage, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        import ibis  # type: ignore[import-untyped]
        from feast.infra.offline_stores.duckdb import _write_data_source

        _write_data_source(ibis.memtable(self.to_arrow()), storage.to_data_source(), self._repo_path,
                           "overwrite", allow_overwrite)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        connection = duckdb.connect()
        # Naive timestamps are UTC, as in Feast's store (ibis sets the same).
        connection.execute("SET TimeZone = 'UTC'")
        connection.register(ENTITY_TABLE, self._entity_rows)
        return connection
