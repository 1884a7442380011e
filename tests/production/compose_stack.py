"""docker-compose.yml, started for real: :func:`running_compose_stack`.

The stack runs from the repository's ``docker-compose.yml`` unchanged, under a project name of
its own (``ctflow-test-<random>``: its containers, network and volumes carry it), with:

* a generated ``.env`` in a temporary folder: random secrets (none written in any file of the
  repository), the images of ``make images``, the api-server and MLflow published on free
  ports of 127.0.0.1 only, one task slot per worker (so that two replicas share the work);
* a second compose file, also generated, that only adds what a test needs and a deployment
  does not: the test's DAGs folder mounted over ``/app/dags`` (trigger-only specs, so that no
  cron run competes), and the fault settings of ``tests/production/native.py`` (a task whose
  worker died is retried after 20 s without a heartbeat, not 5 min);
* ``up -d --scale worker=2``, then every container waited for until healthy (init: exited 0);
* ``down -v --remove-orphans`` afterwards, whatever happened, and a check that no container,
  volume or network of the project is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from tests.harness import Airflow, free_port, wait_http
from tests.production.containers import PROJECT
from tests.production.native import ADMIN_USERNAME, native_overrides

COMPOSE_FILE = PROJECT / "docker-compose.yml"
AIRFLOW_SERVICES = ("init", "api-server", "scheduler", "dag-processor", "triggerer", "worker")
#: From native_overrides: what makes faults show within a test's time, and nothing host-specific.
FAULT_SETTINGS = (
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "OMP_NUM_THREADS",
)


def generated_env(images: dict[str, str], *, project: str, api_port: int, mlflow_port: int) -> dict[str, str]:
    """A complete .env for docker-compose.yml: every secret random, every port free."""
    from cryptography.fernet import Fernet

    return {
        "COMPOSE_PROJECT_NAME": project,
        **images,
        "POSTGRES_USER": "ctflow",
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "REDIS_PASSWORD": secrets.token_hex(16),
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW_API_SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW_ADMIN_USERNAME": ADMIN_USERNAME,
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_hex(12),
        "AIRFLOW_ADMIN_EMAIL": "admin@example.org",
        "AIRFLOW_BIND": "127.0.0.1",
        "AIRFLOW_PORT": str(api_port),
        "MLFLOW_BIND": "127.0.0.1",
        "MLFLOW_PORT": str(mlflow_port),
        "MLFLOW_ALLOWED_HOSTS": "mlflow:5000,localhost:*,127.0.0.1:*",
        "GIT_COMMIT": "",
        "CTFLOW_WORKER_CONCURRENCY": "1",
    }


def test_override(dags_folder: Path) -> dict:
    """The second compose file: the test's DAGs, and quicker fault detection."""
    faults = {k: v for k, v in native_overrides(dags_folder=dags_folder).items() if k in FAULT_SETTINGS}
    airflow = {"environment": faults, "volumes": [f"{dags_folder}:/app/dags:ro"]}
    return {"services": dict.fromkeys(AIRFLOW_SERVICES, airflow)}


@dataclass
class ComposeStack(Airflow):
    """The running Compose project: Airflow's REST API (FAB login), MLflow, the containers."""

    compose: list[str] = field(default_factory=list)
    #: Compose's own environment: this process's, without the names the .env sets (the
    #: environment would win over the file).
    compose_env: dict[str, str] = field(default_factory=dict)
    project: str = ""
    mlflow_url: str = ""
    admin_password: str = ""

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.compose, *args], capture_output=True, text=True, timeout=timeout,
                                env=self.compose_env)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
        return result

    def login(self, username: str = ADMIN_USERNAME) -> str:
        response = requests.post(f"{self.api}/auth/token", json={"username": username, "password": self.admin_password},
                                 timeout=30)
        response.raise_for_status()
        self.token = response.json()["access_token"]
        return self.token

    def containers(self, service: str | None = None, *, all_states: bool = False) -> list[dict]:
        """``docker inspect`` of the project's containers (of one service)."""
        labels = [f"label=com.docker.compose.project={self.project}"]
        if service:
            labels.append(f"label=com.docker.compose.service={service}")
        ids = subprocess.run(["docker", "ps", "-q", *(["-a"] if all_states else []),
                              *[arg for label in labels for arg in ("--filter", label)]],
                             capture_output=True, text=True, timeout=60, check=True).stdout.split()
        if not ids:
            return []
        out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, timeout=60, check=True)
        return json.loads(out.stdout)

    def worker_hostnames(self) -> dict[str, str]:
        """{container host name (what Airflow records on a task instance): container name}."""
        return {c["Config"]["Hostname"]: c["Name"].lstrip("/") for c in self.containers("worker", all_states=True)}

    def wait_healthy(self, timeout: float = 900) -> dict[str, str]:
        """Until every long-running container is healthy and init exited 0; {container: state}."""
        deadline = time.monotonic() + timeout
        while True:
            states = {}
            for c in self.containers(all_states=True):
                service = c["Config"]["Labels"]["com.docker.compose.service"]
                status = c["State"]["Status"]
                if service == "init":
                    states[c["Name"].lstrip("/")] = f"{status}({c['State']['ExitCode']})"
                    if status == "exited" and c["State"]["ExitCode"] != 0:
                        raise RuntimeError(f"init failed:\n{self.logs_tail(60)}")
                else:
                    states[c["Name"].lstrip("/")] = c["State"].get("Health", {}).get("Status", status)
            if states and all(s in ("healthy", "exited(0)") for s in states.values()):
                return states
            if time.monotonic() > deadline:
                raise TimeoutError(f"not healthy within {timeout} s: {states}\n{self.logs_tail(40)}")
            time.sleep(3)

    def kill(self, container: str) -> None:
        """SIGKILL a container: its processes die with no goodbye (and Docker does not restart it)."""
        subprocess.run(["docker", "kill", container], capture_output=True, text=True, timeout=60, check=True)

    def logs_tail(self, lines: int = 30) -> str:
        result = self.run("logs", "--no-color", "--tail", str(lines), check=False, timeout=120)
        return result.stdout[-20000:] + result.stderr[-2000:]

    def task_log(self, dag_id: str, run_id: str, task_id: str, lines: int = 25) -> str:
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1",
                                headers={"Accept": "text/plain"})
        return "\n".join(response.text.splitlines()[-lines:])

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Every try of a task instance (hostname, state), oldest first."""
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        response.raise_for_status()
        return sorted(response.json()["task_instances"], key=lambda t: t["try_number"])

    def _check_alive(self) -> None:
        """No process to watch: the containers restart themselves (restart: unless-stopped)."""

    def resources(self) -> dict[str, list[str]]:
        """What of the project is left: containers, volumes, networks."""
        label = f"label=com.docker.compose.project={self.project}"
        listed = {
            "containers": ["docker", "ps", "-aq", "--filter", label],
            "volumes": ["docker", "volume", "ls", "-q", "--filter", label],
            "networks": ["docker", "network", "ls", "-q", "--filter", label],
        }
        return {kind: subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.split()
                for kind, argv in listed.items()}


@contextlib.contextmanager
def running_compose_stack(tmp: Path, *, compose: list[str], images: dict[str, str], dags_folder: Path,
                          workers: int = 2) -> Iterator[ComposeStack]:
    """Start docker-compose.yml (see the module docstring); ``down -v`` on exit, always."""
    project = f"ctflow-test-{secrets.token_hex(4)}"
    api_port, mlflow_port = free_port(), free_port()
    env = generated_env(images, project=project, api_port=api_port, mlflow_port=mlflow_port)
    env_file = tmp / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)
    override = tmp / "docker-compose.test.yml"
    override.write_text(yaml.safe_dump(test_override(dags_folder)))
    argv = [*compose, "--project-name", project, "--project-directory", str(PROJECT), "--env-file", str(env_file),
            "-f", str(COMPOSE_FILE), "-f", str(override)]
    compose_env = {k: v for k, v in os.environ.items() if k not in env}
    stack = ComposeStack(home=tmp, env={}, api=f"http://127.0.0.1:{api_port}", compose=argv, compose_env=compose_env,
                         project=project,
                         mlflow_url=f"http://127.0.0.1:{mlflow_port}", admin_password=env["AIRFLOW_ADMIN_PASSWORD"])
    started = time.monotonic()
    try:
        stack.run("up", "-d", "--no-build", "--scale", f"worker={workers}", timeout=1200)
        states = stack.wait_healthy()
        wait_http(f"{stack.api}/api/v2/monitor/health", 120, what="api-server")
        wait_http(f"{stack.mlflow_url}/health", 120, what="MLflow")
        print(f"\ncompose stack {project}: healthy in {time.monotonic() - started:.0f} s: {sorted(states)}", flush=True)
        yield stack
    finally:
        (tmp / "compose.log").write_text(stack.logs_tail(400))
        stack.run("down", "-v", "--remove-orphans", "--timeout", "30", timeout=600, check=False)
        left = stack.resources()
        assert not any(left.values()), f"down -v left behind: {left}"
        print(f"compose stack {project}: up to down in {time.monotonic() - started:.0f} s", flush=True)
