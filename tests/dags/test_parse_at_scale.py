"""Parsing many specs: shard loader files and the validated-spec cache (benchmarks/parse_scale.py
measures the speed; these check that neither changes what is built or reported)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from ctflow.factory.discover import build_folder, folder_errors, in_shard, load_folder
from ctflow.factory.shards import shard_of, write_loaders
from ctflow.spec import cache as spec_cache
from ctflow.spec import cache_index
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


def _after(name: str, *upstream: str) -> str:
    """The demo spec as pipeline ``name``, retrained after ``upstream``."""
    return demo_spec(("pipeline: flight_delay", f"pipeline: {name}"),
                     ("  end_date: 2014-01-01", f"  end_date: 2014-01-01\n  after: [{', '.join(upstream)}]"))


def _spec_entries(cache_dir) -> set[str]:
    """The validated specs the cache holds (one entry each; not the folder index, not build markers)."""
    return {p.name for p in cache_dir.glob("*.json") if not p.name.startswith("index-")}


def test_shard_loaders_build_every_dag_once_and_a_bad_spec_stays_isolated(dags_folder_with, spec_cache_dir):
    folder = dags_folder_with({**_specs(*NAMES), "broken_one.yaml": BROKEN})
    loaders = write_loaders(folder, 3)
    assert sorted(p.name for p in folder.glob("ctflow_pipelines*.py")) == [p.name for p in loaders]
    reporters = sorted(p.name for p in folder.glob("ctflow_spec_errors*.py"))
    assert reporters == [f"ctflow_spec_errors_{k}_of_3.py" for k in range(3)]
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
    # reported by the error reporter of its own shard only, and no other file fails
    (broken_shard,) = [k for k in range(3) if in_shard(folder / "specs" / "broken_one.yaml", (k, 3))]
    assert list(bag.import_errors) == [str(folder / f"ctflow_spec_errors_{broken_shard}_of_3.py")]
    assert "broken_one.yaml" in next(iter(bag.import_errors.values()))
    assert write_loaders(folder, 1) == [folder / "ctflow_pipelines.py"]  # and back to the plain files
    assert sorted(p.name for p in folder.glob("ctflow_*.py")) == ["ctflow_pipelines.py", "ctflow_spec_errors.py"]


def test_a_cold_shard_validates_only_its_own_specs(dags_folder_with, tmp_path, monkeypatch):
    """Parsed by Airflow with an empty cache, each shard's loader and error reporter validate (and
    cache) the specs of their shard and no other: the first file to parse is not the slow one."""
    names = [f"p{i}" for i in range(12)]
    folder = dags_folder_with(_specs(*names))
    write_loaders(folder, 3)
    for k in range(3):
        own = {n for n in names if in_shard(folder / "specs" / f"{n}.yaml", (k, 3))}
        assert 0 < len(own) < len(names)
        for role in ("pipelines", "spec_errors"):
            cache_dir = tmp_path / f"cold-{role}-{k}"
            monkeypatch.setenv(spec_cache.CACHE_ENV, str(cache_dir))
            bag = DagBag(dag_folder=str(folder / f"ctflow_{role}_{k}_of_3.py"))
            assert not bag.import_errors
            built = {f"{kind}_{n}" for n in own for kind in ("ct", "monitor")} if role == "pipelines" else set()
            assert set(bag.dag_ids) == built
            assert len(_spec_entries(cache_dir)) == len(own)


def _problems(errors) -> set[tuple]:
    return {(p.file, p.line, p.path, p.message) for err in errors for p in err.problems}


def test_cold_shards_decide_the_cross_spec_rules_as_one_loader_does(dags_folder_with, tmp_path, monkeypatch):
    """Names and ``schedule.after`` linking specs of different shards: each shard, parsed alone with
    an empty cache, builds and reports what the single loader and reporter do for its specs."""
    folder = dags_folder_with({
        **_specs("p2", "p3", "p5"),
        "a_dup.yaml": demo_spec(("pipeline: flight_delay", "pipeline: p3")),  # sorts first: p3.yaml is the duplicate
        "d1.yaml": _after("d1", "p2"),
        "c1.yaml": _after("c1", "c2"),
        "c2.yaml": _after("c2", "c1"),
        "u1.yaml": _after("u1", "broken_one"),
        "broken_one.yaml": BROKEN,
    })
    specs = folder / "specs"
    for one, other in [("a_dup", "p3"), ("d1", "p2"), ("c1", "c2"), ("u1", "broken_one")]:  # in other shards
        assert not any(in_shard(specs / f"{one}.yaml", (k, 3)) and in_shard(specs / f"{other}.yaml", (k, 3))
                       for k in range(3))
    monkeypatch.setenv(spec_cache.CACHE_ENV, str(tmp_path / "whole"))
    whole_dags, whole_errors = set(build_folder(specs)), _problems(folder_errors(specs))
    assert whole_dags == {f"{kind}_{n}" for n in ("p2", "p3", "p5", "d1") for kind in ("ct", "monitor")}
    assert {(file.rsplit("/", 1)[-1], message.split(":")[0]) for file, _, _, message in whole_errors} >= {
        ("p3.yaml", "pipeline 'p3' is already defined in dags/specs/a_dup.yaml"),
        ("c1.yaml", "retraining triggers form a cycle"), ("c2.yaml", "retraining triggers form a cycle"),
        ("u1.yaml", "pipeline 'broken_one' is not loaded")}
    dags: set[str] = set()
    errors: set[tuple] = set()
    for k in range(3):
        monkeypatch.setenv(spec_cache.CACHE_ENV, str(tmp_path / f"loader-{k}"))
        dags |= set(build_folder(specs, shard=(k, 3)))
        monkeypatch.setenv(spec_cache.CACHE_ENV, str(tmp_path / f"reporter-{k}"))
        errors |= _problems(folder_errors(specs, shard=(k, 3)))
    assert (dags, errors) == (whole_dags, whole_errors)


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
    (path,) = cache_dir.glob("index-*.sqlite")
    return path


def _facts(folder, **kwargs):
    return {i.path.stem: (i.pipeline, i.after, i.error is None) for i in load_folder(folder / "specs", **kwargs)}


def _indexed_pipeline(cache_dir, name):
    with contextlib.closing(sqlite3.connect(_index_path(cache_dir))) as db:
        return db.execute("SELECT pipeline FROM specs WHERE name = ?", (name,)).fetchone()


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


@pytest.mark.parametrize("damage", ["truncated", "not a database", "other schema", "other folder", "other version", "other text"])
def test_a_corrupt_index_is_not_trusted(dags_folder_with, spec_cache_dir, damage):
    folder = dags_folder_with(_specs("p0", "p1"))
    expected = _facts(folder, full=False)
    index = _index_path(spec_cache_dir)
    with contextlib.closing(sqlite3.connect(index, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = DELETE")  # everything in the one file, for the damage below
        db.execute("UPDATE specs SET pipeline = 'p0' WHERE name = 'p1.yaml'")  # were it trusted: a duplicate name
        if damage == "other schema":  # the same columns without STRICT, so a value may have another type
            db.execute("ALTER TABLE after RENAME TO after_strict")
            db.execute("CREATE TABLE after (spec TEXT, position INTEGER, upstream TEXT, PRIMARY KEY (spec, position))")
            db.execute("INSERT INTO after SELECT * FROM after_strict")
            db.execute("DROP TABLE after_strict")
        elif damage in ("other folder", "other version"):
            key = "folder" if damage == "other folder" else "versions"
            db.execute("UPDATE meta SET value = value || '-elsewhere' WHERE key = ?", (key,))
        elif damage == "other text":  # recorded as the file changed: its text is checked against the recorded digest
            mtime = (folder / "specs" / "p1.yaml").stat().st_mtime_ns
            db.execute("UPDATE specs SET recorded_ns = ?, sha256 = ? WHERE name = 'p1.yaml'", (mtime, "0" * 64))
    if damage == "truncated":  # into the first page, which holds the schema
        index.write_bytes(index.read_bytes()[:2048])
    elif damage == "not a database":
        index.write_bytes(b"not a database\n" * 1000)
    assert _facts(folder, full=False) == expected
    _facts(folder, full=False)  # a damaged file is removed, and the parse after that writes a new one
    assert _indexed_pipeline(spec_cache_dir, "p1.yaml") == ("p1",)  # the index is written again


@pytest.mark.parametrize("written", ["p${CTFLOW_SPEC_DIGIT}", r'"\x703"', "'p3'", "!!str p3", "&name p3"])
def test_a_name_of_another_shard_is_seen_however_it_is_written(dags_folder_with, spec_cache_dir, monkeypatch, written):
    """A cold shard reads the other shards' specs only as words: a duplicate name written through a
    variable, an escape, quotes, a tag or an anchor still stops the shard's own spec of that name."""
    monkeypatch.setenv("CTFLOW_SPEC_DIGIT", "3")
    folder = dags_folder_with({**_specs("p3"), "a_dup.yaml": demo_spec(("pipeline: flight_delay", f"pipeline: {written}"))})
    (own,) = [(k, 3) for k in range(3) if in_shard(folder / "specs" / "p3.yaml", (k, 3))]
    (other,) = [(k, 3) for k in range(3) if in_shard(folder / "specs" / "a_dup.yaml", (k, 3))]
    assert own != other
    assert set(build_folder(folder / "specs", shard=own)) == set()
    assert set(build_folder(folder / "specs", shard=other)) == {"ct_p3", "monitor_p3"}  # from a_dup.yaml


# --- a warm shard asks the index about its own names only --------------------------------------

class _Opens:
    """Where the audit hook records the paths opened: ``paths`` while a test asks, else None. Hooks
    cannot be removed, so this process gets one, added on first use."""

    paths: list[str] | None = None
    hooked = False

    @classmethod
    def record(cls, event: str, args: tuple) -> None:
        if event == "open" and cls.paths is not None and isinstance(args[0], (str, bytes, os.PathLike)):
            cls.paths.append(os.fsdecode(args[0]))


@pytest.fixture
def spec_opens():
    """The spec files (by name) opened while the returned function's argument runs (an audit hook:
    Python reports every ``open``, whoever asks)."""
    if not _Opens.hooked:
        sys.addaudithook(_Opens.record)
        _Opens.hooked = True

    def opened(run, specs):
        _Opens.paths = paths = []
        try:
            run()
        finally:
            _Opens.paths = None
        return {Path(p).name for p in paths if Path(p).parent == specs}

    return opened


@pytest.fixture
def index_statements(monkeypatch):
    """Every SQL statement the folder index runs, with its parameters (SQLite's own trace)."""
    statements: list[str] = []
    connect = cache_index._connect

    def traced(path):
        db = connect(path)
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(cache_index, "_connect", traced)
    return statements


def _shards(specs, count):
    return {k: {p.name for p in specs.glob("*.yaml") if in_shard(p, (k, count))} for k in range(count)}


def _warm(specs, count):
    for k in range(count):
        build_folder(specs, shard=(k, count))
        folder_errors(specs, shard=(k, count))


def test_a_warm_shard_reads_its_own_specs_only_and_asks_the_index_about_its_names_only(
        dags_folder_with, spec_cache_dir, monkeypatch, spec_opens, index_statements):
    """Once the index knows the folder, a shard's loader opens its own spec files and no other, its
    reporter none, and both ask the index for the facts of their own specs and of those linked to
    them by a name (here ``d1`` after ``p2``): the rest of the index is only compared with the
    folder's listing (one row of signatures per file)."""
    monkeypatch.setattr(cache_index, "RACY_NS", 0)  # files written a moment ago would be checked by their text
    folder = dags_folder_with({**_specs(*NAMES, "p7", "p8", "p9"), "d1.yaml": _after("d1", "p2")})
    specs = folder / "specs"
    shards = _shards(specs, 3)
    assert not any({"d1.yaml", "p2.yaml"} <= own for own in shards.values())
    _warm(specs, 3)
    for k, own in shards.items():
        linked = {"p2.yaml"} if "d1.yaml" in own else {"d1.yaml"} if "p2.yaml" in own else set()
        for role, parse, opens in [("loader", build_folder, own), ("reporter", folder_errors, set())]:
            index_statements.clear()
            assert spec_opens(lambda: parse(specs, shard=(k, 3)), specs) == opens, role  # noqa: B023
            by_fact = [s for s in index_statements if re.search(r"\b(pipeline|upstream)\b", s)]
            assert all(" IN (" in s for s in by_fact), by_fact  # each asks about given names, none reads all
            asked = {name for s in by_fact for name in re.findall(r"'([^']+\.yaml)'", s)}
            assert linked <= asked <= own | linked, (role, asked)


def _other_name(specs, count, own, prefix):
    """A spec file name starting with ``prefix`` whose shard is not the one of ``own``."""
    (shard,) = [(k, count) for k in range(count) if in_shard(specs / own, (k, count))]
    return next(name for i in range(100) if not in_shard(specs / (name := f"{prefix}{i}.yaml"), shard))


def _decided_as_one_loader(specs, shard, monkeypatch):
    """The DAGs and problems of ``shard``'s files and of the single loader and reporter (no cache), for ``shard``'s specs."""
    own = {p.stem for p in specs.glob("*.yaml") if in_shard(p, shard)}
    with monkeypatch.context() as uncached:
        uncached.setenv(spec_cache.CACHE_ENV, "off")
        pipelines = {i.pipeline for i in load_folder(specs) if i.error is None and i.path.stem in own}
        whole = ({d for d in build_folder(specs) if d.split("_", 1)[1] in pipelines},
                 {p for p in _problems(folder_errors(specs)) if Path(p[0]).stem in own})
    return (set(build_folder(specs, shard=shard)), _problems(folder_errors(specs, shard=shard))), whole


@pytest.mark.parametrize("change", ["added", "changed", "removed", "renamed"])
def test_a_warm_shard_sees_another_shards_spec_change(dags_folder_with, spec_cache_dir, monkeypatch, change):
    """A spec of another shard added, edited (same size, old modification time put back), removed
    or renamed after the index was written: the shard of ``p3`` decides as the single loader does
    (a duplicate of ``p3`` that sorts first stops ``p3``)."""
    monkeypatch.setattr(cache_index, "RACY_NS", 0)  # so the index's signatures, not the racy rule, are what is tested
    folder = dags_folder_with(_specs(*NAMES))
    specs = folder / "specs"
    (shard,) = [(k, 3) for k in range(3) if in_shard(specs / "p3.yaml", (k, 3))]
    before, after = _other_name(specs, 3, "p3.yaml", "z_dup"), _other_name(specs, 3, "p3.yaml", "a_dup")
    holding = {"added": None, "changed": "pipeline: q3", "removed": "pipeline: p3", "renamed": "pipeline: p3"}[change]
    if holding:
        (specs / (after if change == "changed" else before if change == "renamed" else after)).write_text(
            demo_spec(("pipeline: flight_delay", holding)))
    _warm(specs, 3)
    if change == "added":
        (specs / after).write_text(demo_spec(("pipeline: flight_delay", "pipeline: p3")))
    elif change == "changed":
        path, status = specs / after, (specs / after).stat()
        path.write_text(path.read_text().replace("pipeline: q3", "pipeline: p3"))
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
        assert (path.stat().st_size, path.stat().st_mtime_ns) == (status.st_size, status.st_mtime_ns)
    elif change == "removed":
        (specs / after).unlink()
    else:
        (specs / before).rename(specs / after)
    shard_files, one_loader = _decided_as_one_loader(specs, shard, monkeypatch)
    assert shard_files == one_loader
    p3_fails = any(p[0].endswith("p3.yaml") and "already defined" in p[3] for p in one_loader[1])
    assert p3_fails == (change != "removed")


def test_concurrent_saves_keep_the_index_whole(dags_folder_with, spec_cache_dir, monkeypatch, spec_opens):
    """Six processes parse every shard at once, on an empty cache, each saving what it read: the
    index stays a sound database and loses no entry (each shard's facts then come without opening a spec)."""
    monkeypatch.setattr(cache_index, "RACY_NS", 0)  # files written a moment ago would be checked by their text
    names = [f"p{i}" for i in range(30)]
    folder = dags_folder_with(_specs(*names))
    specs = folder / "specs"
    context = multiprocessing.get_context("fork")
    start = context.Barrier(6)
    spans = context.Queue()

    def parse(first: int) -> None:
        start.wait()
        began = time.monotonic()
        for k in range(6):
            load_folder(specs, shard=((first + k) % 6, 6), full=False)
        spans.put((began, time.monotonic()))

    processes = [context.Process(target=parse, args=(first,)) for first in range(6)]
    for process in processes:
        process.start()
    ran = [spans.get(timeout=300) for _ in processes]
    for process in processes:
        process.join()
    assert [process.exitcode for process in processes] == [0] * 6
    assert max(began for began, _ in ran) < min(ended for _, ended in ran)  # all six were parsing at once
    with contextlib.closing(sqlite3.connect(_index_path(spec_cache_dir))) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert dict(db.execute("SELECT name, pipeline FROM specs")) == {f"{n}.yaml": n for n in names}
    for k in range(6):
        assert spec_opens(lambda: load_folder(specs, shard=(k, 6), full=False), specs) == set()  # noqa: B023
