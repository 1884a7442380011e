"""Cross-process locks that serialize changes to one registered model.

MLflow's registry has no compare-and-set: creating a version or moving an alias is a blind
write, and concurrent ``create_model_version`` calls can race (mlflow/mlflow#22635). ctflow
therefore makes every change to a registered model (new version, alias move, history entry)
under a lock named after the model, re-reading the registry once it holds the lock.

:class:`RegistryLock` is the seam. :func:`lock_for` picks the implementation from
``$CTFLOW_LOCK_URL``:

* unset or empty (the embedded default: SQLite MLflow store, one host): :class:`FileRegistryLock`
  under ``$CTFLOW_HOME/locks``;
* a ``postgresql://`` URL (the production stack sets one, see ``ctflow.deploy.topology``):
  :class:`PostgresAdvisoryLock`, which every worker on every host sees.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypedDict, Unpack, runtime_checkable

from ctflow.exceptions import CtflowError


class RegistryLockTimeout(CtflowError, TimeoutError):
    """The lock of a registered model could not be taken in time."""

    def __init__(self, model_name: str, path: Path | str | None, timeout: float) -> None:
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

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, timeout: float = 300.0, poll_interval: float = 0.05
    ) -> None:
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


#: Namespaces the advisory-lock keys of registered models (other applications share the database).
ADVISORY_KEY_PREFIX = "ctflow.registry:"


class PostgresAdvisoryLock:
    """
    :class:`RegistryLock` on a PostgreSQL session advisory lock: right for workers on many hosts.

    Each hold opens a dedicated connection (autocommit, never shared with a pool), takes
    ``pg_advisory_lock(key)`` on a 64-bit key hashed from the model name, and releases it and
    closes the connection on exit. PostgreSQL releases a session's advisory locks when the
    session ends, so a killed holder (SIGKILL, a lost container) never leaves the model locked:
    its connection closes with it (for a host that vanishes without closing its TCP connection,
    when the server's TCP keepalive gives up; the client side enables keepalives too).

    Every worker must use the same database (advisory locks are per database): the production
    stack uses the ``ctflow`` database (``CTFLOW_LOCK_URL``).

    :param url: ``postgresql://`` or SQLAlchemy-style ``postgresql+psycopg2://`` URL.
    :param timeout: seconds to wait before :class:`RegistryLockTimeout`.
    :param poll_interval: seconds between ``pg_try_advisory_lock`` attempts while waiting.
    :param connect_timeout: seconds to wait for the connection itself.
    """

    def __init__(
        self, url: str, *, timeout: float = 300.0, poll_interval: float = 0.1, connect_timeout: float = 10.0
    ) -> None:
        if not is_postgres_url(url):
            raise ValueError(f"PostgresAdvisoryLock needs a postgresql:// URL, not {redact_password(url)!r}")
        self.url = url
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout

    @staticmethod
    def key_for(model_name: str) -> int:
        """The signed 64-bit advisory-lock key of ``model_name`` (stable across hosts and versions)."""
        digest = hashlib.sha256((ADVISORY_KEY_PREFIX + model_name).encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def connect(self) -> Any:  # a psycopg2 connection (psycopg2 ships no types)
        """A new psycopg2 connection (autocommit) for one hold."""
        import psycopg2

        conn = psycopg2.connect(
            _libpq_url(self.url),
            connect_timeout=max(1, int(self.connect_timeout)),
            application_name="ctflow-registry-lock",
            keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
        )
        conn.autocommit = True
        return conn

    @contextmanager
    def hold(self, model_name: str) -> Iterator[None]:
        key = self.key_for(model_name)
        deadline = time.monotonic() + self.timeout
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                while True:
                    cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                    if cur.fetchone()[0]:
                        break
                    if time.monotonic() >= deadline:
                        raise RegistryLockTimeout(model_name, f"PostgreSQL advisory lock {key}", self.timeout)
                    time.sleep(self.poll_interval)
            try:
                yield
            finally:
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
                except Exception:  # noqa: BLE001 - closing the session below releases it anyway
                    pass
        finally:
            conn.close()

    def __repr__(self) -> str:
        return f"PostgresAdvisoryLock({redact_password(self.url)!r})"


def is_postgres_url(url: str) -> bool:
    """``postgresql://``, ``postgres://`` or SQLAlchemy's ``postgresql+driver://``."""
    return re.match(r"^postgres(?:ql)?(?:\+[a-z0-9_]+)?://", url or "", re.IGNORECASE) is not None


class LockOptions(TypedDict, total=False):
    """What :func:`lock_for` passes on to either lock (keyword-only in both)."""

    timeout: float
    poll_interval: float


def lock_for(
    url: str | None = None, *, environ: Mapping[str, str] | None = None, **options: Unpack[LockOptions]
) -> RegistryLock:
    """The registry lock of this deployment.

    ``url`` (default ``$CTFLOW_LOCK_URL``): a PostgreSQL URL gives a :class:`PostgresAdvisoryLock`;
    unset or empty gives a :class:`FileRegistryLock` under ``$CTFLOW_HOME/locks`` (one host only).
    Any other value is refused rather than silently replaced by a lock other hosts cannot see.
    ``options`` (``timeout``, ``poll_interval``) go to the lock.
    """
    if url is None:
        url = (os.environ if environ is None else environ).get("CTFLOW_LOCK_URL", "")
    url = url.strip()
    if not url:
        return FileRegistryLock(**options)
    if is_postgres_url(url):
        return PostgresAdvisoryLock(url, **options)
    raise ValueError(
        f"CTFLOW_LOCK_URL={redact_password(url)!r} is not a PostgreSQL URL "
        "(postgresql://user:password@host:port/database); unset it to use the single-host file lock"
    )


def _libpq_url(url: str) -> str:
    """SQLAlchemy's ``postgresql+psycopg2://`` as the ``postgresql://`` libpq understands."""
    return re.sub(r"^postgres(?:ql)?\+[a-z0-9_]+://", "postgresql://", url, flags=re.IGNORECASE)


def redact_password(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***`` (safe to show)."""
    return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)
