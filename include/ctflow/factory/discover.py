"""Find the specs of a folder, validate them together, and build the DAGs of the valid ones.

One bad spec never hides the others: each file is loaded on its own, within the limits of
:mod:`ctflow.spec.yaml_safe`, and every problem (or unexpected exception) becomes that file's
error instead of being raised. A symbolic link in the folder to a file outside it is not
followed. Cross-spec rules (unique names, ``schedule.after`` references
and cycles) are checked here because no single file can see them.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ctflow.factory import mentions
from ctflow.spec import PipelineSpec, Problem, SpecError, parse_spec
from ctflow.spec import cache as spec_cache
from ctflow.spec.cache_index import Facts, FolderIndex
from ctflow.spec.errors import did_you_mean
from ctflow.spec.load import read_spec_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.sdk import DAG

SPEC_SUFFIXES = (".yaml", ".yml")
#: Seconds the error reporter spends building specs no loader has built yet (a cold cache); the rest
#: are built by their shard's loader, which records the outcome for the reporter's next parse.
BUILD_CHECK_BUDGET = 5.0
log = logging.getLogger(__name__)


@dataclass
class LoadedSpec:
    """A spec file and what became of it: a spec, or the problems that stop it."""

    path: Path
    display_name: str
    text: str | None = None
    spec: PipelineSpec | None = None
    error: SpecError | None = None
    #: What the cross-spec rules need, known without ``spec`` for a cached spec outside the shard.
    pipeline: str | None = None
    after: list[str] = field(default_factory=list)
    cache_key: str | None = None
    #: A spec of another shard not validated (no index facts): ``text`` tells which names it may hold.
    unread: bool = False


def spec_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The folder's ``*.yaml`` and ``*.yml`` files and links to files (a link is judged on loading), by name."""
    return [Path(folder) / name for name in _scan(Path(folder), with_status=False)]


def _scan(folder: Path, *, with_status: bool) -> dict[str, os.stat_result | None]:
    """The folder's spec files by name, sorted, with their ``lstat`` (None if it failed) when ``with_status``."""
    found: dict[str, os.stat_result | None] = {}
    try:
        with os.scandir(folder) as entries:  # the entry's type comes with the listing: no stat to tell a file
            for entry in entries:
                if entry.name.endswith(SPEC_SUFFIXES) and (entry.is_symlink() or entry.is_file()):
                    found[entry.name] = _lstat(entry) if with_status else None
    except OSError:  # a missing or unreadable folder holds no specs, as glob found none
        return {}
    return dict(sorted(found.items()))


def _lstat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None


def in_shard(path: Path, shard: tuple[int, int] | None) -> bool:
    """Whether spec ``path`` belongs to shard ``(index, count)``: a hash of its file name, so
    adding or removing a spec moves no other spec to another loader file."""
    return _stem_in_shard(path.stem, shard)


def _stem_in_shard(stem: str, shard: tuple[int, int] | None) -> bool:
    return shard is None or zlib.crc32(stem.encode()) % shard[1] == shard[0]


def _stem(name: str) -> str:
    """``Path(name).stem`` for a spec file name, without making a path per spec of the folder."""
    return os.path.splitext(name)[0]


def load_folder(
    folder: str | os.PathLike[str],
    *,
    only: set[str] | None = None,
    shard: tuple[int, int] | None = None,
    full: bool = True,
) -> list[LoadedSpec]:
    """Load the specs of ``folder`` (or only the files whose stems are in ``only``).

    With ``shard``: the specs of that shard, and of the other specs only those that the
    cross-spec rules of the shard's specs depend on (:func:`_related`), so that a shard's parse
    works for its own specs, whatever the folder's size and whether the cache is filled. Specs
    outside ``shard``, and all specs when ``full`` is false, may come back without ``spec`` (only
    ``pipeline`` and ``after``, what the cross-spec rules need).

    :param folder: the specs folder.
    :param only: stems of the files to load, without the cross-spec rules (a task is running).
    :param shard: ``(index, count)``, see :func:`in_shard`; None for all specs.
    :param full: whether the shard's valid specs come with ``spec``.
    """
    folder = Path(folder)
    cache_dir = spec_cache.folder()
    scanned_ns = time.time_ns()  # before any file is looked at: the index's racily clean rule
    listing = _scan(folder, with_status=only is None)  # a running task's spec needs no signatures
    if only is not None:
        return [load_one(folder / name, display_name=_display_name(folder / name, folder), full=full,
                         cache_dir=cache_dir) for name in listing if _stem(name) in only]
    # Specs loaded without ``spec`` come from the folder's index when their file is unchanged.
    index = FolderIndex(cache_dir, folder, listing=listing, scanned_ns=scanned_ns) if cache_dir is not None else None
    try:
        own: list[str] = []
        others: list[str] = []
        for name in listing:
            (own if _stem_in_shard(_stem(name), shard) else others).append(name)
        loaded = _load_own(folder, own, listing, full, cache_dir, index)
        unread = [_unread(folder / name, folder) for name in others if index is None or not index.trusts(name)]

        def validate(item: LoadedSpec) -> LoadedSpec:
            return _load_recorded(item.path, item.display_name, False, cache_dir, index, listing.get(item.path.name))

        indexed = _Indexed(folder, index, others, validate)
        loaded += _related(loaded, unread, indexed.linked, validate)
        loaded.sort(key=lambda item: item.path.name)  # file order: the first file of a name keeps it
        _check_across(loaded)
        if index is not None:
            index.save()
    finally:
        if index is not None:
            index.close()
    return loaded


def _load_own(
    folder: Path, names: list[str], listing: dict[str, os.stat_result | None], full: bool, cache_dir: Path | None,
    index: FolderIndex | None,
) -> list[LoadedSpec]:
    """The specs ``names`` (of the file's shard): validated, or, without ``full``, their indexed facts when they hold."""
    indexed = index.facts(names) if index is not None and not full else {}
    loaded = []
    for name in names:
        path = folder / name
        display_name = _display_name(path, folder)
        facts = indexed.get(name)
        if facts is not None:
            loaded.append(_from_facts(path, display_name, facts))
        else:
            loaded.append(_load_recorded(path, display_name, full, cache_dir, index, listing[name]))
    return loaded


class _Indexed:
    """The specs of other shards whose index entries hold, found by the names they hold or name,
    each once: what :func:`_related` asks of them costs the names it asks about, not the folder."""

    def __init__(self, folder: Path, index: FolderIndex | None, others: list[str],
                 validate: Callable[[LoadedSpec], LoadedSpec]):
        self._folder = folder
        self._index = index
        self._left = {name for name in others if index.trusts(name)} if index is not None else set()
        self._validate = validate

    def linked(self, names: set[str]) -> list[LoadedSpec]:
        """The specs not given yet that hold or name one of ``names``, or are ``x.yaml`` for a name ``x``."""
        if self._index is None or not self._left:
            return []
        by_stem = {file for name in names for file in (f"{name}.yaml", f"{name}.yml")}
        found = (by_stem | self._index.holding(names)) & self._left
        self._left -= found
        facts = self._index.facts(found)
        linked = []
        for name in sorted(found):
            path = self._folder / name
            display_name = _display_name(path, self._folder)
            if name in facts:
                linked.append(_from_facts(path, display_name, facts[name]))
            else:  # a malformed entry: read as without the index
                linked.append(self._validate(LoadedSpec(path=path, display_name=display_name)))
        return linked


def _from_facts(path: Path, display_name: str, facts: Facts) -> LoadedSpec:
    """A spec known from the folder's index: what the cross-spec rules need, not validated again."""
    return LoadedSpec(path=path, display_name=display_name, pipeline=facts.pipeline, after=list(facts.after),
                      cache_key=facts.key)


def _unread(path: Path, folder: Path) -> LoadedSpec:
    """A spec of another shard that the index does not know: only its text (not validated)."""
    item = LoadedSpec(path=path, display_name=_display_name(path, folder), unread=True)
    try:
        item.text = read_spec_text(path, item.display_name)
    except SpecError:  # unreadable or over a limit: validated if any spec is (it fails fast)
        item.text = None
    return item


def _related(
    own: list[LoadedSpec], unread: list[LoadedSpec], indexed: Callable[[set[str]], list[LoadedSpec]],
    validate: Callable[[LoadedSpec], LoadedSpec],
) -> list[LoadedSpec]:
    """The other specs that the cross-spec rules of ``own`` depend on, the unread ones validated.

    Those are the specs that may hold a name that ``own`` holds or names in ``schedule.after``,
    and ``x.yaml`` for a name ``x`` (an invalid ``x.yaml`` is named when ``x`` is missing), then
    the same for those, until none is added: whole connected parts of the folder's graph of
    names, so the rules decide for ``own`` as with every spec loaded. The other specs are left out.

    :param own: the shard's specs, loaded.
    :param unread: the other specs the index does not know (``text`` only).
    :param indexed: the other specs the index knows that are linked to some names (each given once).
    :param validate: loads an unread spec.
    """
    related: list[LoadedSpec] = []
    seen: set[str] = set()
    frontier = _names_of(own)
    waiting = unread
    while frontier:
        seen |= frontier
        taken = indexed(frontier)
        if waiting:
            pattern = mentions.names_pattern(frontier)
            touched = [item.path.stem in frontier or mentions.may_name(item.text, pattern) for item in waiting]
            taken += [validate(item) for item, touches in zip(waiting, touched, strict=True) if touches]
            waiting = [item for item, touches in zip(waiting, touched, strict=True) if not touches]
        related += taken
        frontier = _names_of(taken) - seen
    return related


def _names_of(items: list[LoadedSpec]) -> set[str]:
    """The pipeline names ``items`` hold or name in ``schedule.after`` (none for an invalid spec)."""
    return {name for item in items if item.error is None and item.pipeline for name in (item.pipeline, *item.after)}


def _load_recorded(
    path: Path, display_name: str, full: bool, cache_dir: Path | None, index: FolderIndex | None,
    status: os.stat_result | None,
) -> LoadedSpec:
    """:func:`load_one`, its facts recorded in the folder's index (``status``: the file's ``lstat`` before the read)."""
    item = load_one(path, display_name=display_name, full=full, cache_dir=cache_dir)
    if (index is not None and status is not None and item.error is None and item.text is not None and item.pipeline
            and item.cache_key):
        index.record(path.name, status, item.text, Facts(item.cache_key, item.pipeline, tuple(item.after)))
    return item


def load_one(
    path: Path, *, display_name: str | None = None, full: bool = True, cache_dir: Path | bool | None = True
) -> LoadedSpec:
    """Load one spec file; whatever goes wrong becomes ``item.error``, never an exception.

    A symbolic link that leads out of the file's folder is not followed (a specs folder holds
    its specs; a link to ``/etc`` or another team's folder is refused the same way everywhere).
    With ``full`` false, a cached valid spec is not rebuilt from its entry (``spec`` stays None).
    ``cache_dir``: the spec cache's folder, None for none, True to look it up.
    """
    if cache_dir is True:
        cache_dir = spec_cache.folder()
    item = LoadedSpec(path=path, display_name=display_name or str(path))
    if _leaves(path, path.parent):
        message = "is a symbolic link to a file outside its folder, which is not followed: copy the spec here"
        item.error = SpecError([Problem(item.display_name, None, (), message)])
        return item
    try:
        item.text = read_spec_text(path, item.display_name)
        _validate(item, full, cache_dir or None)
    except SpecError as err:
        item.error = err
    except Exception as err:  # a bug or an input no rule foresaw: this spec fails, the others load
        log.exception("cannot load spec %s", item.display_name)
        message = f"cannot load spec: unexpected {type(err).__name__} (please report it)"
        item.error = SpecError([Problem(item.display_name, None, (), message)])
    return item


def _validate(item: LoadedSpec, full: bool, cache_dir: Path | None) -> None:
    """``item.spec`` (or, with ``full`` false, only what the cross-spec rules need) from the
    cache, else from validating ``item.text``; raises :class:`SpecError`."""
    assert item.text is not None
    if cache_dir is not None:
        item.cache_key = spec_cache.key(item.text)
        entry = spec_cache.get(cache_dir, item.cache_key)
        if entry is not None:
            item.spec = spec_cache.spec_of(entry) if full else None
            if item.spec is not None or not full:
                item.pipeline, item.after = entry["pipeline"], list(entry["after"])
                return
    item.spec = parse_spec(item.text, item.display_name)
    item.pipeline, item.after = item.spec.pipeline, list(item.spec.schedule.after)
    if cache_dir is not None and item.cache_key is not None:
        spec_cache.put(cache_dir, item.cache_key, item.spec)


def _full_spec(item: LoadedSpec) -> PipelineSpec | None:
    """The spec of a valid item loaded without it (``full`` false)."""
    if item.spec is None and item.error is None and _text_of(item) is not None:
        _validate(item, True, spec_cache.folder())
    return item.spec


def _text_of(item: LoadedSpec) -> str | None:
    """The spec's text, read now if it came from the folder's index (None if it cannot be read now)."""
    if item.text is None:
        try:
            item.text = read_spec_text(item.path, item.display_name)
        except SpecError:
            return None
    return item.text


def _leaves(path: Path, folder: Path) -> bool:
    """Whether ``path``, a symbolic link, leads outside ``folder``."""
    return path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def build_folder(
    folder: str | os.PathLike[str], *, dag_id: str | None = None, shard: tuple[int, int] | None = None
) -> dict[str, DAG]:
    """DAGs of the valid specs in ``folder`` (of ``shard`` only, see :func:`in_shard`), by dag_id.
    With ``dag_id`` (a task is running), only the spec that makes it is loaded and built."""
    from ctflow.factory.build import build_dags

    only = _stems_for(dag_id, folder) if dag_id else None
    cache_dir = spec_cache.folder()
    dags: dict[str, DAG] = {}
    for item in load_folder(folder, only=only, shard=shard):
        if item.spec is None or not in_shard(item.path, shard):
            continue
        try:
            built = build_dags(item.spec, source_text=item.text, source_name=item.display_name,
                               source_path=str(item.path))
        except Exception:
            # ctflow_spec_errors.py reports it as an import error (folder_errors builds it too).
            log.exception("cannot build the DAGs of spec %s; the other specs' DAGs are built", item.display_name)
            if cache_dir is not None and item.cache_key:
                spec_cache.record_build(cache_dir, item.cache_key, ok=False)
            continue
        if cache_dir is not None and item.cache_key:
            spec_cache.record_build(cache_dir, item.cache_key, ok=True)
        for dag in built:
            if dag_id is None or dag.dag_id == dag_id:
                dags[dag.dag_id] = dag
    return dags


def folder_errors(folder: str | os.PathLike[str], shard: tuple[int, int] | None = None) -> list[SpecError]:
    """The errors of every invalid spec in ``folder`` (of ``shard`` only), and of every valid one whose DAGs fail to build.

    Building again here is the price of the two-file loader: the file that builds DAGs must not
    raise (Airflow would drop all of its DAGs), so this one, which defines none, reports the failure.
    With the spec cache on, a spec a loader has built (same bytes, ctflow and Airflow) is not
    built again, and specs no loader has built yet are built for at most
    :data:`BUILD_CHECK_BUDGET` seconds (their loader builds them and records the outcome).

    :param folder: the specs folder.
    :param shard: ``(index, count)`` (see :func:`in_shard`): the error reporter of one shard, which
        reads the other shards' specs only as its shard's loader does; None for all specs.
    """
    from ctflow.factory.build import build_dags

    cache_dir = spec_cache.folder()
    deadline = time.monotonic() + BUILD_CHECK_BUDGET
    errors = []
    for item in load_folder(folder, shard=shard, full=cache_dir is None):
        if not in_shard(item.path, shard):
            continue  # another shard's reporter reports it
        if item.error:
            errors.append(item.error)
            continue
        built = cache_dir is not None and item.cache_key and spec_cache.built_marker(cache_dir, item.cache_key).exists()
        if built or (cache_dir is not None and time.monotonic() > deadline):
            continue
        try:
            build_dags(_full_spec(item), source_text=item.text, source_name=item.display_name,  # type: ignore[arg-type]
                       source_path=str(item.path))
        except Exception as err:  # noqa: BLE001 - reported as this spec's error
            message = f"its DAGs cannot be built: {type(err).__name__}: {err}"
            errors.append(SpecError([Problem(item.display_name, None, (), message)]))
    return errors


def _stems_for(dag_id: str, folder: str | os.PathLike[str]) -> set[str] | None:
    """Spec files that may define ``dag_id``: by convention ``ct_x``/``monitor_x`` come from ``x.yaml``."""
    for prefix in ("ct_", "monitor_"):
        if dag_id.startswith(prefix) and any(p.stem == dag_id[len(prefix):] for p in spec_files(folder)):
            return {dag_id[len(prefix):]}
    return None  # named otherwise: load all


def _display_name(path: Path, folder: Path) -> str:
    """``dags/specs/x.yaml``: short, and what the author sees in their editor."""
    try:
        return str(path.relative_to(folder.parent.parent))
    except ValueError:
        return str(path)


def _check_across(loaded: list[LoadedSpec]) -> None:
    # Pair each item with its spec up front: _fail clears item.spec, and one file may have
    # several cross-spec problems (an unknown name and a cycle), all reported together.
    valid = [(item, item.pipeline, list(item.after)) for item in loaded if item.error is None and item.pipeline]
    invalid = {item.path.stem: item.display_name for item in loaded if item.error}
    by_name: dict[str, LoadedSpec] = {}
    for item, pipeline, _ in valid:
        if pipeline in by_name:
            first = by_name[pipeline].display_name
            _fail(item, ("pipeline",), f"pipeline {pipeline!r} is already defined in {first}")
        else:
            by_name[pipeline] = item
    known = set(by_name)
    for item, _, after in valid:
        for i, upstream in enumerate(after):
            if upstream in known:
                continue
            if upstream in invalid:  # by convention pipeline x is in x.yaml
                _fail(item, ("schedule", "after", i), f"pipeline {upstream!r} is not loaded: {invalid[upstream]} is invalid")
            else:
                _fail(item, ("schedule", "after", i), f"no pipeline named {upstream!r} in this folder",
                      did_you_mean(upstream, known))
    graph = {pipeline: [u for u in after if u in known] for item, pipeline, after in valid if by_name[pipeline] is item}
    for cycle in _cycles(graph):
        text = " -> ".join([*cycle, cycle[0]])
        for name in cycle:
            _fail(by_name[name], ("schedule", "after"), f"retraining triggers form a cycle: {text}")


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Each cycle of ``graph`` once (nodes in cycle order), found by depth-first search."""
    found: list[list[str]] = []
    seen_cycles: set[frozenset[str]] = set()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):]
                if frozenset(cycle) not in seen_cycles:
                    seen_cycles.add(frozenset(cycle))
                    found.append(list(cycle))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def _fail(item: LoadedSpec, path: tuple, message: str, suggestion: str | None = None) -> None:
    from ctflow.spec.load import line_of_path

    line = line_of_path(_text_of(item) or "", path)
    earlier = item.error.problems if item.error else []
    item.error = SpecError([*earlier, Problem(item.display_name, line, path, message, suggestion)])
    item.spec = None


class InvalidSpecsError(SpecError):
    """Raised by the DAG folder's error reporter so Airflow lists invalid specs as import errors."""

    def __init__(self, errors: list[SpecError]):
        super().__init__([p for err in errors for p in err.problems])
        files = sorted({p.file for p in self.problems})
        self.args = (
            f"{len(files)} invalid ctflow spec(s), their DAGs are not loaded: {', '.join(files)}\n"
            + "\n".join(str(p) for p in self.problems),
        )


def raise_for_invalid_specs(folder: str | os.PathLike[str], shard: tuple[int, int] | None = None) -> None:
    """Raise :class:`InvalidSpecsError` if any spec of ``folder`` (of ``shard`` only) is invalid.

    :param folder: the specs folder.
    :param shard: ``(index, count)`` (see :func:`in_shard`); None for all specs.
    """
    errors = folder_errors(folder, shard)
    if errors:
        raise InvalidSpecsError(errors)
