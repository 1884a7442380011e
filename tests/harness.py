"""Start a real Airflow deployment (scheduler, dag-processor, api-server, triggerer) for a test.

Each component is its own process, as in production, on a free local port, with its own
``AIRFLOW_HOME``; everything is stopped (process groups included, so LocalExecutor workers
do not linger) when the context exits.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
#: What ``make up`` runs (``deploy/up.py``): the production LocalExecutor path.
PRELOADING_EXECUTOR = "ctflow.executors.PreloadingLocalExecutor"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Airflow:
    """A running deployment: its environment, API base URL and a logged-in session."""

    home: Path
    env: dict[str, str]
    api: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    token: str | None = None

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def login(self, username: str = "admin") -> str:
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        response = requests.post(f"{self.api}/auth/token", json={"username": username, "password": passwords[username]},
                                 timeout=30)
        response.raise_for_status()
        self.token = response.json()["access_token"]
        return self.token

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token or self.login()}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.api}{path}", headers=headers, timeout=60, **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = 240) -> dict:
        """Wait until the dag-processor has parsed ``dag_id``; unpause it; return its record."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.request("GET", f"/api/v2/dags/{dag_id}")
            if response.status_code == 200:
                self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
                return response.json()
            self._check_alive()
            time.sleep(2)
        raise TimeoutError(f"{dag_id} was not parsed within {timeout} s\n{self.logs_tail()}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
            if run.get("state") in ("success", "failed"):
                return run
            self._check_alive()
            time.sleep(3)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish within {timeout} s\n{self.logs_tail()}")

    def trigger(self, dag_id: str, logical_date: str, conf: dict | None = None) -> str:
        """Start a run through the REST API; return its run id."""
        response = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                                json={"logical_date": logical_date, "conf": conf or {}})
        assert response.status_code == 200, response.text
        return response.json()["dag_run_id"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return response.json()["task_instances"]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict:
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        response.raise_for_status()
        return response.json()

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, predicate, timeout: float = 300,
                      interval: float = 0.5) -> dict:
        """Poll a task instance until ``predicate(ti)``; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ti = self.task_instance(dag_id, run_id, task_id)
            if predicate(ti):
                return ti
            if self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json().get("state") in ("success", "failed"):
                raise AssertionError(f"{dag_id} {run_id} finished before {task_id} got there: {ti}\n{self.failed_tasks(dag_id, run_id)}")
            self._check_alive()
            time.sleep(interval)
        raise TimeoutError(f"{task_id} of {dag_id} {run_id} did not get there in {timeout} s\n{self.logs_tail()}")

    def failed_tasks(self, dag_id: str, run_id: str, lines: int = 25) -> str:
        """The failed task instances of a run with the end of each one's log: what an assertion
        on a run's state shows, so a CI failure names its cause."""
        out = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] not in ("failed", "upstream_failed"):
                continue
            out.append(f"--- {ti['task_id']}: {ti['state']} (try {ti['try_number']}) ---")
            if ti["state"] == "failed":
                out.append(self.task_log(dag_id, run_id, ti["task_id"], lines))
        return "\n".join(out) or f"no failed task in {dag_id} {run_id}"

    def task_log(self, dag_id: str, run_id: str, task_id: str, lines: int = 25) -> str:
        """The last ``lines`` events of the task's latest attempt (the local log file)."""
        base = Path(self.env.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER") or self.home / "logs")
        attempts = sorted((base / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}").glob("attempt=*.log"))
        if not attempts:
            return f"(no log file under {base})"
        shown = []
        for line in attempts[-1].read_text(errors="replace").splitlines()[-lines:]:
            text = line  # a structured record is shown by its level, event and error
            with contextlib.suppress(ValueError, TypeError):
                record = json.loads(line)
                text = f"{record.get('level', '')} {record.get('event', '')} {record.get('error_detail', '')}".strip()
            shown.append(text[:1500])
        return "\n".join(shown)

    def logged(self) -> list[str]:
        """Names of the processes whose ``<name>.log`` :meth:`logs_tail` shows."""
        return list(self.processes)

    def logs_tail(self, lines: int = 30) -> str:
        out = []
        for name in self.logged():
            log = self.home / f"{name}.log"
            if log.exists():
                out.append(f"--- {name} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def _check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow components exited: {dead}\n{self.logs_tail()}")


@contextlib.contextmanager
def running_airflow(
    home: Path,
    *,
    dags_folder: Path,
    extra_env: dict[str, str] | None = None,
    components: tuple[str, ...] = ("scheduler", "dag-processor", "api-server", "triggerer"),
    workers: int = 0,
    executor: str = PRELOADING_EXECUTOR,
) -> Iterator[Airflow]:
    """Migrate a fresh metadata DB and start ``components`` (and ``workers`` Celery workers).

    :param executor: ``AIRFLOW__CORE__EXECUTOR``; by default the LocalExecutor ``make up`` runs, whose
        tasks inherit the ML stack from the scheduler. A deployment that runs no task saves the
        scheduler's preload with Airflow's own ``LocalExecutor``.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "ctflow-test-secret-not-for-production",
        "AIRFLOW__API_AUTH__JWT_ISSUER": "ctflow-tests",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        **(extra_env or {}),
    }
    if "MLFLOW_REGISTRY_URI" not in (extra_env or {}):
        env.pop("MLFLOW_REGISTRY_URI", None)  # a leftover of an in-process test must not redirect the registry
    migrate_sqlite(home / "airflow.db", env)
    deployment = Airflow(home=home, env=env, api=f"http://127.0.0.1:{port}")
    commands = {name: [str(BIN / "airflow"), name] for name in components}
    if "api-server" in commands:
        commands["api-server"] += ["--port", str(port), "--host", "127.0.0.1"]
    for i in range(workers):
        commands[f"worker-{i + 1}"] = [str(BIN / "airflow"), "celery", "worker", "--concurrency", "2",
                                       "--celery-hostname", f"ctflow-worker-{i + 1}@%h"]
    try:
        for name, argv in commands.items():
            log = (home / f"{name}.log").open("w")
            deployment.processes[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                          start_new_session=True)
        wait_for_api(deployment)
        yield deployment
    finally:
        for process in deployment.processes.values():
            stop(process)


#: Settings that differ between deployments without changing what ``airflow db migrate`` creates.
_PER_DEPLOYMENT = ("AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__API__PORT",
                   "AIRFLOW__API__BASE_URL", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                   "AIRFLOW__CORE__PLUGINS_FOLDER", "AIRFLOW__LOGGING__BASE_LOG_FOLDER")
_MIGRATED: dict[tuple, Path] = {}


def migrate_sqlite(db: Path, env: dict[str, str]) -> None:
    """``db`` (the deployment's SQLite file, per ``env``) as ``airflow db migrate`` leaves it.

    The real command runs once per configuration and session, into a template; each deployment
    gets a copy of it: a migration is seconds of CPU, and an empty migrated DB holds nothing of
    the deployment (no DAG, bundle, user or path), so the copy is the same file it would make.
    A DB that is not this SQLite file is migrated in place.
    """
    if env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") != f"sqlite:///{db}":
        _migrate(env)
        return
    key = tuple(sorted((k, v) for k, v in env.items() if k.startswith("AIRFLOW__") and k not in _PER_DEPLOYMENT))
    if key not in _MIGRATED:
        template = Path(tempfile.mkdtemp(prefix="ctflow-airflow-db-")) / "airflow.db"
        atexit.register(shutil.rmtree, template.parent, True)
        _migrate({**env, "AIRFLOW_HOME": str(template.parent),
                  "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{template}"})
        _MIGRATED[key] = template
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_MIGRATED[key], db)


def _migrate(env: dict[str, str]) -> None:
    migrated = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True,
                              timeout=300)
    if migrated.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{migrated.stdout[-3000:]}\n{migrated.stderr[-3000:]}")


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_http(url: str, timeout: float, *, check=lambda: None, what: str = "") -> None:
    """Poll ``url`` until it answers 200; ``check()`` between tries (raises if a process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=5).status_code == 200:
                return
        check()
        time.sleep(1)
    raise TimeoutError(f"{what or url} did not answer within {timeout} s")


def wait_for_api(deployment: Airflow, timeout: float = 180) -> None:
    """Wait for the api-server's health endpoint; the logs in the error if it never answers."""
    try:
        wait_http(f"{deployment.api}/api/v2/monitor/health", timeout, check=deployment._check_alive, what="api-server")
    except TimeoutError as err:
        raise TimeoutError(f"{err}\n{deployment.logs_tail()}") from None
