"""The Feast offline store: Feast's DuckDB store with its point-in-time join done by ``ASOF JOIN``.

Everything but ``get_historical_features`` is inherited from Feast's DuckDB store
(``offline_write_batch``, logging, monitoring; materialization's ``pull_latest_from_table_or_query``
and ``pull_all_from_table_or_query`` too, through a reader that also takes nanosecond timestamps,
:func:`read_source`). A request this store does not join itself is handed to Feast's store too: an
entity SQL query instead of a frame, ``filter_by_created_timestamp``, on-demand views that
run in ibis (``substrait``), and sources other than parquet files on this machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.duckdb import (
    DuckDBOfflineStore,
    DuckDBOfflineStoreConfig,
    _read_data_source,
    _write_data_source,
)
from feast.infra.offline_stores.ibis import (
    _get_entity_df_event_timestamp_range,
    _to_utc,
    pull_all_from_table_or_query_ibis,
    pull_latest_from_table_or_query_ibis,
)
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.on_demand_feature_view import OnDemandFeatureView
from ibis.formats.pandas import PandasData  # type: ignore[import-untyped]
from pydantic import StrictStr

from ctflow.core.feast_asof.job import ENTITY_TABLE, AsofRetrievalJob
from ctflow.core.feast_asof.plan import UnsupportedViewError, plan_view
from ctflow.core.feast_asof.query import ROW, view_queries
from ctflow.core.table_reading import feature_view_source

if TYPE_CHECKING:
    from datetime import datetime

    from feast.data_source import DataSource
    from feast.feature_view import FeatureView
    from feast.infra.registry.base_registry import BaseRegistry
    from feast.repo_config import RepoConfig

TYPE = "ctflow.core.feast_asof.store.AsofDuckDBOfflineStore"


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """Same options as Feast's DuckDB store (a subclass, so its inherited methods accept it)."""

    type: StrictStr = TYPE


def read_source(data_source: DataSource, repo_path: str) -> Any:
    """Feast's DuckDB reader of a source, with its nanosecond time-zone-aware timestamp columns
    read as microsecond ones. pandas writes a tz-aware datetime column so by default; DuckDB reads
    it as ``TIMESTAMPTZ_NS``, which ibis does not know and DuckDB cannot cast to the naive
    ``TIMESTAMP`` Feast's materialization compares the event time with (a ``ConversionException``
    in ``materialize``, with Feast's own DuckDB store too)."""
    import ibis.expr.datatypes as dt  # type: ignore[import-untyped]

    table = _read_data_source(data_source, repo_path)
    nanos = {name: table[name].cast(dt.Timestamp(timezone="UTC")) for name, kind in table.schema().items()
             if kind.is_unknown() and kind.raw_type.args.get("kind") == "TIMESTAMPTZ_NS"}
    return table.mutate(**nanos) if nanos else table


def _through_read_source(pull: Callable[..., RetrievalJob], config: RepoConfig, **request: Any) -> RetrievalJob:
    """Feast's ibis ``pull`` with :func:`read_source`, and Feast's DuckDB writer and staging settings."""
    return pull(config=config, **request, data_source_reader=read_source, data_source_writer=_write_data_source,
                staging_location=config.offline_store.staging_location,
                staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override)


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store with ``get_historical_features`` as chained ``ASOF LEFT JOIN``s."""

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        """Feast's DuckDB store's, through :func:`read_source` (every parameter passed on as it is)."""
        return _through_read_source(pull_latest_from_table_or_query_ibis, **locals())

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        """Feast's DuckDB store's, through :func:`read_source` (every parameter passed on as it is)."""
        return _through_read_source(pull_all_from_table_or_query_ibis, **locals())

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        def feast_own() -> RetrievalJob:
            return DuckDBOfflineStore.get_historical_features(
                config=config, feature_views=feature_views, feature_refs=feature_refs, entity_df=entity_df,
                registry=registry, project=project, full_feature_names=full_feature_names,
                filter_by_created_timestamp=filter_by_created_timestamp,
            )

        # With the created-time cutoff, the newest row may be skipped for an older one: not an ASOF match.
        if not isinstance(entity_df, pd.DataFrame) or filter_by_created_timestamp:
            return feast_own()
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        if any(odfv.mode == "substrait" for odfv in odfvs):
            return feast_own()
        try:
            plans = [plan_view(view, feature_refs, full_feature_names=full_feature_names) for view in feature_views]
        except UnsupportedViewError:
            return feast_own()

        # The entity side as Feast's store prepares it: inferred timestamp column, text times parsed as UTC.
        timestamp = offline_utils.infer_event_timestamp_from_entity_df(dict(zip(entity_df.columns, entity_df.dtypes, strict=True)))
        earliest, latest = _get_entity_df_event_timestamp_range(entity_df, timestamp)
        frame: pd.DataFrame = _to_utc(entity_df.copy(deep=False), timestamp)
        # Typed as ibis types them for Feast's store, so that both return the same column types.
        entity_schema = PandasData.infer_table(frame).to_pyarrow()
        # Without pandas' metadata: it would turn text back into pandas' string dtype, where Feast's gives objects.
        rows = pa.Table.from_pandas(frame, schema=entity_schema, preserve_index=False).replace_schema_metadata(None)
        rows = rows.append_column(ROW, pa.array(np.arange(rows.num_rows, dtype=np.int64)))

        return AsofRetrievalJob(
            queries=view_queries(entity_table=ENTITY_TABLE, event_timestamp=timestamp, views=plans),
            sources=[feature_view_source(view) for view in feature_views],
            entity_rows=rows,
            on_demand_feature_views=[odfv for odfv in odfvs if odfv.mode != "substrait"],
            full_feature_names=full_feature_names,
            metadata=RetrievalMetadata(features=feature_refs, keys=list(set(frame.columns) - {timestamp}),
                                       min_event_timestamp=earliest, max_event_timestamp=latest),
            repo_path=str(config.repo_path),
        )

