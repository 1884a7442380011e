"""The production topology, started natively: the processes docker-compose.yml runs, without Docker.

:func:`running_stack` starts, on free local ports, against the local PostgreSQL and Redis:

* throw-away PostgreSQL databases ``ctflow_test_<random>_{airflow,mlflow,ctflow}`` (dropped
  afterwards) and two Redis databases of their own (Celery broker, Feast online store; claimed,
  then flushed afterwards; never db 0 or 1, the production ones);
* the MLflow tracking server (backend store in PostgreSQL, artifacts served from a local folder);
* the one-shot init (``airflow db migrate``, the FAB admin user, Feast data + apply to the SQL
  registry), then the api-server (FAB login), scheduler, dag-processor, triggerer and two Celery
  workers (distinct ``--celery-hostname``), each its own process group, stopped afterwards (also
  when the test fails).

Commands and environment come from :mod:`ctflow.deploy.topology`, the functions
docker-compose.yml is checked against (``tests/production/test_compose.py`` checks that every
command here is the compose command plus :data:`NATIVE_EXTRA_ARGS` only). The environment is
``production_env(...)`` with local hosts, ports and folders, plus :func:`native_overrides`:
what cannot be the same on one host (log-server ports, the test's DAGs folder, each worker's
host name) and settings that make faults show within a test's time (heartbeat timeout, MLflow
client retries).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

from ctflow.deploy import topology
from tests.harness import BIN, Airflow, free_port, stop, wait_for_api, wait_http
from tests.postgres import POSTGRES_ADMIN_URL, postgres_unavailable, throwaway_databases

PROJECT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("CTFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379")
ADMIN_USERNAME = "admin"
WORKERS = ("worker-1", "worker-2")
#: Redis databases never used here: db 0 and 1 are the production stack's (and a neighbour's db 0).
RESERVED_REDIS_DBS = (0, 1)
CLAIM_KEY = "ctflow:test-claim"

#: Arguments the harness adds to a topology command, per service, and nothing else: the
#: api-server listens on loopback only; each worker gets its own Celery node name (Compose
#: replicas get theirs from their container host names).
NATIVE_EXTRA_ARGS: dict[str, tuple[str, ...]] = {
    "api-server": ("--host", "127.0.0.1"),
    "worker": ("--celery-hostname",),  # followed by "<name>@%h"
}

# --- are the services there? ------------------------------------------------------------------


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def redis_unavailable(url: str = REDIS_URL) -> str | None:
    """Why the local Redis cannot be used (None: it can)."""
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5).ping()
    except Exception as err:  # noqa: BLE001 - any reason is a reason not to run
        return f"no Redis at {url} ({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''})"
    return None


def require(*services: str) -> None:
    """Skip (or, with ``CI=true``, fail) unless every named service (``postgres``, ``redis``) is usable.

    A missing service is a skip on a laptop, with the reason; on CI, where the services are
    provisioned, it is a failure, never a silent skip.
    """
    import pytest

    checks = {"postgres": postgres_unavailable, "redis": redis_unavailable}
    reasons = [reason for name in services if (reason := checks[name]())]
    if reasons:
        message = "; ".join(reasons)
        if in_ci():
            pytest.fail(f"{message}; CI=true, where these services must be there", pytrace=False)
        pytest.skip(message)


# --- commands and environment ---------------------------------------------------------------


def native_commands(*, api_port: int | str, mlflow_port: int | str, artifacts_dir: str | Path,
                    mlflow_host: str = "127.0.0.1",
                    workers: tuple[str, ...] = WORKERS) -> dict[str, tuple[list[str], list[str]]]:
    """``{process: (topology command, native extra args)}`` of every process the harness starts.

    The first element is what ``ctflow.deploy.topology`` returns for that service (with this
    host's ports and folders), i.e. the compose service's command; the second only holds
    :data:`NATIVE_EXTRA_ARGS`.
    """
    commands: dict[str, tuple[list[str], list[str]]] = {
        "init": (list(topology.INIT), []),
        "mlflow": (topology.mlflow_server_command(host=mlflow_host, port=mlflow_port,
                                                  artifacts_destination=artifacts_dir), []),
        "api-server": (topology.airflow_command("api-server", port=api_port), list(NATIVE_EXTRA_ARGS["api-server"])),
        "scheduler": (topology.airflow_command("scheduler"), []),
        "dag-processor": (topology.airflow_command("dag-processor"), []),
        "triggerer": (topology.airflow_command("triggerer"), []),
    }
    for name in workers:
        commands[name] = (topology.airflow_command("worker"), [*NATIVE_EXTRA_ARGS["worker"], f"{name}@%h"])
    return commands


def native_overrides(*, dags_folder: Path) -> dict[str, str]:
    """What the native stack sets on top of ``production_env``: per host, not per deployment."""
    return {
        # The test's DAGs folder (spec variants); the project's dags/ in Compose.
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        # Free ports: every process shares this host (each container has its own in Compose).
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # Each worker reports its own host name on its task instances (tests/production/hostname.py).
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.production.hostname.worker_hostname",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
        # Faults within a test's time: a task whose worker died is failed (and retried) after 20 s
        # without a heartbeat, not 5 min; the scheduler and dag-processor loop faster.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "3",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # MLflow's client retries a refused connection for minutes by default: fail fast, let
        # Airflow's retries (the spec's defaults) take over.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        "GIT_PYTHON_REFRESH": "quiet",
        # Two workers share this host's cores: one OpenMP thread each (scikit-learn's boosting),
        # not two threads per worker spinning against each other.
        "OMP_NUM_THREADS": "1",
    }


def base_environment() -> dict[str, str]:
    """This process's environment without the test session's Airflow, MLflow, ctflow and Feast settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "CTFLOW_", "FEAST_"))}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])  # `airflow`, `mlflow`, `python` of this venv
    return env


# --- throw-away Redis databases ---------------------------------------------------------------


@contextlib.contextmanager
def throwaway_redis_dbs(count: int, url: str = REDIS_URL) -> Iterator[list[int]]:
    """Claim ``count`` empty Redis databases (never db 0/1); flush them afterwards."""
    import redis

    admin = redis.Redis.from_url(url)
    try:
        total = int(admin.config_get("databases").get("databases", 16))
    except redis.RedisError:
        total = 16
    token = secrets.token_hex(8)
    claimed: list[int] = []
    candidates = [db for db in range(total) if db not in RESERVED_REDIS_DBS]
    random.shuffle(candidates)
    try:
        for db in candidates:
            if len(claimed) == count:
                break
            client = redis.Redis.from_url(url, db=db)
            if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True, ex=6 * 3600) and client.dbsize() == 1:
                claimed.append(db)
        if len(claimed) < count:
            raise RuntimeError(f"found only {len(claimed)} empty Redis databases of {total} at {url}")
        yield claimed
    finally:
        for db in claimed:
            client = redis.Redis.from_url(url, db=db)
            if client.get(CLAIM_KEY) in (token.encode(), None):
                client.flushdb()


# --- the running stack ------------------------------------------------------------------------


@dataclass
class NativeStack(Airflow):
    """The running topology: Airflow's REST API (FAB login), the processes, MLflow."""

    mlflow_url: str = ""
    admin_password: str = ""
    commands: dict[str, list[str]] = field(default_factory=dict)
    envs: dict[str, dict[str, str]] = field(default_factory=dict)
    stopped: dict[str, subprocess.Popen] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    redis_dbs: list[int] = field(default_factory=list)

    def login(self, username: str = ADMIN_USERNAME) -> str:
        """A JWT from the FAB auth manager's ``/auth/token`` (users in the Airflow database)."""
        response = requests.post(f"{self.api}/auth/token", json={"username": username, "password": self.admin_password},
                                 timeout=30)
        response.raise_for_status()
        self.token = response.json()["access_token"]
        return self.token

    # -- processes ---------------------------------------------------------------------------

    def start(self, name: str) -> subprocess.Popen:
        with (self.home / f"{name}.log").open("a") as log:
            process = subprocess.Popen(self.commands[name], env=self.envs[name], stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, cwd=self.home)
        self.processes[name] = process
        self.stopped.pop(name, None)
        return process

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal ``name``'s whole process group (its task processes too) and wait for it."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=30)
        self.stopped[name] = process

    def shutdown(self, name: str) -> None:
        process = self.processes.pop(name)
        stop(process)
        self.stopped[name] = process

    def add_worker(self, name: str) -> None:
        """Start one more Celery worker (a replacement), configured like the others."""
        template = next(n for n in (*self.processes, *self.stopped) if n.startswith("worker-"))
        self.commands[name] = [*self.commands[template][:-1], f"{name}@%h"]
        self.envs[name] = {**self.envs[template], "CTFLOW_WORKER_HOSTNAME": name,
                           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        self.start(name)

    def workers(self) -> list[str]:
        return [name for name in self.processes if name.startswith("worker-")]

    def wait_for_mlflow(self, timeout: float = 180) -> None:
        wait_http(f"{self.mlflow_url}/health", timeout, check=self._check_alive, what="MLflow")

    def logged(self) -> list[str]:
        return [*self.processes, *self.stopped, "init"]

    # -- Airflow's REST API ------------------------------------------------------------------

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Every try of a task instance (hostname, state, start and end of each), oldest first."""
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        response.raise_for_status()
        return sorted(response.json()["task_instances"], key=lambda t: t["try_number"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                                params={"deserialize": "true", "stringify": "false"})
        response.raise_for_status()
        return response.json()["value"]


@contextlib.contextmanager
def running_stack(tmp: Path, *, dags_folder: Path, workers: tuple[str, ...] = WORKERS,
                  extra_env: dict[str, str] | None = None) -> Iterator[NativeStack]:
    """Start the production topology natively (see the module docstring); stop and clean up on exit.

    ``extra_env`` is set on top of the Airflow processes' environment (a benchmark's variant).
    """
    from cryptography.fernet import Fernet

    tmp.mkdir(parents=True, exist_ok=True)
    pg = urlparse(POSTGRES_ADMIN_URL)
    redis = urlparse(REDIS_URL)
    api_port, mlflow_port = free_port(), free_port()
    home = tmp / "airflow"
    home.mkdir(exist_ok=True)
    with throwaway_databases("airflow", "mlflow", "ctflow") as names, throwaway_redis_dbs(2) as (broker_db, feast_db):
        env = {
            **base_environment(),
            **topology.production_env(
                postgres_host=pg.hostname or "127.0.0.1", postgres_port=pg.port or 5432,
                postgres_user=pg.username or "postgres", postgres_password=pg.password or "",
                airflow_db=names["airflow"], ctflow_db=names["ctflow"],
                redis_host=redis.hostname or "127.0.0.1", redis_port=redis.port or 6379, redis_password=redis.password,
                broker_redis_db=broker_db, feast_redis_db=feast_db,
                api_host="127.0.0.1", api_port=api_port, mlflow_host="127.0.0.1", mlflow_port=mlflow_port,
                project_dir=PROJECT, ctflow_home=tmp / "ctflow", airflow_home=home, logs_dir=tmp / "logs",
                worker_concurrency=1,
                fernet_key=Fernet.generate_key().decode(), jwt_secret=secrets.token_hex(32),
                api_secret_key=secrets.token_hex(32),
            ),
            **native_overrides(dags_folder=dags_folder),
            **(extra_env or {}),
        }
        mlflow_env = {
            **base_environment(),
            **topology.mlflow_server_env(postgres_host=pg.hostname or "127.0.0.1", postgres_port=pg.port or 5432,
                                         postgres_user=pg.username or "postgres", postgres_password=pg.password or "",
                                         mlflow_db=names["mlflow"], allowed_hosts="127.0.0.1:*,localhost:*"),
        }
        password = secrets.token_hex(12)
        init_env = {**env, "AIRFLOW_ADMIN_USERNAME": ADMIN_USERNAME, "AIRFLOW_ADMIN_PASSWORD": password,
                    "AIRFLOW_ADMIN_EMAIL": "admin@example.org"}
        planned = native_commands(api_port=api_port, mlflow_port=mlflow_port, artifacts_dir=tmp / "mlartifacts",
                                  workers=workers)
        stack = NativeStack(home=home, env=env, api=f"http://127.0.0.1:{api_port}",
                            mlflow_url=f"http://127.0.0.1:{mlflow_port}", admin_password=password,
                            commands={name: base + extra for name, (base, extra) in planned.items()},
                            databases=dict(names), redis_dbs=[broker_db, feast_db])
        stack.envs = dict.fromkeys(planned, env)
        stack.envs["init"] = init_env
        stack.envs["mlflow"] = mlflow_env
        for name in workers:
            stack.envs[name] = {**env, "CTFLOW_WORKER_HOSTNAME": name,
                                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        try:
            stack.start("mlflow")  # migrates its database while init runs
            started = time.monotonic()
            with (home / "init.log").open("w") as log:
                init = subprocess.run(stack.commands["init"], env=init_env, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=900, cwd=home)
            if init.returncode != 0:
                raise RuntimeError(f"init failed ({init.returncode}):\n{stack.logs_tail(60)}")
            print(f"native stack: init in {time.monotonic() - started:.0f} s", flush=True)
            for name in ("api-server", "scheduler", "dag-processor", "triggerer", *workers):
                stack.start(name)
            wait_for_api(stack, timeout=240)
            stack.wait_for_mlflow()
            yield stack
        finally:
            stop_all(list(stack.processes.values()))


def stop_all(processes: list[subprocess.Popen], timeout: float = 20) -> None:
    """SIGTERM every process group at once, then SIGKILL what is left after ``timeout``."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop(process, timeout=0.1)  # SIGKILLs the group
