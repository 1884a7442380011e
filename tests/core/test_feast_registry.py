"""Feast's file registry written atomically (ctflow.core.feast_registry): a reader in another process
sees the old registry or the new one, never part of one.

The registry is the demo's own, written by its bootstrap (``feast apply`` through ctflow); the writer
is a second process rewriting it as ``materialize`` does; the reader is Feast's ``FeatureStore``.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

STORE_TYPE = "ctflow.core.feast_registry.AtomicFileRegistryStore"

WRITER = """
import sys, time
from pathlib import Path
from feast.protos.feast.core.Registry_pb2 import Registry
from feast.repo_config import RegistryConfig
from ctflow.core.feast_registry import AtomicFileRegistryStore

repo = Path(sys.argv[1])
store = AtomicFileRegistryStore(RegistryConfig(path="data/registry.db", registry_store_type=sys.argv[2]), repo)
proto = store.get_registry_proto()
print("ready", flush=True)
deadline = time.monotonic() + float(sys.argv[3])
writes = 0
while time.monotonic() < deadline:
    store.update_registry_proto(proto)
    writes += 1
print(writes, flush=True)
"""


def _repo_copy(source: Path, folder: Path) -> Path:
    """The demo's Feast config and registry in ``folder``, the registry written by the atomic store."""
    (folder / "data").mkdir(parents=True)
    shutil.copy(source / "data" / "registry.db", folder / "data" / "registry.db")
    config = (source / "feature_store.yaml").read_text()
    assert STORE_TYPE in config, "the demo's feature_store.yaml no longer selects the atomic registry store"
    (folder / "feature_store.yaml").write_text(config)
    return folder


def test_the_demo_and_the_init_template_select_the_atomic_store(feature_repo_ready):
    from feast import FeatureStore

    from ctflow.cli.init import FEATURE_STORE

    store = FeatureStore(repo_path=str(feature_repo_ready))
    assert type(store.registry._registry_store).__name__ == "AtomicFileRegistryStore"
    assert STORE_TYPE in FEATURE_STORE
    assert STORE_TYPE in (feature_repo_ready / "us_employment" / "feature_store.yaml").read_text()


def test_a_write_replaces_the_file_keeps_its_mode_and_leaves_no_temporary(feature_repo_ready, tmp_path):
    from feast.repo_config import RegistryConfig

    from ctflow.core.feast_registry import AtomicFileRegistryStore

    repo = _repo_copy(feature_repo_ready, tmp_path / "repo")
    registry = repo / "data" / "registry.db"
    registry.chmod(0o640)
    store = AtomicFileRegistryStore(RegistryConfig(path="data/registry.db", registry_store_type=STORE_TYPE), repo)
    before = store.get_registry_proto()
    with registry.open("rb") as opened_before:  # a reader that opened the file before the write
        old_inode = registry.stat().st_ino
        store.update_registry_proto(before)
        assert registry.stat().st_ino != old_inode, "the registry was rewritten in place"
        old = type(before)()
        old.ParseFromString(opened_before.read())  # still the whole old registry
    after = store.get_registry_proto()
    assert old.version_id != after.version_id
    assert [s.spec.name for s in after.feature_services] == [s.spec.name for s in old.feature_services]
    assert len(after.feature_services) > 0
    assert stat.S_IMODE(registry.stat().st_mode) == 0o640
    assert sorted(p.name for p in registry.parent.iterdir()) == ["registry.db"]


def test_a_reader_never_sees_part_of_a_registry_another_process_is_writing(feature_repo_ready, tmp_path):
    from feast import FeatureStore

    repo = _repo_copy(feature_repo_ready, tmp_path / "repo")
    expected = sorted(s.name for s in FeatureStore(repo_path=str(repo)).list_feature_services())
    assert expected, "the demo's registry has no feature service"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(repo), STORE_TYPE, "8"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "ready", writer.stderr.read() if writer.stderr else ""
    reads, seen_versions = 0, set()
    while writer.poll() is None:
        store = FeatureStore(repo_path=str(repo))  # a new store: no cached registry
        proto = store.registry._registry_store.get_registry_proto()
        seen_versions.add(proto.version_id)
        assert sorted(s.spec.name for s in proto.feature_services) == expected
        reads += 1
        time.sleep(0.01)
    writes = int(writer.stdout.read().split()[-1])
    assert writer.returncode == 0
    # The reads overlapped the writes: the reader saw several versions the writer wrote.
    assert writes > 10 and reads > 10 and len(seen_versions) > 2, (writes, reads, len(seen_versions))
