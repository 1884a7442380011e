"""Parsing many specs: shard loader files and the validated-spec cache (benchmarks/parse_scale.py
measures the speed; these check that neither changes what is built or reported)."""

from __future__ import annotations

import json
import os

import pytest
from airflow.dag_processing.dagbag import DagBag

from ctflow.factory.discover import in_shard, load_folder
from ctflow.factory.shards import shard_of, write_loaders
from ctflow.spec import cache as spec_cache
from tests.conftest import demo_spec

NAMES = [f"p{i}" for i in range(7)]
BROKEN = demo_spec(("pipeline: flight_delay", "pipeline: broken_one"), ("max_iter: 200", "max_iter: many"))


def _specs(*names: str) -> dict[str, str]:
    return {f"{n}.yaml": demo_spec(("pipeline: flight_delay", f"pipeline: {n}")) for n in names}


@pytest.fixture
def spec_cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "spec-cache"
    monkeypatch.setenv(spec_cache.CACHE_ENV, str(folder))
    return folder


def test_shard_loaders_build_every_dag_once_and_a_bad_spec_stays_isolated(dags_folder_with, spec_cache_dir):
    folder = dags_folder_with({**_specs(*NAMES), "broken_one.yaml": BROKEN})
    loaders = write_loaders(folder, 3)
    assert sorted(p.name for p in folder.glob("ctflow_pipelines*.py")) == [p.name for p in loaders]
    bag = DagBag(dag_folder=str(folder))
    expected = {f"{kind}_{n}" for n in NAMES for kind in ("ct", "monitor")}
    assert set(bag.dag_ids) == expected
    by_file: dict[str, set[str]] = {}
    for dag in bag.dags.values():
        by_file.setdefault(dag.fileloc.rsplit("/", 1)[-1], set()).add(dag.dag_id)
    for loader in loaders:  # each spec's DAGs come from the one loader of its shard
        shard = shard_of(loader)
        assert by_file.get(loader.name, set()) == {
            f"{kind}_{n}" for n in NAMES if in_shard(folder / "specs" / f"{n}.yaml", shard) for kind in ("ct", "monitor")
        }
    assert list(bag.import_errors) == [str(folder / "ctflow_spec_errors.py")]
    assert "broken_one.yaml" in next(iter(bag.import_errors.values()))


def test_a_cached_spec_is_the_validated_one_and_a_changed_file_is_validated_again(dags_folder_with, spec_cache_dir):
    folder = dags_folder_with(_specs("p0", "p1"))
    (fresh,) = [i for i in load_folder(folder / "specs") if i.pipeline == "p0"]
    assert fresh.cache_key and (spec_cache_dir / f"{fresh.cache_key}.json").is_file()
    (cached,) = [i for i in load_folder(folder / "specs") if i.pipeline == "p0"]
    assert cached.spec == fresh.spec
    (folder / "specs" / "p0.yaml").write_text(BROKEN.replace("pipeline: broken_one", "pipeline: p0"))
    (changed,) = [i for i in load_folder(folder / "specs") if i.path.stem == "p0"]
    assert changed.spec is None and changed.error and "max_iter" in str(changed.error)


def test_a_tampered_entry_is_not_trusted(dags_folder_with, spec_cache_dir):
    folder = dags_folder_with(_specs("p0"))
    (item,) = load_folder(folder / "specs")
    entry_path = spec_cache_dir / f"{item.cache_key}.json"
    head, spec = entry_path.read_text().split("\n", 1)
    tampered = json.loads(spec)
    tampered["model"]["params"]["max_iter"] = "many"  # what validation would refuse
    tampered["surprise"] = True
    entry_path.write_text(head + "\n" + json.dumps(tampered))
    (again,) = load_folder(folder / "specs")
    assert again.spec == item.spec  # validated from the file again, and the entry rewritten
    assert json.loads(entry_path.read_text().split("\n", 1)[1])["model"]["params"]["max_iter"] == 200


def test_a_cache_folder_others_can_write_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setenv(spec_cache.CACHE_ENV, str(shared))
    assert spec_cache.folder() is None
    monkeypatch.setenv(spec_cache.CACHE_ENV, "off")
    assert spec_cache.folder() is None


def test_the_key_follows_interpolated_variables(monkeypatch):
    text = demo_spec(("owner: data-science-flights", "owner: ${CTFLOW_SPEC_TEAM}"))
    monkeypatch.setenv("CTFLOW_SPEC_TEAM", "a")
    first = spec_cache.key(text)
    monkeypatch.setenv("CTFLOW_SPEC_TEAM", "b")
    assert spec_cache.key(text) != first


# --- the folder index: a loader file reads only its own shard's specs ---------------------------


def _index_path(cache_dir):
    (path,) = cache_dir.glob("index-*.json")
    return path


def _facts(folder, **kwargs):
    return {i.path.stem: (i.pipeline, i.after, i.error is None) for i in load_folder(folder / "specs", **kwargs)}


def test_specs_outside_the_shard_come_from_the_folder_index_unread(dags_folder_with, spec_cache_dir):
    folder = dags_folder_with({**_specs("p0", "p1", "p2"), "broken_one.yaml": BROKEN})
    first = load_folder(folder / "specs", full=False)
    assert all(i.text is not None for i in first)  # no index yet: every file was read
    again = {i.path.stem: i for i in load_folder(folder / "specs", full=False)}
    assert {stem for stem, i in again.items() if i.text is None} == {"p0", "p1", "p2"}  # the invalid one is read
    assert [(i.pipeline, i.after, i.cache_key) for i in first] == [
        (again[i.path.stem].pipeline, again[i.path.stem].after, again[i.path.stem].cache_key) for i in first]
    shard = (0, 2)
    built = {i.path.stem for i in load_folder(folder / "specs", shard=shard) if i.spec is not None}
    assert built == {n for n in ("p0", "p1", "p2") if in_shard(folder / "specs" / f"{n}.yaml", shard)}


def test_a_changed_spec_is_not_taken_from_a_stale_index(dags_folder_with, spec_cache_dir):
    folder = dags_folder_with(_specs("p0", "p1"))
    load_folder(folder / "specs", full=False)
    path = folder / "specs" / "p1.yaml"
    before = path.stat()
    # Same size, and the old modification time put back: the change time still tells.
    path.write_text(path.read_text().replace("pipeline: p1", "pipeline: q1"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    assert _facts(folder, full=False)["p1"] == ("q1", [], True)


def test_an_index_entry_follows_the_variables_the_spec_reads(dags_folder_with, spec_cache_dir, monkeypatch):
    monkeypatch.setenv("CTFLOW_SPEC_NAME", "first")
    folder = dags_folder_with({"p0.yaml": demo_spec(("pipeline: flight_delay", "pipeline: ${CTFLOW_SPEC_NAME}"))})
    assert _facts(folder, full=False)["p0"][0] == "first"
    monkeypatch.setenv("CTFLOW_SPEC_NAME", "second")
    assert _facts(folder, full=False)["p0"][0] == "second"


@pytest.mark.parametrize("damage", ["truncated", "wrong types", "other folder", "other text"])
def test_a_corrupt_index_is_not_trusted(dags_folder_with, spec_cache_dir, damage):
    folder = dags_folder_with(_specs("p0", "p1"))
    expected = _facts(folder, full=False)
    index = _index_path(spec_cache_dir)
    data = json.loads(index.read_text())
    entry = data["specs"]["p1.yaml"]
    entry["pipeline"] = "p0"  # were it trusted: a duplicate name, p1 would fail
    if damage == "truncated":
        index.write_text(json.dumps(data)[:-40])
    elif damage == "wrong types":
        entry["after"] = "p0"
        index.write_text(json.dumps(data))
    elif damage == "other folder":
        data["folder"] = str(folder.parent / "elsewhere")
        index.write_text(json.dumps(data))
    else:  # an index scanned as the file changed: its text is checked against the recorded digest
        data["scanned_ns"] = (folder / "specs" / "p1.yaml").stat().st_mtime_ns
        entry["sha256"] = "0" * 64
        index.write_text(json.dumps(data))
    assert _facts(folder, full=False) == expected
    assert json.loads(index.read_text())["specs"]["p1.yaml"]["pipeline"] == "p1"  # and the index is rewritten
