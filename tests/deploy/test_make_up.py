"""`make up` / `make down` with real processes: a busy port is refused before anything starts;
a real `make up` waits for every component, and its scheduler runs the configured executor
(ctflow's PreloadingLocalExecutor: its workers are forked with the ML stack loaded); after its scheduler is SIGKILLed (its LocalExecutor
workers left as orphans), `make down` leaves no process of that up behind.

Each test has its own CTFLOW_HOME and free ports, so it never touches a `make up` of the project.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import PROJECT
from tests.harness import free_port

pytestmark = [pytest.mark.integration, pytest.mark.scheduler]

MAKEFILE = PROJECT / "Makefile"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "mlflow")


def make_env(home: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    """A user's environment: none of the test session's Airflow/MLflow/ctflow settings, a
    CTFLOW_HOME of its own and the given ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "CTFLOW"))}
    env.update(CTFLOW_HOME=str(home), **{name: str(port) for name, port in ports.items()}, **extra)
    return env


def make(target: str, home: Path, ports: dict[str, int], *, makefile: Path = MAKEFILE,
         timeout: float = 900) -> subprocess.CompletedProcess:
    """``make <target>`` as a user would run it (:func:`make_env`)."""
    env = make_env(home, ports)
    return subprocess.run(["make", "-s", "-C", str(PROJECT), "-f", str(makefile), target], env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def two_free_ports() -> dict[str, int]:
    api = free_port()
    mlflow = free_port()
    while mlflow == api:
        mlflow = free_port()
    return {"AIRFLOW_PORT": api, "MLFLOW_PORT": mlflow}


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, session) of a live process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (fields[0], int(fields[2]), int(fields[3])) if fields[0] not in ("Z", "X") else None


def sessions(home: Path) -> set[int]:
    """The sessions `make up` recorded: each component leads one (``up/<name>.pid``)."""
    found = set()
    for pidfile in (home / "up").glob("*.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # gone, or being written
            found.add(int(pidfile.read_text().split()[0]))
    return found


def of_this_up(home: Path, sids: set[int] = frozenset()) -> dict[int, str]:
    """Live processes started by the up of ``home`` (in one of its sessions ``sids``, or with
    CTFLOW_UP_DIR in their environment), read from /proc independently of deploy/up.py."""
    mark = f"CTFLOW_UP_DIR={home / 'up'}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        stat = _stat(int(entry.name))
        if stat is None:
            continue
        with contextlib.suppress(OSError):
            if stat[2] in sids or mark in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:100]
    return found


def _cleanup(home: Path, ports: dict[str, int]) -> None:
    """Whatever a failed test left: `make down`, then SIGKILL what is still there."""
    sids = sessions(home)
    with contextlib.suppress(Exception):
        make("down", home, ports, timeout=120)
    for pid in of_this_up(home, sids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def maps_package(pid: int, package: str) -> bool:
    """Whether a live process has a file of installed ``package`` mapped (a compiled extension it imported)."""
    try:
        return f"/site-packages/{package}/" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise TimeoutError(f"{what} within {timeout} s")


@pytest.mark.parametrize("busy", ["AIRFLOW_PORT", "MLFLOW_PORT"])
def test_up_refuses_a_busy_port_and_starts_nothing(tmp_path, busy):
    ports = two_free_ports()
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", ports[busy]))
            taken.listen()
            result = make("up", tmp_path, ports, timeout=300)
        out = result.stdout + result.stderr
        assert result.returncode != 0, out
        assert f"port {ports[busy]}" in result.stderr and busy in result.stderr, out
        assert "Nothing was started" in result.stderr and "http://127.0.0.1" not in result.stdout, out
        assert not (tmp_path / "airflow" / "airflow.db").exists() and not list((tmp_path / "up").glob("*.pid"))
        assert of_this_up(tmp_path) == {}
    finally:
        _cleanup(tmp_path, ports)


def test_up_waits_for_each_component_and_down_stops_orphans_of_a_killed_scheduler(tmp_path):
    ports = two_free_ports()
    up_dir = tmp_path / "up"
    try:
        started = make("up", tmp_path, ports)
        out = started.stdout + started.stderr
        assert started.returncode == 0, out
        for name in COMPONENTS:
            assert f"{name} ready" in started.stdout, out
        assert f"http://127.0.0.1:{ports['AIRFLOW_PORT']}/plugin/ctflow" in started.stdout
        # answered by this up's processes, and each part healthy
        health = requests.get(f"http://127.0.0.1:{ports['AIRFLOW_PORT']}/api/v2/monitor/health", timeout=30).json()
        assert {health[k]["status"] for k in ("scheduler", "dag_processor", "triggerer")} == {"healthy"}, health
        assert requests.get(f"http://127.0.0.1:{ports['MLFLOW_PORT']}/health", timeout=30).text.strip() == "OK"
        sids = sessions(tmp_path)
        assert len(sids) == len(COMPONENTS) and all((_stat(sid) or (0, 0, 0))[2] == sid for sid in sids), sids

        # SIGKILL the scheduler: its LocalExecutor workers (forked at start) become orphans
        scheduler = int((up_dir / "scheduler.pid").read_text().split()[0])
        workers = wait_until(lambda: {p for p in of_this_up(tmp_path, {scheduler}) if p != scheduler},
                             120, "the scheduler forked no LocalExecutor worker")
        os.kill(scheduler, signal.SIGKILL)
        wait_until(lambda: _stat(scheduler) is None, 60, "the SIGKILLed scheduler did not go")
        # the configured executor is the one running: it imported the ML stack before forking
        # its workers (a stock LocalExecutor's workers have neither package loaded)
        assert any(maps_package(pid, "sklearn") and maps_package(pid, "pandas") for pid in workers), (
            f"no LocalExecutor worker of {scheduler} has scikit-learn and pandas loaded:\n"
            + (up_dir / "scheduler.log").read_text(errors="replace")[-3000:])
        assert "ctflow preloaded" in (up_dir / "scheduler.log").read_text(errors="replace")
        orphans = {pid for pid in workers if _stat(pid)}
        assert orphans, "no worker outlived the scheduler: nothing left to test"

        stopped = make("down", tmp_path, ports, timeout=300)
        print(f"{len(orphans)} orphans of the SIGKILLed scheduler; make down said:\n{stopped.stdout}")  # -rP
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        left = of_this_up(tmp_path, sids)
        assert left == {}, f"left after make down: {left}\n{stopped.stdout}{stopped.stderr}"
        assert not list(up_dir.glob("*.pid"))
        again = make("down", tmp_path, ports, timeout=120)
        assert again.returncode == 0 and "nothing" in again.stdout, again.stdout + again.stderr
    finally:
        _cleanup(tmp_path, ports)


def test_up_names_a_component_that_dies_and_stops_the_others(tmp_path):
    """MLflow cannot open its store (an unsupported URI): `make up` says so, exits 1 and leaves
    nothing running; the sessions are read from up/*.pid while `make up` runs."""
    ports = two_free_ports()
    env = make_env(tmp_path, ports, MLFLOW_TRACKING_URI="unsupported://nowhere")
    sids: set[int] = set()
    try:
        with subprocess.Popen(["make", "-s", "-C", str(PROJECT), "up"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL) as running:
            deadline = time.monotonic() + 900
            while running.poll() is None and time.monotonic() < deadline:
                sids |= sessions(tmp_path)
                time.sleep(0.2)
            out, err = running.communicate(timeout=60)
        assert running.returncode != 0, out + err  # make: 2, deploy/up.py: 1
        assert "mlflow exited with code" in err and "unsupported://nowhere" in err, out + err
        assert "http://127.0.0.1" not in out.split("==> waiting")[-1], out  # no URLs
        assert len(sids) == len(COMPONENTS), f"saw the sessions {sids} only"
        assert of_this_up(tmp_path, sids) == {} and not list((tmp_path / "up").glob("*.pid"))
    finally:
        for pid in of_this_up(tmp_path, sids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
