"""Training rows and their point-in-time features, from a Feast repository (no Airflow here).

* :func:`load_entity_rows` reads the entity and label rows of a time window from parquet;
* :func:`get_historical_features` joins a Feast feature service onto them, as of each row's
  timestamp, through the repository's offline store (DuckDB);
* :func:`feature_names` lists a service's features;
* :func:`fingerprint` identifies a frame's content (rows, time range, hash).

Feast takes seconds to import, so it is imported on first use and each repository's
``FeatureStore`` is kept for the life of the process.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import warnings
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ctflow.core.feature_frame import (
    DTYPES,
    NotOneRowPerEntityRowError,
    as_utc,
    feature_columns,
    objects_with_none,
)
from ctflow.exceptions import ConfigurationError, CtflowError

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

    from ctflow.spec import PipelineSpec

# Feast looks for the entity timestamp under this name when the frame has several datetime columns.
_EVENT_TIMESTAMP = "event_timestamp"
# Feast's join returns rows in no particular order: each request row carries its position.
_ROW = "__ctflow_row"


class FeatureStoreError(CtflowError):
    """The Feast repository, a feature service or the entity rows cannot serve the request."""


class FeatureConfigurationError(FeatureStoreError, ConfigurationError):
    """A :class:`FeatureStoreError` that only a change of the spec, the entity data or the Feast
    repository fixes (so it is never retried): ``field`` names what to change, ``fix`` how."""


class UnknownFeatureServiceError(FeatureConfigurationError):
    """A feature service that the repository does not declare (``data.features``).

    :ivar service: the name asked for.
    :ivar available: the services the repository has.
    :ivar suggestion: the closest available name, if any is close.
    """

    def __init__(self, service: str, available: list[str], repo: Path):
        self.service = service
        self.available = available
        matches = difflib.get_close_matches(service, available, n=1, cutoff=0.4)
        self.suggestion = matches[0] if matches else None
        if not available:
            super().__init__(
                f"unknown feature service {service!r}: Feast repository {repo} has no feature services yet",
                field="data.features",
                fix="build the repository with feature_repo/bootstrap.py, or `feast apply` there",
            )
            return
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        super().__init__(
            f"unknown feature service {service!r} in Feast repository {repo}{hint}",
            field="data.features",
            fix=f"name one of the repository's services. Available: {', '.join(available)}",
        )


def load_entity_rows(
    path: str | Path,
    *,
    timestamp: str,
    start: datetime,
    end: datetime,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Rows of the parquet entity table with ``start <= timestamp < end``, in file order.

    Only the row groups that can hold such rows are read. ``start`` and ``end`` should be
    timezone-aware; naive ones are taken as UTC. The returned timestamp column is
    ``datetime64[ns, UTC]``.

    :param path: parquet file of entity rows (and labels).
    :param timestamp: the column rows are filtered on, always returned.
    :param columns: the columns to return (default: all).
    """
    path = Path(path)
    if not path.is_file():
        raise FeatureConfigurationError(
            f"entity table {path} does not exist", field="data.entities",
            fix="point data.entities at a parquet file, relative to the project (the demo's is built by "
                "feature_repo/bootstrap.py)",
        )
    schema = pq.read_schema(path)
    if timestamp not in schema.names:
        raise FeatureConfigurationError(
            f"entity table {path} has no column {timestamp!r}{_did_you_mean(timestamp, schema.names)}",
            field="data.timestamp", fix=f"name one of its columns: {', '.join(schema.names)}",
        )
    wanted = None if columns is None else list(dict.fromkeys([*columns, timestamp]))
    missing = sorted(set(wanted or ()) - set(schema.names))
    if missing:
        raise FeatureConfigurationError(
            f"entity table {path} has no column(s) {', '.join(missing)}", field="data",
            fix=f"name only columns the table has: {', '.join(schema.names)}",
        )
    kind = schema.field(timestamp).type
    if not pa.types.is_timestamp(kind):
        raise FeatureConfigurationError(f"column {timestamp!r} of {path} is {kind}, not a timestamp",
                                        field="data.timestamp", fix="name a timestamp column of the entity table")
    # Compare in the column's own type: a naive column holds UTC wall-clock times.
    bounds = [_utc(moment) if kind.tz else _utc(moment).tz_localize(None) for moment in (start, end)]
    low, high = (pa.scalar(bound, type=kind) for bound in bounds)
    table = pq.read_table(path, columns=wanted, filters=[(timestamp, ">=", low), (timestamp, "<", high)])
    frame = table.to_pandas()
    frame[timestamp] = as_utc(frame[timestamp])
    return frame


def get_historical_features(
    repo_path: str | Path,
    feature_service: str,
    entity_rows: pd.DataFrame,
    *,
    timestamp: str,
) -> pd.DataFrame:
    """``entity_rows`` plus the service's features as of each row's ``timestamp`` (Feast, point in time).

    Every row is kept, repeated rows included, in the same order and with the same index;
    the entity columns are returned untouched. Features get their plain names, in the
    service's order, with stable dtypes whatever is missing: numbers ``float64``, times
    ``datetime64[ns, UTC]``, anything else ``object`` with ``None`` for missing. A value
    older than its view's TTL, or with no match, is missing.

    :param repo_path: the Feast repository (folder of ``feature_store.yaml``).
    :param feature_service: name of a FeatureService declared in the repository.
    :param entity_rows: must hold ``timestamp`` and every join key the service's views use.
    :param timestamp: column the features are joined as of (naive values are taken as UTC).
    :raises FeatureStoreError: unknown service, missing columns, or names that would clash.
    """
    store, repo = _store_for(repo_path)
    service = _service(store, feature_service, repo)
    kinds = _feature_kinds(service)
    keys = _join_keys(store, service)
    _check_entity_columns(entity_rows, timestamp=timestamp, keys=keys, features=list(kinds), service=feature_service)
    if entity_rows.empty:
        empty = pd.DataFrame({name: pd.Series([], dtype=DTYPES[kind]) for name, kind in kinds.items()})
        return _beside(entity_rows, empty)

    # Feast gets only what it joins on: the other columns cannot be mangled on the way.
    request = pd.DataFrame(
        {
            _EVENT_TIMESTAMP: as_utc(entity_rows[timestamp]).reset_index(drop=True),
            **{key: _key_values(entity_rows[key]) for key in keys},
            _ROW: np.arange(len(entity_rows), dtype="int64"),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ibis <-> duckdb API churn, not ours to fix
        job = store.get_historical_features(entity_df=request, features=service)
        try:
            # Arrow, not to_df (to_arrow().to_pandas() plus a copy): the frame is built once, and the
            # table is passed on unreferenced so that its buffers are freed as it is converted.
            columns = feature_columns(job.to_arrow(), kinds, row=_ROW, rows=len(request))
        except NotOneRowPerEntityRowError as error:
            raise FeatureStoreError(
                f"Feast returned {error.returned} rows for {len(request)} entity rows of {feature_service!r}: "
                "the point-in-time join must return exactly one row per entity row"
            ) from None
    return _beside(entity_rows, columns)


def check_column_types(repo_path: str | Path, feature_service: str, *, entities: Path, shown: str) -> None:
    """Before anything is read: each table of ``feature_service`` stores its columns as its view
    declares them, and the entity table ``entities`` (``shown`` as the spec names it) its join keys
    (:mod:`ctflow.spec.column_types`).

    :raises SourceDataError: the first mismatch, naming the table, the column and the fix (final:
        every try would read the same table).
    """
    from ctflow.spec.column_types import declared_tables, raise_on_mismatch, type_mismatches

    store, repo = _store_for(repo_path)
    tables = declared_tables(store, _service(store, feature_service, repo))
    raise_on_mismatch(type_mismatches(tables, entities=entities, entities_shown=shown))


def feature_names(repo_path: str | Path, feature_service: str) -> list[str]:
    """The features of ``feature_service``, plain names in the service's order."""
    store, repo = _store_for(repo_path)
    return list(_feature_kinds(_service(store, feature_service, repo)))


def fingerprint(frame: pd.DataFrame, *, timestamp: str) -> dict[str, Any]:
    """``{"rows", "start", "end", "sha256"}`` of ``frame``: same content, same hash.

    The hash covers column names, values and row order; not the index, nor how pandas
    lays the data out in memory, nor the unit a timestamp column happens to be stored in.
    ``start``/``end`` are the earliest and latest ``timestamp`` (ISO 8601), None if no rows.
    """
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    if len(frame):
        canonical = frame.apply(_canonical_column)
        hashes = pd.util.hash_pandas_object(canonical, index=False).to_numpy()
        digest.update(hashes.astype("<u8", copy=False).tobytes())
    times = as_utc(frame[timestamp]).dropna()
    return {
        "rows": len(frame),
        "start": times.min().isoformat() if len(times) else None,
        "end": times.max().isoformat() if len(times) else None,
        "sha256": digest.hexdigest(),
    }


def _beside(entity_rows: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Columns side by side by position, under the entity rows' index (which may repeat labels).

    The entity columns are copied once, so the caller's frame and the result never share memory;
    the feature columns are not copied again.
    """
    own = entity_rows.copy()
    features.index = own.index  # the very same index object: concat neither aligns nor reindexes
    return pd.concat([own, features], axis=1, copy=False)


# --- Feast access ----------------------------------------------------------------------------


def _store_for(repo_path: str | Path) -> tuple[FeatureStore, Path]:
    repo = Path(repo_path).expanduser().resolve()
    if not (repo / "feature_store.yaml").is_file():
        raise FeatureConfigurationError(
            f"{repo} is not a Feast repository: it has no feature_store.yaml", field="feature repository",
            fix="point the spec's data.feature_repo (or $CTFLOW_FEATURE_REPO, or the ctflow_feast connection) at the "
                "folder of feature_store.yaml",
        )
    return _cached_store(str(repo)), repo


@functools.lru_cache(maxsize=8)
def _cached_store(repo: str) -> FeatureStore:
    from feast import FeatureStore

    return FeatureStore(repo_path=repo, fs_yaml_file=store_config(Path(repo)))


def store_config(repo: Path) -> Path:
    """The store config of ``repo``: ``$FEAST_FS_YAML_FILE_PATH`` if that file is in ``repo``, else its
    ``feature_store.yaml``.

    Feast applies the variable to every repository it opens; the production stack sets it for the
    project's ``feature_repo/``, so a pipeline's own repository (``data.feature_repo``) would be
    opened with another repository's registry and project.
    """
    chosen = os.environ.get("FEAST_FS_YAML_FILE_PATH")
    if chosen and Path(chosen).resolve().parent == repo.resolve():
        return Path(chosen).resolve()
    return repo / "feature_store.yaml"


def pipeline_repo(spec: PipelineSpec, given: str | Path | None = None) -> Path:
    """The Feast repository of ``spec``'s pipeline (:func:`ctflow.spec.data_sources.feature_repo_for`),
    a repository outside the project being a configuration error of ``data.feature_repo``."""
    from ctflow.spec.data_sources import feature_repo_for
    from ctflow.spec.paths import PathOutsideError

    try:
        return feature_repo_for(spec, given)
    except PathOutsideError as err:
        raise FeatureConfigurationError(
            str(err), field="data.feature_repo",
            fix="keep the Feast repository inside the project, or add its folder to $CTFLOW_DATA_ROOTS",
        ) from err


def _service(store: FeatureStore, name: str, repo: Path) -> FeatureService:
    from feast.errors import FeatureServiceNotFoundException

    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException:
        available = sorted(s.name for s in store.list_feature_services())
        raise UnknownFeatureServiceError(name, available, repo) from None
    except FileNotFoundError as error:  # no registry yet
        raise FeatureConfigurationError(f"Feast repository {repo} has no registry ({error})",
                                        field="feature repository", fix="run feature_repo/bootstrap.py") from None


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _feature_kinds(service: FeatureService) -> dict[str, str]:
    """Feature name -> "number", "time" or "other", in the service's order."""
    from feast.types import PrimitiveFeastType

    numbers = {
        PrimitiveFeastType.INT32, PrimitiveFeastType.INT64, PrimitiveFeastType.FLOAT32, PrimitiveFeastType.FLOAT64
    }
    kinds: dict[str, str] = {}
    for projection in service.feature_view_projections:
        for field in projection.features:
            if field.name in kinds:
                raise FeatureConfigurationError(
                    f"feature {field.name!r} comes from two views of service {service.name!r}",
                    field="data.features",
                    fix="choose a service whose feature names are unique",
                )
            if field.dtype in numbers:
                kinds[field.name] = "number"
            else:
                kinds[field.name] = "time" if field.dtype == PrimitiveFeastType.UNIX_TIMESTAMP else "other"
    return kinds


def _join_keys(store: FeatureStore, service: FeatureService) -> list[str]:
    from ctflow.spec.data_sources import join_keys_by_view

    return list(join_keys_by_view(store, service))


def _check_entity_columns(
    rows: pd.DataFrame, *, timestamp: str, keys: list[str], features: list[str], service: str
) -> None:
    missing = [c for c in [timestamp, *keys] if c not in rows.columns]
    if missing:
        raise FeatureConfigurationError(
            f"entity rows lack column(s) {', '.join(missing)} that feature service {service!r} joins on; "
            f"they have {', '.join(map(str, rows.columns))}",
            field="data.entities", fix="add the join keys to the entity table or choose another data.features",
        )
    clashes = [name for name in features if name in rows.columns]
    if clashes:
        raise FeatureConfigurationError(
            f"entity rows already have column(s) named like features of {service!r}: {', '.join(clashes)}",
            field="data.entities", fix="rename or drop those columns of the entity table",
        )


# --- values ----------------------------------------------------------------------------------

def _utc(moment: datetime | pd.Timestamp | str) -> pd.Timestamp:
    value = pd.Timestamp(moment)
    return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")


def _key_values(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.reset_index(drop=True)
    # Text keys as Arrow strings: an all-missing column stays a string column for the join.
    return objects_with_none(values).astype(pd.ArrowDtype(pa.string())).reset_index(drop=True)


def _canonical_column(values: pd.Series) -> pd.Series:
    # One representation per kind of content, so equal data hashes equally.
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        return as_utc(values)
    if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(values.dtype):
        return objects_with_none(values)
    return values
