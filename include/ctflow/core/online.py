"""The online store: keep a feature service's views materialized, and read them back for one entity.

* :func:`materialize` brings every view of the spec's feature service up to ``as_of`` in the
  repository's online store (SQLite embedded, Redis in production), through Feast's own
  ``materialize`` / ``materialize_incremental``;
* :func:`online_features` reads the service's latest values for one entity, with each value's
  event timestamp (its age is what a consumer must judge freshness by).

No Airflow here: the ``materialize`` step and ``ctflow predict`` call these.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


def materialize(
    spec: PipelineSpec, *, as_of: datetime, feature_repo: Path | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Materialize the views of ``spec.data.features`` up to ``as_of``; what was done per view.

    Incremental: a view materialized before continues from the end of its last interval
    (``materialize_incremental``). A view never materialized starts at its source's earliest
    event timestamp, not at ``as_of - ttl`` as Feast would: a static view stamped once before
    any window (the demo's aircraft) would otherwise never reach the online store. Idempotent:
    a view already materialized up to ``as_of`` or later is left alone, so a re-run or an older
    run (a backfill) never writes, nor moves values back in time. A dry run changes nothing: it skips.

    :raises SourceDataError: a view's table stores a column otherwise than the view declares
        (:mod:`ctflow.spec.column_types`: checked before any view is written), or holds what the
        view cannot read: every try would read it again.
    """
    if dry_run:
        return {"skipped": True, "reason": "dry run: the online store is left as it is"}
    from ctflow.core import features as feast
    from ctflow.core.table_reading import feature_view_source
    from ctflow.spec.column_types import declared_tables, raise_on_mismatch, type_mismatches

    store, repo = feast._store_for(feast.pipeline_repo(spec, feature_repo))
    service = feast._service(store, spec.data.features, repo)
    # Before any view is written: Feast would raise a generic ValueError or AssertionError, retried.
    raise_on_mismatch(type_mismatches(declared_tables(store, service, allow_registry_cache=False)))
    as_of = feast._utc(as_of).to_pydatetime()
    views: dict[str, Any] = {}
    started = time.perf_counter()
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name, allow_registry_cache=False)
        done = view.most_recent_end_time
        if done is not None and feast._utc(done) >= as_of:
            views[view.name] = {"action": "current", "until": feast._utc(done).isoformat()}
            continue
        with feature_view_source(view).reading():
            if done is not None:
                store.materialize_incremental(end_date=as_of, feature_views=[view.name])
                views[view.name] = {"action": "incremental", "start": feast._utc(done).isoformat()}
                continue
            start = _source_start(view, as_of)
            store.materialize(start_date=start, end_date=as_of, feature_views=[view.name])
            views[view.name] = {"action": "initial", "start": start.isoformat()}
    result = {"feature_service": spec.data.features, "as_of": as_of.isoformat(), "views": views,
              "online_store": store.config.online_store.type, "seconds": round(time.perf_counter() - started, 2)}
    log.info("online store (%s) of %s up to %s: %s", result["online_store"], spec.data.features, as_of,
             ", ".join(f"{name} {facts['action']}" for name, facts in views.items()))
    return result


def _source_start(view: FeatureView, as_of: datetime) -> datetime:
    """The earliest event timestamp of a file source (parquet statistics); else ``as_of - ttl``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ctflow.core import features as feast

    source = view.batch_source
    path = Path(getattr(source, "path", "") or "")
    if path.suffix == ".parquet" and path.is_file():
        earliest = _parquet_min(pq.ParquetFile(path), source.timestamp_field)
        if earliest is None:  # a writer that kept no statistics: read the column itself
            earliest = pc.min(pq.read_table(path, columns=[source.timestamp_field]).column(0)).as_py()
        if earliest is not None:
            return feast._utc(earliest).to_pydatetime()
    return as_of - view.ttl if view.ttl else as_of


def _parquet_min(parquet: Any, column: str) -> Any:
    """The least value of ``column`` from the row groups' statistics (the footer only), or None
    when a row group has none: the source may hold years of rows, read at every monitoring run."""
    meta = parquet.metadata
    # The physical column (nested columns make it differ from the arrow field's position).
    index = next((i for i in range(meta.num_columns) if meta.schema.column(i).path == column), None)
    if index is None:
        return None
    minima = []
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(index).statistics
        if stats is None or not stats.has_min_max:
            return None
        minima.append(stats.min)
    return min(minima, default=None)


@dataclass(frozen=True)
class OnlineFeatures:
    """One entity's online values of a service, and when each value became known (None: no value)."""

    values: dict[str, Any]
    event_times: dict[str, datetime | None]

    def ages(self, now: datetime) -> dict[str, float | None]:
        """Seconds between each value's event timestamp and ``now`` (None: no value)."""
        return {name: None if moment is None else round((now - moment).total_seconds(), 1)
                for name, moment in self.event_times.items()}


def online_features(store: FeatureStore, feature_service: str, entity: dict[str, Any]) -> OnlineFeatures:
    """The latest values of ``feature_service`` for ``entity`` (every join key of the service)."""
    from datetime import UTC

    from ctflow.core import features as feast

    service = feast._service(store, feature_service, Path(store.repo_path))
    keys = feast._join_keys(store, service)
    missing = [key for key in keys if entity.get(key) in (None, "")]
    if missing:
        from ctflow.exceptions import ConfigurationError

        raise ConfigurationError(f"feature service {feature_service!r} is looked up by {', '.join(keys)}: "
                                 f"{', '.join(missing)} not given", field="--entity",
                                 fix=f"give {' '.join(f'{k}=VALUE' for k in missing)}")
    response = store.get_online_features(features=service, entity_rows=[{key: entity[key] for key in keys}])
    values = {name: column[0] for name, column in response.to_dict().items() if name not in keys}
    proto = response.proto
    names = list(proto.metadata.feature_names.val)
    times: dict[str, datetime | None] = {}
    for name, result in zip(names, proto.results, strict=True):
        if name in keys:
            continue
        stamp = result.event_timestamps[0] if result.event_timestamps else None
        seconds = stamp.seconds + stamp.nanos / 1e9 if stamp is not None else 0
        times[name] = datetime.fromtimestamp(seconds, tz=UTC) if seconds and values.get(name) is not None else None
    return OnlineFeatures(values=values, event_times=times)
