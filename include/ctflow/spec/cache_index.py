"""The spec cache's index of one specs folder: each spec's cross-spec facts, asked by pipeline name.

A loader file of one shard needs, for the cross-spec rules (unique names, ``schedule.after``),
only the other specs that hold or name the pipelines its own specs hold or name. Without the
index each spec outside the shard costs reading the file and its words
(:mod:`ctflow.factory.mentions`); with an index read whole (one JSON file until 2026-12-01)
each costs decoding and checking its entry: either way every file's parse grew with the
folder. This index is an SQLite database (the standard library's; WAL, so parses read while
one writes) holding, for each spec file name:

* the file's signature: inode, size, modification and change times in nanoseconds, and when
  the entry was recorded;
* the SHA-256 of its text, the environment variables it interpolates and a digest of what the
  cache key takes from them (:func:`ctflow.spec.cache.environment`);
* its cache key, pipeline name and ``schedule.after`` (a table of its own, indexed by the
  upstream name, as the pipeline name is).

A parse compares the folder's listing (one ``lstat`` per file, which it takes anyway) with the
entries' signatures, a few microseconds per spec, and then asks only which trusted specs hold
or name the names it needs (:meth:`FolderIndex.holding`), and their facts (:meth:`FolderIndex.facts`).

Trust, as for the cache entries: the index lives in the spec cache folder (the user's own, not
writable by others: :func:`ctflow.spec.cache.folder`), is bound to the folder's real path and to
the versions in the cache key, and holds facts, never code. A database that cannot be read or
has another schema (its tables are STRICT: SQLite refuses a value of another type), folder or
versions is a miss as a whole (a corrupt file is removed, the next parse starts a new one); an
entry is used only for a regular file (not a link) with the same signature, whose variables
have the same values, and whose fields read as written (else its file is read). A file changed shortly after its entry was recorded could keep its old times
(timestamps have a coarse clock), so a file whose times are within :data:`RACY_NS` of the
recording is checked against the digest of its text instead (git's "racily clean" rule). A
miss loads the spec as without the index. A spec that a loader builds is always read and
validated from its file and cache entry, never from the index.

Writers: parses save at once (a loader file per shard, in processes of their own). Each saves
only the entries it read, in one transaction (SQLite's locks, a busy timeout), so no save loses
another's entries; two saves of one file's entry leave one of them, and a stale one is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cache as memoize
from pathlib import Path

from ctflow.spec import cache

FORMAT = "2"
#: A file whose times are this close to (or after) its entry's recording is verified by its text.
RACY_NS = 2_000_000_000
#: Seconds a parse waits for another's save before giving up its own (a lost save only costs time).
BUSY_TIMEOUT = 5.0
#: Names per query: a query may take them twice, within the 999 parameters of older SQLite builds.
_CHUNK = 400

Signature = tuple[int, int, int, int]

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT, WITHOUT ROWID",
    ("CREATE TABLE specs (name TEXT PRIMARY KEY, ino INTEGER NOT NULL, size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, recorded_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " env TEXT NOT NULL, env_sha256 TEXT NOT NULL, key TEXT NOT NULL, pipeline TEXT NOT NULL) STRICT, WITHOUT ROWID"),
    "CREATE INDEX specs_by_pipeline ON specs (pipeline)",
    ("CREATE TABLE after (spec TEXT NOT NULL, position INTEGER NOT NULL, upstream TEXT NOT NULL,"
    " PRIMARY KEY (spec, position)) STRICT, WITHOUT ROWID"),
    "CREATE INDEX after_by_upstream ON after (upstream)",
)


@dataclass(frozen=True)
class Facts:
    """What the cross-spec rules and the error reporter need of one valid spec."""

    key: str
    pipeline: str
    after: tuple[str, ...]


@dataclass(frozen=True)
class _Entry:
    signature: Signature
    sha256: str
    env: tuple[str, ...]
    env_sha256: str
    facts: Facts


def signature(status: os.stat_result) -> Signature | None:
    """The signature of a regular file's ``lstat``; None for anything else (links are not indexed)."""
    if not stat.S_ISREG(status.st_mode):
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


class FolderIndex:
    """The index of one specs folder for one parse: which entries hold is decided on opening,
    against the folder's listing; what the parse read is written back by :meth:`save`.

    :param cache_dir: the spec cache folder.
    :param folder: the specs folder.
    :param listing: each spec file name of the folder and its ``lstat`` (None if it failed).
    :param scanned_ns: ``time.time_ns()`` taken before ``listing``.
    """

    def __init__(self, cache_dir: Path, folder: Path, *, listing: Mapping[str, os.stat_result | None],
                 scanned_ns: int):
        real = os.path.realpath(folder)
        self.path = cache_dir / f"index-{hashlib.sha256(os.fsencode(real)).hexdigest()[:32]}.sqlite"
        self._folder = Path(real)
        self._meta = {"format": FORMAT, "folder": real, "versions": cache.versions()}
        self._scanned_ns = scanned_ns
        self._trusted: set[str] = set()
        self._recorded: dict[str, _Entry] = {}
        self._refreshed: dict[str, tuple[Signature, str]] = {}  # racy entries whose text was verified
        self._gone: list[str] = []  # entries of files no longer listed
        self._db: sqlite3.Connection | None = None
        self._valid = False
        try:
            self._db = _connect(self.path)
            self._db.execute("BEGIN")  # one snapshot for every question of this parse
            self._valid = _is_current(self._db, self._meta)
            if self._valid:
                self._check(listing)
        except sqlite3.Error as err:  # busy, read-only or unreadable: a miss
            if _corrupt(err):  # not a database (any more): removed, the next parse starts a new one
                self.close()
                _remove(self.path)
        if not self._valid or not self._db:
            self._valid = False
            self._trusted.clear()
            self._refreshed.clear()
            self._gone.clear()

    def trusts(self, name: str) -> bool:
        """Whether the entry of spec file ``name`` holds (its facts come from :meth:`facts`)."""
        return name in self._trusted

    def holding(self, names: Collection[str]) -> set[str]:
        """The trusted spec files whose pipeline is one of ``names`` or whose ``schedule.after`` names one."""
        found: set[str] = set()
        for part in _chunks(sorted(names)):
            marks = ",".join("?" * len(part))
            found.update(row[0] for row in self._query(
                f"SELECT name FROM specs WHERE pipeline IN ({marks}) UNION SELECT spec FROM after WHERE upstream IN ({marks})",
                [*part, *part]))
        return found & self._trusted

    def facts(self, names: Collection[str]) -> dict[str, Facts]:
        """The facts of the trusted spec files among ``names``; one left out if its entry is malformed."""
        wanted = sorted(set(names) & self._trusted)
        heads: dict[str, tuple[str, str]] = {}
        afters: dict[str, list[str]] = {}
        for part in _chunks(wanted):
            marks = ",".join("?" * len(part))
            # The tables are STRICT (checked on opening): every value has its column's type.
            for name, key, pipeline in self._query(f"SELECT name, key, pipeline FROM specs WHERE name IN ({marks})", part):
                heads[name] = (key, pipeline)
            rows = self._query(f"SELECT spec, position, upstream FROM after WHERE spec IN ({marks}) ORDER BY spec, position",
                               part)
            for spec, position, upstream in rows:
                listed = afters.setdefault(spec, [])
                listed.append(upstream if position == len(listed) else "\0")  # a gap: not as written, not used
        return {name: Facts(key, pipeline, tuple(afters.get(name, ()))) for name, (key, pipeline) in heads.items()
                if "\0" not in afters.get(name, ())}

    def record(self, name: str, status: os.stat_result, text: str, facts: Facts) -> None:
        """Index spec file ``name``, read as ``text`` after its ``lstat`` gave ``status``.

        Taking the signature before reading means a change during the read leaves a stale
        signature, which only causes a miss.
        """
        sig = signature(status)
        if sig is None:
            return
        names = tuple(cache.referenced(text))
        self._recorded[name] = _Entry(sig, _digest(text.encode("utf-8", "surrogatepass")), names,
                                      _digest(cache.environment(list(names))), facts)

    def save(self) -> None:
        """Write what this parse learned, in one transaction; errors (a busy or read-only index) only cost time."""
        if self._db is None:
            return
        try:
            if self._db.in_transaction:
                self._db.execute("COMMIT")  # end the read snapshot
            if self._valid and not (self._recorded or self._refreshed or self._gone):
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._write()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as err:
            self.close()
            if _corrupt(err):
                _remove(self.path)
        finally:
            self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _check(self, listing: Mapping[str, os.stat_result | None]) -> None:
        """Trust the entries whose file is listed with the same signature and whose variables hold."""
        racy_rows: list[tuple[str, Signature]] = []
        by_env: dict[str, list[tuple[str, str]]] = {}
        rows = self._query("SELECT name, ino, size, mtime_ns, ctime_ns, recorded_ns, env,"
                           " CASE env WHEN '' THEN '' ELSE env_sha256 END FROM specs", ())
        for name, ino, size, mtime_ns, ctime_ns, recorded_ns, env, env_sha256 in rows:
            if name not in listing:
                self._gone.append(name)
                continue
            status = listing[name]
            sig = (ino, size, mtime_ns, ctime_ns)
            if status is None or signature(status) != sig:
                continue
            if max(mtime_ns, ctime_ns) >= recorded_ns - RACY_NS:
                racy_rows.append((name, sig))
            elif env:
                by_env.setdefault(env, []).append((name, env_sha256))
            else:
                self._trusted.add(name)
        for env, named in by_env.items():
            values = _digest(cache.environment(env.split(",")))
            self._trusted.update(name for name, recorded in named if recorded == values)
        self._verify_racy(racy_rows)

    def _verify_racy(self, rows: list[tuple[str, Signature]]) -> None:
        """Trust a racily clean entry whose file still has the recorded text (and variables), and
        record it again as of this parse, after which its times tell."""
        for part in _chunks(rows):
            marks = ",".join("?" * len(part))
            sigs = dict(part)
            for name, sha256, env, env_sha256 in self._query(
                    f"SELECT name, sha256, env, env_sha256 FROM specs WHERE name IN ({marks})", [n for n, _ in part]):
                try:
                    same = _digest((self._folder / name).read_bytes()) == sha256
                except OSError:
                    continue
                if same and (not env or _digest(cache.environment(env.split(","))) == env_sha256):
                    self._trusted.add(name)
                    self._refreshed[name] = (sigs[name], sha256)

    def _write(self) -> None:
        db = self._db
        assert db is not None
        if not _is_current(db, self._meta):  # still another version's (or empty) inside the lock: start over
            for kind, name in db.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger')"
                                         " AND name NOT LIKE 'sqlite_%'").fetchall():
                db.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')
            for statement in _SCHEMA:
                db.execute(statement)
            db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(self._meta.items()))
        for part in _chunks(self._gone):
            marks = ",".join("?" * len(part))
            db.execute(f"DELETE FROM specs WHERE name IN ({marks})", part)
            db.execute(f"DELETE FROM after WHERE spec IN ({marks})", part)
        for name, (sig, sha256) in self._refreshed.items():  # only if no other parse replaced the entry since
            db.execute("UPDATE specs SET recorded_ns = ? WHERE name = ? AND ino = ? AND size = ? AND mtime_ns = ?"
                       " AND ctime_ns = ? AND sha256 = ?", (self._scanned_ns, name, *sig, sha256))
        for name, entry in self._recorded.items():
            db.execute("INSERT OR REPLACE INTO specs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (name, *entry.signature, self._scanned_ns, entry.sha256, ",".join(entry.env), entry.env_sha256,
                        entry.facts.key, entry.facts.pipeline))
            db.execute("DELETE FROM after WHERE spec = ?", (name,))
            db.executemany("INSERT INTO after VALUES (?, ?, ?)",
                           [(name, position, upstream) for position, upstream in enumerate(entry.facts.after)])

    def _query(self, sql: str, parameters: Collection[object]) -> list[tuple]:
        assert self._db is not None
        return self._db.execute(sql, tuple(parameters)).fetchall()


def _connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit); raises ``sqlite3.Error``."""
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")  # readers do not wait for a writer, nor it for them
        db.execute("PRAGMA synchronous = NORMAL")  # a cache: a crash may lose the last save, never the file
    except BaseException:
        db.close()
        raise
    return db


def _is_current(db: sqlite3.Connection, meta: dict[str, str]) -> bool:
    """Whether ``db`` has this module's schema and ``meta`` (folder, versions, format)."""
    try:
        return _schema(db) == _expected_schema() and dict(db.execute("SELECT key, value FROM meta").fetchall()) == meta
    except sqlite3.OperationalError:  # no such table: a new (empty) file
        return False


def _corrupt(err: sqlite3.Error) -> bool:
    return getattr(err, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def _remove(path: Path) -> None:
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)


def _schema(db: sqlite3.Connection) -> list[tuple]:
    return db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()


@memoize
def _expected_schema() -> list[tuple]:
    """The schema as SQLite records it, from an empty database built by :data:`_SCHEMA`."""
    with_schema = sqlite3.connect(":memory:")
    try:
        for statement in _SCHEMA:
            with_schema.execute(statement)
        return _schema(with_schema)
    finally:
        with_schema.close()


def _chunks(items: list) -> Iterator[list]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
