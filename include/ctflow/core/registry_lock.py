"""Cross-process locks that serialize changes to one registered model.

MLflow's registry has no compare-and-set: creating a version or moving an alias is a blind
write, and concurrent ``create_model_version`` calls can race (mlflow/mlflow#22635). ctflow
therefore makes every change to a registered model (new version, alias move, history entry)
under a lock named after the model, re-reading the registry once it holds the lock.

:class:`RegistryLock` is the seam: the embedded default (SQLite MLflow store, one host) uses
:class:`FileRegistryLock`; a deployment whose workers run on several hosts needs a lock all of
them see, such as a PostgreSQL advisory lock on the MLflow database, which only has to
implement :meth:`RegistryLock.hold`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

from ctflow.exceptions import CtflowError


class RegistryLockTimeout(CtflowError, TimeoutError):
    """The lock of a registered model could not be taken in time."""

    def __init__(self, model_name: str, path: Path | None, timeout: float) -> None:
        self.model_name, self.path, self.timeout = model_name, path, timeout
        where = f" ({path})" if path else ""
        super().__init__(
            f"could not lock registered model {model_name!r}{where} within {timeout:g}s: another task is "
            "changing it and has not finished. Retry later; if no ctflow task is running, a stuck "
            "process still holds the lock and must be stopped."
        )


@runtime_checkable
class RegistryLock(Protocol):
    """Mutual exclusion per registered model, across processes (and hosts, if the lock allows)."""

    def hold(self, model_name: str) -> AbstractContextManager[None]:
        """Block until this process is the only holder for ``model_name``; release on exit.

        Need not be re-entrant: ctflow never nests holds of one model.
        """
        ...


class FileRegistryLock:
    """
    :class:`RegistryLock` on ``fcntl.flock`` of one file per model: right for one host.

    The kernel releases a ``flock`` when its holder dies, so a killed task never leaves the
    model locked. It does not work across hosts, nor reliably on NFS: use a database lock there.

    :param directory: where the lock files live; default ``$CTFLOW_HOME/locks``.
    :param timeout: seconds to wait for the lock before :class:`RegistryLockTimeout`, so a
        stuck holder fails the task visibly instead of hanging it until Airflow kills it.
    :param poll_interval: seconds between attempts while waiting.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, timeout: float = 300.0, poll_interval: float = 0.05) -> None:
        if directory is None:
            from ctflow import settings

            directory = settings.home() / "locks"
        self.directory = Path(directory)
        self.timeout = timeout
        self.poll_interval = poll_interval

    def path_for(self, model_name: str) -> Path:
        """The lock file of ``model_name``: readable, and unique even if names differ only in symbols."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name)[:80]
        digest = hashlib.sha256(model_name.encode()).hexdigest()[:12]
        return self.directory / f"{slug}-{digest}.lock"

    @contextmanager
    def hold(self, model_name: str) -> Iterator[None]:
        path = self.path_for(model_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A fresh descriptor per hold: flock conflicts between descriptors even within one
        # process, so threads are serialized too.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise RegistryLockTimeout(model_name, path, self.timeout) from None
                    time.sleep(self.poll_interval)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            # The file is never deleted: unlinking it while another process waits on it
            # would let two processes lock two different files of the same name.
            os.close(fd)
