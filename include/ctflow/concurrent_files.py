"""Files that several processes share (a dag-processor's parses, Celery workers, two bootstraps):
replaced in one step, or worked on in turn. Standard library only: the parse path imports it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def replace_atomically(path: Path, data: bytes, *, mode: int | None = None, durable: bool = False) -> None:
    """Write ``data`` to ``path`` beside it and move it over ``path`` (``os.replace``, atomic within a
    folder): a reader sees the old file or the new one, never part of one. Raises ``OSError``; no
    temporary file is left behind.

    :param mode: the new file's permission bits; None keeps ``mkstemp``'s private 0600.
    :param durable: ``fsync`` before the move (a crash cannot leave an empty file in its place).
    """
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing): processes take turns; the
    kernel releases it if the holder dies."""
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
