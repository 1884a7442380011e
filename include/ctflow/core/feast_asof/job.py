"""The retrieval job Feast gets back: the ASOF query, run in DuckDB when the result is asked for."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata

from ctflow.core.feast_asof.query import literal

if TYPE_CHECKING:
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.saved_dataset import SavedDatasetStorage

#: Name the entity rows are registered under in the job's DuckDB connection.
ENTITY_TABLE = "asof_entity_rows"


class AsofRetrievalJob(RetrievalJob):
    """Runs :func:`~ctflow.core.feast_asof.query.point_in_time_sql` over the entity rows.

    Each call opens its own in-memory DuckDB connection, so a job can be run twice and
    leaves nothing behind. ``to_df`` and ``to_arrow`` are Feast's (they also apply on-demand
    views); :meth:`to_parquet` streams the rows to a file without passing through Python.
    """

    def __init__(
        self,
        *,
        sql: str,
        entity_rows: pa.Table,
        entity_schema: pa.Schema,
        on_demand_feature_views: list[OnDemandFeatureView],
        full_feature_names: bool,
        metadata: RetrievalMetadata,
        repo_path: str,
    ) -> None:
        super().__init__()
        self.sql = sql
        self._entity_rows = entity_rows
        self._entity_schema = entity_schema
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
        with self._connect() as connection:
            table = connection.sql(self.sql).to_arrow_table()
        return self._entity_types(table)

    def _entity_types(self, table: pa.Table) -> pa.Table:
        """Entity columns typed as given (DuckDB returns every zoned time in UTC; Feast's store keeps the zone)."""
        for field in self._entity_schema:
            index = table.schema.get_field_index(field.name)
            if table.schema.field(index).type != field.type:
                table = table.set_column(index, field, table.column(index).cast(field.type))
        return table

    def to_parquet(self, path: str | Path) -> Path:
        """Write the joined rows to a parquet file straight from DuckDB (no on-demand views)."""
        if self._on_demand_feature_views:
            raise NotImplementedError("on-demand feature views are computed in Python: use to_arrow()")
        with self._connect() as connection:
            connection.execute(f"COPY ({self.sql}) TO {literal(str(path))} (FORMAT parquet)")
        return Path(path)

    def persist(self, storage: SavedDatasetStorage, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        import ibis
        from feast.infra.offline_stores.duckdb import _write_data_source

        _write_data_source(ibis.memtable(self.to_arrow()), storage.to_data_source(), self._repo_path,
                           "overwrite", allow_overwrite)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        connection = duckdb.connect()
        # Naive timestamps are UTC, as in Feast's store (ibis sets the same).
        connection.execute("SET TimeZone = 'UTC'")
        connection.register(ENTITY_TABLE, self._entity_rows)
        return connection
