"""What the ASOF join needs to know about each feature view, read from Feast's objects.

Names follow Feast's own DuckDB (ibis) retrieval, ``feast.infra.offline_stores.ibis``, so that
the two stores agree cell for cell: the field mapping renames source columns before anything
else, feature references are matched on ``projection.name_to_use()``, and full feature names
are ``<alias or view name>__<feature>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from feast import FeatureView


@dataclass(frozen=True)
class ViewPlan:
    """One view's side of the join.

    :ivar path: the parquet file (or glob) of the view's batch source.
    :ivar columns: source column -> name after the field mapping, for the columns read.
    :ivar keys: the view's join key -> the entity-frame column it is matched with.
    :ivar timestamp: event timestamp column (after the mapping).
    :ivar created: created-timestamp column (after the mapping), the tie-break of equal event times.
    :ivar ttl: a feature row older than this before the entity row is not used; None: no limit.
    :ivar features: feature column (after the mapping) -> output column name.
    """

    path: str
    columns: dict[str, str]
    keys: dict[str, str]
    timestamp: str
    created: str | None
    ttl: timedelta | None
    features: dict[str, str]


class UnsupportedViewError(Exception):
    """A view this store does not join itself (the caller hands the request to Feast's store)."""


def plan_view(view: FeatureView, feature_refs: list[str], *, full_feature_names: bool) -> ViewPlan:
    """The :class:`ViewPlan` of ``view`` for the requested ``feature_refs``.

    :raises UnsupportedViewError: the view's source is not a local or remote parquet file.
    :raises SourceDataError: the source lacks a column the view reads.
    """
    from feast.data_format import ParquetFormat
    from feast.infra.offline_stores.file_source import FileSource

    source = view.batch_source
    if type(source) is not FileSource:  # subclasses (Lance, MLflow, ...) read differently
        raise UnsupportedViewError(f"view {view.name} reads {type(source).__name__}, not a FileSource")
    if not (isinstance(source.file_format, ParquetFormat) or (source.file_format is None and source.path.endswith(".parquet"))):
        raise UnsupportedViewError(f"view {view.name} reads {source.file_format!r}, not parquet")
    if source.path.startswith(("s3://", "gs://", "http://", "https://")):
        raise UnsupportedViewError(f"view {view.name} reads a remote file: Feast's store handles credentials")

    # Feast renames every source column the mapping names; later names are the mapped ones.
    mapping = dict(source.field_mapping)
    try:
        names = pq.read_schema(source.path).names
    except (OSError, pa.ArrowInvalid) as error:  # a folder or glob of files: Feast's store reads those
        raise UnsupportedViewError(f"view {view.name}: cannot read the schema of {source.path} ({error})") from None
    renamed = {column: mapping.get(column, column) for column in names}
    original = {new: old for old, new in renamed.items()}

    prefix = f"{view.projection.name_to_use()}:"
    wanted = [ref.removeprefix(prefix) for ref in feature_refs if ref.startswith(prefix)]  # a name may hold ":"
    base = view.projection.name_alias or view.name
    features = {name: f"{base}__{name}" if full_feature_names else name for name in wanted}
    keys = view.projection.join_key_map or {column.name: column.name for column in view.entity_columns}
    timestamp, created = source.timestamp_field, source.created_timestamp_column or None

    needed = [*keys, timestamp, *([created] if created else []), *features]
    missing = [name for name in needed if name not in original]
    if missing:
        from ctflow.core.table_reading import feature_view_source

        raise feature_view_source(view).missing(missing)
    return ViewPlan(
        path=source.path,
        columns={original[name]: name for name in dict.fromkeys(needed)},
        keys=dict(keys),
        timestamp=timestamp,
        created=created,
        ttl=view.ttl or None,  # Feast reads a zero TTL as "no limit"
        features=features,
    )
