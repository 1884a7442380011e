"""A cache of validated specs, so that parsing thousands of unchanged specs costs little.

Every DAG file parse validates every spec of the folder (the cross-spec rules need them all);
at 5,000 specs that alone takes longer than Airflow lets a DAG file parse. An entry is keyed
by what the outcome depends on: the spec's bytes, ctflow's version and the values of the
environment variables the spec interpolates (``${NAME}``); a changed file, variable or
ctflow release misses and is validated again. Only valid specs are stored, and only what
validation derives (the model as JSON); nothing is executed on load, and a hit is validated
again by the pydantic models and :func:`~ctflow.spec.checks.check_spec` (so a tampered
entry can at worst hold another valid spec, never an invalid one; YAML parsing and line
tracking are what the cache saves). The folder must be the user's own and not writable by
others, or the cache is off. ``$CTFLOW_SPEC_CACHE`` names the folder (default
``$CTFLOW_HOME/cache/specs``); ``off`` disables it.

A second kind of entry, ``<key>-<airflow version>.built``, records that a spec's DAGs were
built; the error reporter then need not build them again (see
:func:`ctflow.factory.discover.folder_errors`).

A third, ``index-<folder hash>.sqlite``, holds every spec's cross-spec facts for one specs folder,
asked by pipeline name (:mod:`ctflow.spec.cache_index`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from ctflow import settings
from ctflow.concurrent_files import replace_atomically
from ctflow.spec.models import PipelineSpec

CACHE_ENV = "CTFLOW_SPEC_CACHE"
_REFERENCED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@cache
def versions() -> str:
    """The versions a cached outcome depends on."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("ctflow", "pydantic", "apache-airflow-task-sdk"):
        try:
            found.append(f"{package}={version(package)}")
        except PackageNotFoundError:
            found.append(f"{package}=?")
    return ";".join(found)


def folder() -> Path | None:
    """The cache folder, or None when it is off or not safe to use."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() == "off":
        return None
    try:  # a read-only home turns the cache off, it never fails a parse
        path = Path(value) if value else settings.home() / "cache" / "specs"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:  # others could plant entries
        return None
    return path


def key(text: str) -> str:
    """What a spec's validation outcome depends on, hashed."""
    digest = hashlib.sha256(versions().encode())
    digest.update(b"\0" + text.encode("utf-8", "surrogatepass"))
    digest.update(environment(referenced(text)))
    return digest.hexdigest()


def referenced(text: str) -> list[str]:
    """The environment variables spec ``text`` interpolates (``${NAME}``), sorted."""
    return sorted(set(_REFERENCED.findall(text)))


def environment(names: list[str]) -> bytes:
    """What a spec's outcome takes from the environment: the values of ``names`` it may read."""
    parts = []
    for name in names:
        if settings.spec_env_refusal(name):
            continue  # never read (the spec is invalid anyway, so never stored)
        value = os.environ.get(name)
        parts.append(f"\0{name}={'' if value is None else 'set:' + value}")
    return "".join(parts).encode("utf-8", "surrogatepass")


def get(cache_dir: Path, entry_key: str) -> dict[str, Any] | None:
    """The stored entry: ``pipeline`` and ``after`` (the cross-spec facts), and ``spec`` (its
    JSON text, decoded by :func:`spec_of` only when the spec itself is needed)."""
    try:
        head, _, spec = (cache_dir / f"{entry_key}.json").read_bytes().partition(b"\n")
        data = json.loads(head)
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("pipeline"), str) and isinstance(data.get("after"), list)):
        return None
    return {**data, "spec": spec}


def spec_of(entry: dict[str, Any]) -> PipelineSpec | None:
    """The entry's spec, validated again; None if it does not pass (then the file is re-read)."""
    from ctflow.spec.checks import check_spec

    try:
        spec = PipelineSpec.model_validate_json(entry["spec"])
    except Exception:  # noqa: BLE001 - a bad entry is a miss
        return None
    if check_spec(spec) or spec.pipeline != entry["pipeline"] or list(spec.schedule.after) != entry["after"]:
        return None
    return spec


def put(cache_dir: Path, entry_key: str, spec: PipelineSpec) -> None:
    head = json.dumps({"pipeline": spec.pipeline, "after": list(spec.schedule.after)}).encode()
    write_atomically(cache_dir / f"{entry_key}.json", head + b"\n" + spec.model_dump_json().encode())


def built_marker(cache_dir: Path, entry_key: str) -> Path:
    return cache_dir / f"{entry_key}-{_airflow_version()}.built"


@cache
def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow-core")


def record_build(cache_dir: Path, entry_key: str, ok: bool) -> None:
    marker = built_marker(cache_dir, entry_key)
    try:
        if ok:
            if not marker.exists():
                write_atomically(marker, b"")
        else:
            marker.unlink(missing_ok=True)
    except OSError:
        pass  # a cache that cannot be written only costs time


def write_atomically(path: Path, data: bytes) -> None:
    """Write atomically: a concurrent parse sees the old entry or the new one, never half of one."""
    with contextlib.suppress(OSError):  # a cache: a failed write only costs time
        replace_atomically(path, data)
