"""Feast's file registry, written atomically.

Feast's ``FileRegistryStore`` rewrites ``registry.db`` in place (open, truncate, write). Every
``materialize`` and ``apply`` rewrites it, and every training, scoring and online lookup reads it,
so a reader in another process (a second Celery worker, a second pipeline, a test run beside
another) can read a truncated file: a protobuf decode error, or a registry that parses but lacks
the feature service just being read. Here the new registry is written beside the old one and moved
over it with ``os.replace`` (atomic on POSIX within a folder): a reader sees the old registry or
the new one, never a part. Concurrent writers still follow Feast's last-writer-wins; what they
write is only materialization bookkeeping or a full ``apply``.

Select it in ``feature_store.yaml``::

    registry:
        path: data/registry.db
        registry_store_type: ctflow.core.feast_registry.AtomicFileRegistryStore
"""

from __future__ import annotations

import uuid
from pathlib import Path

from feast.infra.registry.file import FileRegistryStore
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.utils import _utc_now

from ctflow.concurrent_files import replace_atomically


class AtomicFileRegistryStore(FileRegistryStore):
    """A ``FileRegistryStore`` whose writes replace the file in one step (see the module doc)."""

    def _write_registry(self, registry_proto: RegistryProto) -> None:
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(_utc_now())
        target: Path = self._filepath
        target.parent.mkdir(parents=True, exist_ok=True)
        # Keep the registry's mode (mkstemp's is private) so that other users' readers still read it.
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        replace_atomically(target, registry_proto.SerializeToString(), mode=mode, durable=True)
