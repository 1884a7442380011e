"""What a spec's data sources hold, read cheaply for ``ctflow validate --deep``.

* :func:`read_entity_table`: the parquet schema of ``data.entities`` and a bounded sample of
  its label column (the table may be large: only the footer and the first row groups are read);
* :func:`read_feature_service`: a Feast feature service's features and join keys, and what its
  views declare of their tables' columns, from the repository's registry through Feast's own
  API (no offline store, no data is read);
* :func:`feature_repo_for`: the Feast repository of a spec.

pyarrow and Feast are imported inside the functions: :mod:`ctflow.spec` is read at DAG parse.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctflow import settings
from ctflow.spec.column_types import DeclaredTable, declared_tables
from ctflow.spec.models import PipelineSpec

#: Rows of the label column read to judge it (distinct values): enough to see every class of a
#: real label, few enough to stay well under a second on any table.
SAMPLE_ROWS = 100_000
#: Kinds of columns, as the checks speak of them.
Kind = str  # "time" | "number" | "bool" | "text" | "other"


def feature_repo_for(spec: PipelineSpec, given: str | Path | None = None) -> Path:
    """The Feast repository of ``spec``'s pipeline, the one rule for validation and run time.

    The spec's ``data.feature_repo`` (confined to the project like every spec path; raises
    :class:`ctflow.spec.paths.PathOutsideError` outside it) wins over ``given`` (the deployment's:
    the ``ctflow_feast`` connection, or ``--feature-repo``), which wins over
    :func:`ctflow.settings.feature_repo`: a pipeline that names its repository is never read
    from another team's.
    """
    if spec.data.feature_repo is not None:
        from ctflow.spec.paths import resolve_spec_path

        return resolve_spec_path(spec.data.feature_repo)
    return Path(given or settings.feature_repo()).resolve()


def join_keys_by_view(store: Any, service: Any) -> dict[str, str]:
    """The entity columns Feast feature service ``service`` joins on (key -> the first view joining
    on it), in the order its views name them; an on-demand view brings no keys of its own."""
    from feast.errors import FeatureViewNotFoundException

    keys: dict[str, str] = {}
    for projection in service.feature_view_projections:
        if projection.join_key_map:
            names = list(projection.join_key_map.values())
        else:
            try:
                names = [column.name for column in store.get_feature_view(projection.name).entity_columns]
            except FeatureViewNotFoundException:  # an on-demand view: its sources bring their own keys
                continue
        for name in names:
            keys.setdefault(name, projection.name)
    return keys


@dataclass(frozen=True)
class Unavailable:
    """A source that cannot be read: what is wrong, and the closest valid name if any."""

    message: str
    suggestion: str | None = None


@dataclass(frozen=True)
class EntityTable:
    """The columns of the entity table (name -> kind) and a sample of the label's values."""

    columns: dict[str, Kind]
    label_values: list[Any] = field(default_factory=list)
    sampled_rows: int = 0


@dataclass(frozen=True)
class FeatureServiceColumns:
    """A feature service's features (name -> kind), the entity columns its views join on, and what
    each view declares of its table's columns."""

    features: dict[str, Kind]
    join_keys: dict[str, str]  # key -> the view that joins on it
    tables: tuple[DeclaredTable, ...] = ()


def arrow_kind(kind: Any) -> Kind:
    import pyarrow as pa

    if pa.types.is_timestamp(kind):
        return "time"
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return "text"
    return "other"


def read_entity_table(path: Path, label: str | None, *, shown: str) -> EntityTable | Unavailable:
    """The schema of the parquet file ``path`` and the distinct values of ``label`` in its first
    :data:`SAMPLE_ROWS` rows; ``shown`` is how the spec names the file."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.exists():
        return Unavailable(f"entity table {shown} does not exist (looked for {path})")
    if not path.is_file():
        return Unavailable(f"entity table {shown} is not a file ({path})")
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as err:
        return Unavailable(f"entity table {shown} is not a parquet file ({err})")
    columns = {name: arrow_kind(schema.field(name).type) for name in schema.names}
    if label not in columns:
        return EntityTable(columns)
    chunks, rows = [], 0
    try:
        for batch in parquet.iter_batches(batch_size=min(SAMPLE_ROWS, 65_536), columns=[label]):
            chunks.append(batch.column(0))
            rows += batch.num_rows
            if rows >= SAMPLE_ROWS:
                break
        values = pc.unique(pa.chunked_array(chunks, type=schema.field(label).type).drop_null()).to_pylist()
    except (pa.ArrowException, OSError) as err:  # a damaged row group
        return Unavailable(f"entity table {shown}: cannot read column {label!r} ({err})")
    return EntityTable(columns, label_values=sorted(values, key=str), sampled_rows=rows)


def read_feature_service(repo: Path, name: str) -> FeatureServiceColumns | Unavailable:
    """Features and join keys of Feast feature service ``name`` in repository ``repo``."""
    if not (repo / "feature_store.yaml").is_file():
        return Unavailable(f"{repo} is not a Feast repository (no feature_store.yaml): set $CTFLOW_FEATURE_REPO "
                           "to the folder of feature_store.yaml, or create feature_repo/ in the project")
    from feast.errors import FeatureServiceNotFoundException

    try:
        store = _store(str(repo))
        service = store.get_feature_service(name)  # not from a cache: the registry is read again
    except FeatureServiceNotFoundException:
        available = sorted(s.name for s in store.list_feature_services())
        from ctflow.spec.errors import did_you_mean

        where = f"Feast repository {repo}"
        if not available:
            return Unavailable(f"unknown feature service {name!r}: {where} has none yet (run `feast apply` there)")
        return Unavailable(f"unknown feature service {name!r} in {where}; available: {', '.join(available)}",
                           did_you_mean(name, available))
    except FileNotFoundError:
        return Unavailable(f"Feast repository {repo} has no registry yet: run `feast apply` in it")
    except Exception as err:  # noqa: BLE001 - a broken config or an unreachable SQL registry: a finding, not a traceback
        detail = " ".join(str(err).split())  # one line per problem, whatever Feast's message looks like
        return Unavailable(f"cannot read the registry of Feast repository {repo}: {type(err).__name__}: {detail[:300]}")
    features: dict[str, Kind] = {}
    for projection in service.feature_view_projections:
        for feast_field in projection.features:
            features.setdefault(feast_field.name, _feast_kind(feast_field.dtype))
    return FeatureServiceColumns(features, join_keys_by_view(store, service), tuple(declared_tables(store, service)))


@functools.lru_cache(maxsize=8)
def _store(repo: str) -> Any:
    """One FeatureStore per repository and process: a folder of specs reads its config once."""
    from feast import FeatureStore

    return FeatureStore(repo_path=repo)


def _feast_kind(dtype: Any) -> Kind:
    from feast.types import PrimitiveFeastType as P

    if dtype in (P.INT32, P.INT64, P.FLOAT32, P.FLOAT64):
        return "number"
    if dtype == P.UNIX_TIMESTAMP:
        return "time"
    if dtype == P.BOOL:
        return "bool"
    return "text" if dtype == P.STRING else "other"
