"""The registry lock of the production stack: a PostgreSQL advisory lock, against the real server.

Holders are separate processes (as workers on different hosts would be): one holds, others
wait or time out; a SIGKILLed holder's lock is released by PostgreSQL when its session dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ctflow.core.registry_lock import (
    FileRegistryLock,
    PostgresAdvisoryLock,
    RegistryLock,
    RegistryLockTimeout,
    lock_for,
)

PROJECT = Path(__file__).resolve().parents[2]

# A holder in its own process: takes the lock, says so, holds it for argv[3] seconds (or until killed).
HOLDER = """
import sys, time
from ctflow.core.registry_lock import PostgresAdvisoryLock
with PostgresAdvisoryLock(sys.argv[1]).hold(sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
print("released", flush=True)
"""

# A worker in its own process: N read-modify-write increments of a shared file, each under the lock.
INCREMENTER = """
import sys, time
from pathlib import Path
from ctflow.core.registry_lock import PostgresAdvisoryLock
lock, counter = PostgresAdvisoryLock(sys.argv[1], poll_interval=0.01), Path(sys.argv[2])
for _ in range(int(sys.argv[3])):
    with lock.hold("race-model"):
        value = int(counter.read_text())
        time.sleep(0.005)  # widen the window a lost update would need
        counter.write_text(str(value + 1))
"""


@pytest.fixture(scope="module")
def lock_url():
    from tests.postgres import POSTGRES_ADMIN_URL, throwaway_databases
    from tests.production.native import require

    require("postgres")
    with throwaway_databases("lock") as names:
        admin = urlparse(POSTGRES_ADMIN_URL)
        # The production form: SQLAlchemy's driver-qualified URL, as topology.production_env writes it.
        yield admin._replace(scheme="postgresql+psycopg2", path=f"/{names['lock']}").geturl()


def _start_holder(url: str, model: str, seconds: float = 60) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, url, model, str(seconds)], stdout=subprocess.PIPE,
                               text=True, cwd=PROJECT)
    line = process.stdout.readline().strip()
    assert line == "held", f"the holder did not take the lock: {line!r}"
    return process


# --- choosing the lock -------------------------------------------------------------------------


def test_lock_for_follows_ctflow_lock_url(tmp_path, monkeypatch):
    monkeypatch.setenv("CTFLOW_HOME", str(tmp_path))
    assert isinstance(lock_for(environ={}), FileRegistryLock)
    assert isinstance(lock_for(environ={"CTFLOW_LOCK_URL": "  "}), FileRegistryLock)
    for url in ("postgresql://u:p@db:5432/ctflow", "postgresql+psycopg2://u@db/ctflow", "postgres://db/x"):
        lock = lock_for(environ={"CTFLOW_LOCK_URL": url}, timeout=5)
        assert isinstance(lock, PostgresAdvisoryLock) and isinstance(lock, RegistryLock) and lock.timeout == 5
    assert "p@" not in repr(lock_for(environ={"CTFLOW_LOCK_URL": "postgresql://u:secret@db/x"}))
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        lock_for(environ={"CTFLOW_LOCK_URL": "redis://cache:6379/0"})


@pytest.mark.integration
def test_model_registry_default_lock_comes_from_the_environment(tmp_path, monkeypatch):
    from ctflow.core.registry import ModelRegistry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("CTFLOW_LOCK_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/ctflow")
    assert isinstance(ModelRegistry("m", tracking_uri=uri).lock, PostgresAdvisoryLock)
    monkeypatch.delenv("CTFLOW_LOCK_URL")
    assert isinstance(ModelRegistry("m", tracking_uri=uri).lock, FileRegistryLock)


def test_production_env_sets_a_postgres_lock_url():
    from ctflow.deploy import topology

    env = topology.production_env(postgres_password="pw", fernet_key="f", jwt_secret="j", api_secret_key="a")
    assert env["CTFLOW_LOCK_URL"] == "postgresql+psycopg2://ctflow:pw@postgres:5432/ctflow"
    assert isinstance(lock_for(environ=env), PostgresAdvisoryLock)


def test_keys_are_stable_and_per_model():
    key = PostgresAdvisoryLock.key_for("flight_delay")
    assert key == PostgresAdvisoryLock.key_for("flight_delay") and -(2**63) <= key < 2**63
    assert len({PostgresAdvisoryLock.key_for(name) for name in ("a", "b", "a/b", "a_b", "A")}) == 5


# --- against PostgreSQL --------------------------------------------------------------------------


@pytest.mark.postgres
def test_another_process_waits_then_times_out_and_other_models_are_free(lock_url):
    holder = _start_holder(lock_url, "flight_delay")
    try:
        lock = PostgresAdvisoryLock(lock_url, timeout=0.5, poll_interval=0.05)
        started = time.monotonic()
        with pytest.raises(RegistryLockTimeout, match="could not lock registered model 'flight_delay'"), \
                lock.hold("flight_delay"):
            pass
        assert 0.5 <= time.monotonic() - started < 5
        with lock.hold("another_model"):  # locks are per model
            pass
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.postgres
def test_killed_holder_releases_the_lock(lock_url):
    holder = _start_holder(lock_url, "flight_delay")
    lock = PostgresAdvisoryLock(lock_url, timeout=0.3, poll_interval=0.05)
    with pytest.raises(RegistryLockTimeout), lock.hold("flight_delay"):
        pass
    os.kill(holder.pid, signal.SIGKILL)  # no unlock, no goodbye: the server notices the session is gone
    holder.wait()
    started = time.monotonic()
    with PostgresAdvisoryLock(lock_url, timeout=15, poll_interval=0.05).hold("flight_delay"):
        waited = time.monotonic() - started
    assert waited < 15


@pytest.mark.postgres
def test_released_on_exit_and_on_error(lock_url):
    lock = PostgresAdvisoryLock(lock_url, timeout=2)
    with lock.hold("m"):
        pass
    with pytest.raises(RuntimeError), lock.hold("m"):
        raise RuntimeError("boom")
    # Another process gets it at once: nothing was left held by this one.
    holder = _start_holder(lock_url, "m", seconds=0)
    assert holder.stdout.readline().strip() == "released"
    assert holder.wait(timeout=30) == 0


@pytest.mark.postgres
def test_concurrent_processes_are_serialized(lock_url, tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0")
    processes, rounds = 4, 15
    started = [subprocess.Popen([sys.executable, "-c", INCREMENTER, lock_url, str(counter), str(rounds)], cwd=PROJECT)
               for _ in range(processes)]
    assert [p.wait(timeout=120) for p in started] == [0] * processes
    assert int(counter.read_text()) == processes * rounds  # no lost update
