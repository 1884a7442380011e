"""The spec cache's index of one specs folder: each spec's cross-spec facts, for all specs, in one read.

A loader file of one shard needs, for the cross-spec rules (unique names, ``schedule.after``),
the names of the other shards' specs. Without the index, each spec outside the shard costs
reading the file and its words (:mod:`ctflow.factory.mentions`), in every loader file: the
folder's parse grows as specs x loader files. The index maps each spec file name to

* the file's signature: inode, size, modification and change times in nanoseconds;
* the SHA-256 of its text, the environment variables it interpolates and a digest of what the
  cache key takes from them (:func:`ctflow.spec.cache.environment`);
* its cache key, pipeline name and ``schedule.after``;

so a spec whose signature and variables are unchanged is not read at all.

Trust, as for the cache entries: the index lives in the spec cache folder (the user's own, not
writable by others: :func:`ctflow.spec.cache.folder`), is bound to the folder's real path and to
the versions in the cache key, and holds facts, never code. Anything malformed makes the whole
index a miss; an entry is used only for a regular file (not a link) with the same signature,
whose variables have the same values. A file changed shortly after the index's scan could keep
its old times (timestamps have a coarse clock), so a file whose times are within
:data:`RACY_NS` of the scan is checked against the digest of its text instead (git's "racily
clean" rule). A miss loads the spec as without the index. A spec that a loader builds is always
read and validated from its file and cache entry, never from the index.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctflow.spec import cache

FORMAT = 1
#: A file whose times are this close to (or after) the index's scan is verified by its text.
RACY_NS = 2_000_000_000

Signature = tuple[int, int, int, int]


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
    """The index of one specs folder: read once per parse, written back when it changed."""

    def __init__(self, cache_dir: Path, folder: Path):
        self.path = cache_dir / f"index-{hashlib.sha256(os.fsencode(os.path.realpath(folder))).hexdigest()[:32]}.json"
        self._folder = os.path.realpath(folder)
        self._scanned_ns = time.time_ns()  # before any file of this parse is looked at
        self._old, old_scan = _read(self.path, self._folder)
        self._racy_before = old_scan - RACY_NS
        self._new: dict[str, _Entry] = {}
        self._changed = False

    def facts(self, path: Path, status: os.stat_result) -> Facts | None:
        """The indexed facts of spec ``path`` (its ``lstat`` is ``status``) if they still hold."""
        entry = self._old.get(path.name)
        if entry is None or signature(status) != entry.signature:
            return None
        if _digest(cache.environment(list(entry.env))) != entry.env_sha256:
            return None
        if max(status.st_mtime_ns, status.st_ctime_ns) >= self._racy_before and not self._same_text(path, entry):
            return None
        self._keep(path.name, entry)
        return entry.facts

    def record(self, path: Path, status: os.stat_result, text: str, facts: Facts) -> None:
        """Index spec ``path``, read as ``text`` after its ``lstat`` gave ``status``.

        Taking the signature before reading means a change during the read leaves a stale
        signature, which only causes a miss.
        """
        sig = signature(status)
        if sig is None:
            return
        names = tuple(cache.referenced(text))
        entry = _Entry(sig, _digest(text.encode("utf-8", "surrogatepass")), names,
                       _digest(cache.environment(list(names))), facts)
        self._keep(path.name, entry)

    def save(self) -> None:
        """Write the index if any entry changed, appeared or went (atomically; errors only cost time)."""
        if not self._changed and self._new.keys() == self._old.keys():
            return
        data = {
            "format": FORMAT, "folder": self._folder, "versions": cache.versions(), "scanned_ns": self._scanned_ns,
            "specs": {name: _dump(entry) for name, entry in sorted(self._new.items())},
        }
        cache.write_atomically(self.path, json.dumps(data, separators=(",", ":")).encode())

    def _keep(self, name: str, entry: _Entry) -> None:
        self._new[name] = entry
        old = self._old.get(name)
        # An entry still racy for this scan is written again, so that it is trusted by signature later.
        self._changed |= old != entry or max(entry.signature[2:]) >= self._racy_before

    @staticmethod
    def _same_text(path: Path, entry: _Entry) -> bool:
        try:
            return _digest(path.read_bytes()) == entry.sha256
        except OSError:
            return False


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dump(entry: _Entry) -> dict[str, Any]:
    return {"sig": list(entry.signature), "sha256": entry.sha256, "env": list(entry.env),
            "env_sha256": entry.env_sha256, "key": entry.facts.key, "pipeline": entry.facts.pipeline,
            "after": list(entry.facts.after)}


def _read(path: Path, folder: str) -> tuple[dict[str, _Entry], int]:
    """The entries and scan time of the index at ``path``; none if it is missing, corrupt or another's."""
    try:
        data = json.loads(path.read_bytes())
        if not (isinstance(data, dict) and data.get("format") == FORMAT and data.get("folder") == folder
                and data.get("versions") == cache.versions() and _is_int(data.get("scanned_ns"))
                and isinstance(data.get("specs"), dict)):
            return {}, 0
        return {name: _load(raw) for name, raw in data["specs"].items()}, data["scanned_ns"]
    except (OSError, ValueError, TypeError, KeyError):
        return {}, 0


def _load(raw: Any) -> _Entry:
    """One entry, every field type-checked; ``ValueError`` if any is not as written."""
    sig, env, after = raw["sig"], raw["env"], raw["after"]
    texts = (raw["sha256"], raw["env_sha256"], raw["key"], raw["pipeline"])
    if not (isinstance(sig, list) and len(sig) == 4 and all(map(_is_int, sig)) and all(isinstance(t, str) for t in texts)
            and _strings(env) and _strings(after)):
        raise ValueError("malformed index entry")
    return _Entry((sig[0], sig[1], sig[2], sig[3]), raw["sha256"], tuple(env), raw["env_sha256"],
                  Facts(raw["key"], raw["pipeline"], tuple(after)))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
