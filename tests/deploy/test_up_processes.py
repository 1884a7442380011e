"""deploy/up.py's `down` on synthetic components (no Airflow): a process that left its
component's process group, as Airflow's task runners do (``setpgid``), and outlived the
component, as LocalExecutor workers outlive a SIGKILLed scheduler, is still stopped."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys

from tests.conftest import PROJECT

spec = importlib.util.spec_from_file_location("ctflow_up", PROJECT / "deploy" / "up.py")
up = importlib.util.module_from_spec(spec)
spec.loader.exec_module(up)

#: A component that forks a "task runner" into a process group of its own; both ignore SIGTERM.
COMPONENT = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    print(os.getpid(), flush=True)
    while True:
        time.sleep(1)
while True:
    time.sleep(1)
"""


def alive(pid: int) -> bool:
    stat = up._stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def test_down_stops_an_orphan_in_its_own_process_group(tmp_path):
    up_dir = tmp_path / "up"
    up_dir.mkdir()
    leader = subprocess.Popen([sys.executable, "-c", COMPONENT], start_new_session=True, stdout=subprocess.PIPE,
                              text=True)
    runner = int(leader.stdout.readline())
    try:
        up.record(up_dir, "scheduler", leader.pid)
        leader.kill()
        leader.wait(timeout=30)
        assert alive(runner) and os.getpgid(runner) == runner != leader.pid  # killpg(leader) misses it
        assert up.processes(up_dir) == {runner: up.processes(up_dir)[runner]}

        up.stop({"up_dir": up_dir, "down_timeout": 2})  # SIGTERM is ignored: SIGKILL after 2 s
        assert not alive(runner) and up.processes(up_dir) == {} and not list(up_dir.glob("*.pid"))
    finally:
        if alive(runner):
            os.kill(runner, signal.SIGKILL)


def test_a_recycled_pid_is_not_ours(tmp_path):
    """A pid file whose pid now belongs to a process started at another time names a stranger."""
    up_dir = tmp_path / "up"
    up_dir.mkdir()
    (up_dir / "scheduler.pid").write_text(f"{os.getpid()} 1\n")  # this test process, "started" at tick 1
    assert up.recorded_sessions(up_dir) == {}
