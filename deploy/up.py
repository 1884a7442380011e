"""`make up` / `make down`: a local Airflow (api-server, scheduler, dag-processor, triggerer;
ctflow's PreloadingLocalExecutor on SQLite) with the ctflow view, and an MLflow UI, on the state
in $CTFLOW_HOME.

    python deploy/up.py up      # refuse busy ports, start everything, wait until each part is ready
    python deploy/up.py down    # stop everything this up started, orphans included

* Before starting anything, ``up`` refuses a busy port (``AIRFLOW_PORT``, default 8080, and
  ``MLFLOW_PORT``, default 5000) and a previous ``up`` of the same directory that still runs.
* It then waits for every component: the api-server's ``/api/v2/monitor/health``, a scheduler,
  dag-processor and triggerer heartbeat newer than this start, and MLflow's ``/health``. If one
  exits or is not ready in time (``UP_TIMEOUT``, default 600 s), it says which one, shows the end
  of its log, stops the others and exits 1.
* Every component is started as the leader of a new session (``setsid``), recorded in
  ``$CTFLOW_HOME/up/<name>.pid`` with its start time. Every process it forks stays in that
  session, including task runners that Airflow moves to process groups of their own and
  LocalExecutor workers left behind by a killed scheduler; the session id survives both, where
  a process group or the environment would not (Airflow's ``setproctitle`` overwrites what
  ``/proc/<pid>/environ`` shows). ``down`` sends SIGTERM to every process of the recorded
  sessions (and to any process whose environment still shows ``CTFLOW_UP_DIR``), waits
  (``DOWN_TIMEOUT``, default 30 s), SIGKILLs what is left, and checks that nothing remains.

Standard library only; run with the project's virtualenv Python (the Makefile does).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
MARK = "CTFLOW_UP_DIR"
EXECUTOR = "ctflow.executors.PreloadingLocalExecutor"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "mlflow")
#: the health endpoint's entry and heartbeat field for each Airflow component with a job
HEARTBEATS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


class UpError(Exception):
    """What ``up`` or ``down`` refuses or failed at, said in one message."""


# -- configuration --------------------------------------------------------------------------


def settings() -> dict:
    project = Path(os.environ.get("CTFLOW_PROJECT") or Path(__file__).resolve().parents[1])
    home = Path(os.environ.get("CTFLOW_HOME") or project / ".ctflow").resolve()
    ports = {}
    for name, default in (("AIRFLOW_PORT", 8080), ("MLFLOW_PORT", 5000)):
        value = os.environ.get(name) or str(default)
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise UpError(f"{name}={value!r} is not a port number")
        ports[name] = int(value)
    if ports["AIRFLOW_PORT"] == ports["MLFLOW_PORT"]:
        raise UpError(f"AIRFLOW_PORT and MLFLOW_PORT are both {ports['AIRFLOW_PORT']}: give them different ports")
    return {"project": project, "home": home, "up_dir": home / "up", **ports,
            "timeout": float(os.environ.get("UP_TIMEOUT") or 600),
            "down_timeout": float(os.environ.get("DOWN_TIMEOUT") or 30)}


def component_env(cfg: dict) -> dict[str, str]:
    home, project, api, mlflow_port = cfg["home"], cfg["project"], cfg["AIRFLOW_PORT"], cfg["MLFLOW_PORT"]
    airflow_home = Path(os.environ.get("AIRFLOW_HOME") or home / "airflow")
    return {
        **os.environ,
        "CTFLOW_HOME": str(home),
        "CTFLOW_PROJECT": str(project),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # A LocalExecutor that imports the ML stack once, before forking its workers, so that a
        # task does not import it again (benchmarks/scheduler_run.md).
        "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        or f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__API__PORT": str(api),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api}/execution/",
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        "CTFLOW_MLFLOW_UI_URL": os.environ.get("CTFLOW_MLFLOW_UI_URL") or f"http://127.0.0.1:{mlflow_port}",
        "GIT_PYTHON_REFRESH": "quiet",
        MARK: str(cfg["up_dir"]),
    }


def commands(cfg: dict, env: dict[str, str]) -> dict[str, list[str]]:
    airflow = str(BIN / "airflow")
    return {
        "api-server": [airflow, "api-server", "--port", str(cfg["AIRFLOW_PORT"]), "--host", "127.0.0.1"],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer"],
        "mlflow": [str(BIN / "mlflow"), "server", "--backend-store-uri", env["MLFLOW_TRACKING_URI"],
                   "--default-artifact-root", str(cfg["home"] / "mlartifacts"), "--host", "127.0.0.1",
                   "--port", str(cfg["MLFLOW_PORT"])],
    }


# -- processes ------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int, int, int] | None:
    """(state, ppid, process group, session, start time in clock ticks) of a process; None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        stat = _stat(pid)
        pid = stat[1] if stat else 0
    return pids


def processes(up_dir: Path, sessions: dict[int, int] | None = None) -> dict[int, str]:
    """Live processes of this up (pid -> command line): members of its recorded ``sessions``
    (session id -> its leader's start time), or marked ``CTFLOW_UP_DIR=up_dir``."""
    sessions = recorded_sessions(up_dir) if sessions is None else sessions
    mark = f"{MARK}={up_dir}".encode()
    found, mine = {}, _ancestors()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        try:
            marked = mark in (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # another user's process, or gone
            marked = False
        ours = stat[3] in sessions and stat[4] >= sessions[stat[3]]
        if ours or marked:
            with contextlib.suppress(OSError):
                found[pid] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def record(up_dir: Path, name: str, pid: int) -> None:
    stat = _stat(pid)
    (up_dir / f"{name}.pid").write_text(f"{pid} {stat[4] if stat else 0}\n")


def recorded_sessions(up_dir: Path) -> dict[int, int]:
    """The sessions in ``*.pid`` (session id -> its leader's start time). A session whose id is
    now a live process started at another time is a stranger's (a recycled pid): left out."""
    sessions = {}
    for pidfile in up_dir.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid, start = (int(field) for field in pidfile.read_text().split()[:2])
            leader = _stat(pid)
            if leader is None or leader[4] == start:
                sessions[pid] = start
    return sessions


def _signal_all(pids, sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(up_dir: Path, sessions: dict[int, int], timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while (left := processes(up_dir, sessions)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def stop(cfg: dict, quiet: bool = False) -> None:
    up_dir = cfg["up_dir"]
    sessions = recorded_sessions(up_dir)
    running = processes(up_dir, sessions)
    if not running:
        if not quiet:
            print(f"nothing of {up_dir} is running")
        for pidfile in up_dir.glob("*.pid"):
            pidfile.unlink()
        return
    if not quiet:
        print(f"stopping {len(running)} processes of {up_dir} (sessions {sorted(sessions)})")
    _signal_all(running, signal.SIGTERM)
    left = _wait_gone(up_dir, sessions, cfg["down_timeout"])
    if left:
        print(f"killing {len(left)} processes that did not stop within {cfg['down_timeout']:.0f} s: "
              + ", ".join(f"{pid} ({cmd[:60]})" for pid, cmd in sorted(left.items())[:10]))
        _signal_all(left, signal.SIGKILL)
        left = _wait_gone(up_dir, sessions, 15)
    if left:
        raise UpError("still running after SIGKILL: " + ", ".join(f"{pid} ({cmd[:60]})" for pid, cmd in left.items()))
    for pidfile in up_dir.glob("*.pid"):
        pidfile.unlink()
    if not quiet:
        print("stopped")


# -- ports ----------------------------------------------------------------------------------


def port_busy(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could not bind ``host:port`` (as uvicorn does, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def listener(port: int) -> str:
    """`` (pid N: command)`` of the process listening on ``port``, when this user may see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                return f" (pid {entry.name}: {cmd[:80]})"
    return ""


def check_ports(cfg: dict) -> None:
    busy = [f"port {cfg[name]} ({what}, {name}) is already in use{listener(cfg[name])}"
            for name, what in (("AIRFLOW_PORT", "Airflow api-server"), ("MLFLOW_PORT", "MLflow UI"))
            if port_busy(cfg[name])]
    if busy:
        raise UpError("; ".join(busy) + ". Nothing was started. Stop what uses it, or choose another port: "
                      "make up AIRFLOW_PORT=8081 MLFLOW_PORT=5001")


# -- up -------------------------------------------------------------------------------------


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:  # our own localhost URL
        body = response.read()
    return json.loads(body) if body.strip().startswith((b"{", b"[")) else body.decode(errors="replace")


def _newer(heartbeat: str | None, since: dt.datetime) -> bool:
    if not heartbeat:
        return False
    moment = dt.datetime.fromisoformat(heartbeat.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)) >= since


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "    (no log)"


def wait_ready(cfg: dict, started: dict[str, subprocess.Popen], since: dt.datetime) -> None:
    """Until every component is ready; UpError naming the first that exits or times out."""
    api, mlflow = f"http://127.0.0.1:{cfg['AIRFLOW_PORT']}", f"http://127.0.0.1:{cfg['MLFLOW_PORT']}"
    pending, began = set(started), time.monotonic()
    while pending:
        for name, process in started.items():
            if process.poll() is not None:
                raise UpError(f"{name} exited with code {process.returncode} before everything was ready "
                              f"(log {cfg['up_dir'] / (name + '.log')}):\n{_tail(cfg['up_dir'] / (name + '.log'))}")
        ready = set()
        with contextlib.suppress(OSError, ValueError):
            health = _get_json(f"{api}/api/v2/monitor/health")
            ready.add("api-server")
            for name, key in HEARTBEATS.items():
                entry = health.get(key) or {}
                if entry.get("status") == "healthy" and _newer(entry.get(f"latest_{key}_heartbeat"), since):
                    ready.add(name)
        with contextlib.suppress(OSError, ValueError):
            if str(_get_json(f"{mlflow}/health")).strip() == "OK":
                ready.add("mlflow")
        for name in sorted(pending & ready):
            print(f"    {name} ready ({time.monotonic() - began:.0f} s)", flush=True)
        pending -= ready
        if pending and time.monotonic() - began > cfg["timeout"]:
            name = sorted(pending)[0]
            raise UpError(f"{', '.join(sorted(pending))} not ready within {cfg['timeout']:.0f} s (UP_TIMEOUT); "
                          f"end of {name}.log:\n{_tail(cfg['up_dir'] / (name + '.log'))}")
        if pending:
            time.sleep(1)


def up(cfg: dict) -> None:
    up_dir = cfg["up_dir"]
    up_dir.mkdir(parents=True, exist_ok=True)
    if running := processes(up_dir):
        raise UpError(f"already up ({len(running)} processes of {up_dir}, e.g. pid {min(running)}): make down first")
    check_ports(cfg)
    env = component_env(cfg)
    airflow_home = Path(env["AIRFLOW_HOME"])
    airflow_home.mkdir(parents=True, exist_ok=True)
    secret = airflow_home / "jwt_secret"
    if not secret.exists() or not secret.read_text().strip():
        secret.write_text(secrets.token_urlsafe(32) + "\n")
        secret.chmod(0o600)
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = secret.read_text().strip()

    print(f"==> airflow db migrate (log: {up_dir / 'db-migrate.log'})", flush=True)
    with (up_dir / "db-migrate.log").open("w") as log:
        migrated = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cfg["project"])
    if migrated.returncode != 0:
        raise UpError(f"airflow db migrate failed (exit {migrated.returncode}):\n{_tail(up_dir / 'db-migrate.log')}")

    since = dt.datetime.now(dt.UTC)
    started: dict[str, subprocess.Popen] = {}
    try:
        for name, argv in commands(cfg, env).items():
            with (up_dir / f"{name}.log").open("w") as log:
                started[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, cwd=cfg["project"],
                                                 start_new_session=True)
            record(up_dir, name, started[name].pid)
            print(f"    started {name} (pid {started[name].pid}, log {up_dir / (name + '.log')})", flush=True)
        print("==> waiting for the api-server, scheduler, dag-processor, triggerer and MLflow", flush=True)
        wait_ready(cfg, started, since)
    except BaseException:
        print("==> stopping what was started", file=sys.stderr, flush=True)
        stop(cfg, quiet=True)
        raise
    api = cfg["AIRFLOW_PORT"]
    passwords = f"{airflow_home}/simple_auth_manager_passwords.json.generated"
    print(f"""
  Airflow:     http://127.0.0.1:{api}   (user admin; password in {passwords})
  ctflow view: http://127.0.0.1:{api}/plugin/ctflow   (also 'ctflow' in Airflow's navigation)
  MLflow UI:   http://127.0.0.1:{cfg['MLFLOW_PORT']}
  logs:        {up_dir}/*.log      stop with: make down""")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("up", "down"):
        print(f"usage: {argv[0]} up|down", file=sys.stderr)
        return 2
    try:
        cfg = settings()
        up(cfg) if argv[1] == "up" else stop(cfg)
    except UpError as err:
        print(f"make {argv[1]}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
