"""The production topology: every process of the ctflow stack, its command and its environment.

One source of truth for two ways of running the same stack:

* ``docker-compose.yml``: ``tests/production/test_compose.py`` checks that its commands,
  health checks and environment are exactly what this module returns for
  :data:`COMPOSE_SETTINGS` (the ``${VAR}`` references Compose fills in from ``.env``);
* a native harness, which starts the same processes on free local ports against a local
  PostgreSQL and Redis by calling the same functions with its own hosts, ports and paths::

      env = production_env(postgres_host="127.0.0.1", postgres_user="postgres", postgres_password="",
                           airflow_db="t_airflow", ctflow_db="t_ctflow", redis_host="127.0.0.1",
                           api_port=api_port, mlflow_host="127.0.0.1", mlflow_port=mlflow_port,
                           project_dir=repo, ctflow_home=tmp / "ctflow", airflow_home=tmp / "airflow",
                           logs_dir=tmp / "logs", fernet_key=..., jwt_secret=..., api_secret_key=...)
      # On one host, the worker's and the triggerer's log servers need free ports too (8793/8794):
      env |= {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
              "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
      subprocess.Popen(airflow_command("api-server", port=api_port), env={**os.environ, **env})

Needs, beyond the embedded default's dependencies: apache-airflow-providers-fab (auth manager),
apache-airflow-providers-celery with celery<5.7 (the provider imports a name celery 5.7 removed),
apache-airflow-providers-postgres (psycopg2, asyncpg) and feast[redis].

Standard library only: it imports where Airflow, MLflow and Feast are not installed.

The processes (Compose service names; the arrows are who calls whom)::

    postgres ◀── everything below (databases airflow, mlflow, ctflow)
    redis    ◀── scheduler, worker (Celery broker, db 0); worker (Feast online store, db 1)
    init        one-shot, before the Airflow services: db migrate, admin user, Feast bootstrap + apply
    api-server  UI, REST API and the Execution API that task processes report to
    scheduler ─▶ redis ─▶ worker × N ─▶ api-server (Execution API), mlflow (tracking + registry)
    dag-processor, triggerer
    mlflow      tracking server + model registry, artifacts proxied through it (--serve-artifacts)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import PurePath
from typing import TypedDict
from urllib.parse import quote

# --- paths inside the image (see Dockerfile); a native harness passes its own ------------------

APP_DIR = "/app"
#: ctflow's state (run folders, training frames, reports): a volume shared by every Airflow container.
CTFLOW_HOME_DIR = "/var/lib/ctflow"
#: Task logs: a volume shared by the workers (who write) and the api-server (who shows them).
AIRFLOW_LOGS_DIR = "/var/lib/airflow/logs"
#: Per-container scratch (Airflow may write a default airflow.cfg there); not shared, not kept.
AIRFLOW_HOME_DIR = "/app/airflow"
#: MLflow artifacts; only the mlflow service mounts it, clients up/download through the server.
MLFLOW_ARTIFACTS_DIR = "/var/lib/mlflow/artifacts"

API_SERVER_PORT = 8080
MLFLOW_PORT = 5000
POSTGRES_PORT = 5432
REDIS_PORT = 6379

#: Compose service names, which are also the host names the containers reach each other by.
POSTGRES_HOST = "postgres"
REDIS_HOST = "redis"
API_SERVER_HOST = "api-server"
MLFLOW_HOST = "mlflow"

#: The FAB auth manager (apache-airflow-providers-fab): users, roles and passwords in the Airflow
#: database. Not SimpleAuthManager, whose users live in a generated JSON file (development only).
AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
EXECUTOR = "CeleryExecutor"
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
#: Selects the production Feast configuration (Feast reads this variable, see feast.utils).
FEAST_PRODUCTION_YAML = "feature_store.production.yaml"
#: SQLAlchemy driver for every PostgreSQL URI (psycopg2-binary, from apache-airflow-providers-postgres).
PG_DRIVER = "postgresql+psycopg2"

# --- Celery workers ----------------------------------------------------------------------------

#: ``[celery] celery_config_options`` of every Airflow container: Airflow's own Celery
#: configuration, plus (in workers only) :data:`ctflow.preload.MODULES` imported once, before the
#: worker's pool forks. Airflow forks a process per task from the pool, so each task starts
#: with pandas, scikit-learn, MLflow and Feast loaded instead of importing them again (about
#: 10 s of CPU per task on a small host; Feast's MLflow plugin makes even registry-only tasks
#: import Feast). Resolved lazily (:func:`__getattr__`): this module imports without Airflow.
CELERY_CONFIG_OPTIONS = "ctflow.deploy.topology.CELERY_CONFIG"


def celery_config() -> dict[str, object]:
    """Airflow's Celery configuration, with :func:`preload_task_modules` run when a worker starts."""
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    from celery.signals import worker_init

    # worker_init fires in a worker's main process, before its pool starts; never in the scheduler.
    worker_init.connect(preload_task_modules, weak=False, dispatch_uid="ctflow.preload_task_modules")
    return DEFAULT_CELERY_CONFIG


def preload_task_modules(**_: object) -> list[str]:
    """:func:`ctflow.preload.preload` as a Celery signal handler."""
    from ctflow.preload import preload

    return preload()


def __getattr__(name: str) -> dict[str, object]:
    if name == "CELERY_CONFIG":
        return celery_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# --- commands ----------------------------------------------------------------------------------

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "worker")


def airflow_command(component: str, *, port: int | str = API_SERVER_PORT) -> list[str]:
    """The argv of an Airflow component; ``port`` only matters to the api-server.

    Two workers on one host (a native harness) also need their own
    ``AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT``; in Compose each worker has its own network.
    """
    if component == "api-server":
        return ["airflow", "api-server", "--port", str(port)]
    if component == "worker":
        return ["airflow", "celery", "worker"]
    if component in COMPONENTS:
        return ["airflow", component]
    raise ValueError(f"unknown Airflow component {component!r}; expected one of {', '.join(COMPONENTS)}")


#: The commands of the Compose services of the same names.
AIRFLOW_COMPONENTS: dict[str, list[str]] = {name: airflow_command(name) for name in COMPONENTS}


def mlflow_server_command(
    *,
    host: str = "0.0.0.0",
    port: int | str = MLFLOW_PORT,
    artifacts_destination: str | PurePath = MLFLOW_ARTIFACTS_DIR,
    workers: int | str = 1,
) -> list[str]:
    """The argv of the MLflow tracking server.

    One worker by default: with several, the server's process manager health-checks them and
    restarts any that does not answer within seconds, which a CPU-saturated host (training on
    the same machine) triggers, cutting off requests in flight. Scale MLflow by replicas behind
    a proxy on a host of its own rather than by workers next to training.

    The backend store URI holds the database password, so it is not on the command line
    (visible to ``ps`` and in ``docker inspect``'s Args): ``mlflow server --backend-store-uri``
    reads ``$MLFLOW_BACKEND_STORE_URI``, which :func:`mlflow_server_env` sets. Artifacts go to
    ``artifacts_destination`` and are served through the server, so clients need no access to
    the volume.
    """
    return [
        "mlflow", "server",
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
        "--serve-artifacts",
        "--artifacts-destination", str(artifacts_destination),
    ]  # fmt: skip


MLFLOW_SERVER: list[str] = mlflow_server_command()

#: The one-shot init service: runs :data:`INIT_COMMANDS` in order (see :func:`run_init`).
INIT: list[str] = ["python", "-m", "ctflow.deploy.topology", "init"]

#: What ``init`` runs, each idempotent, so ``docker compose up`` may run it again at every start.
#: ``${NAME}`` is filled in from the environment at run time (:func:`init_commands`).
INIT_COMMANDS: list[list[str]] = [
    # Airflow's schema and, through the FAB provider's DB manager, the users/roles tables.
    ["airflow", "db", "migrate"],
    # The admin user (FAB). An existing user is left as it is: change its password in the UI or
    # with `airflow users reset-password`, not in .env.
    [
        "airflow", "users", "create", "--role", "Admin",
        "--username", "${AIRFLOW_ADMIN_USERNAME}",
        "--password", "${AIRFLOW_ADMIN_PASSWORD}",
        "--email", "${AIRFLOW_ADMIN_EMAIL}",
        "--firstname", "ctflow", "--lastname", "admin",
    ],
    # Feature data on the shared volume, and the definitions applied to the SQL registry
    # (FEAST_FS_YAML_FILE_PATH selects feature_store.production.yaml).
    ["python", "${CTFLOW_PROJECT}/feature_repo/bootstrap.py"],
]
# No `airflow connections add`: ctflow_mlflow and ctflow_feast are AIRFLOW_CONN_* variables of
# production_env, the same in every container, with nothing to create, update or forget.

#: Health checks, as argv (Compose: ``test: ["CMD", *argv]``). Python instead of curl, which
#: python:3.11-slim does not have. ``--local`` checks the job of this container's host name.
HTTP_PROBE = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)"


def healthcheck(service: str, *, port: int | str | None = None) -> list[str]:
    """The argv that exits 0 when ``service`` (a component or ``mlflow``) is healthy."""
    if service == "api-server":
        return ["python", "-c", HTTP_PROBE, f"http://localhost:{port or API_SERVER_PORT}/api/v2/monitor/health"]
    if service == "mlflow":
        return ["python", "-c", HTTP_PROBE, f"http://localhost:{port or MLFLOW_PORT}/health"]
    jobs = {"scheduler": "SchedulerJob", "dag-processor": "DagProcessorJob", "triggerer": "TriggererJob"}
    if service in jobs:
        return ["airflow", "jobs", "check", "--job-type", jobs[service], "--local"]
    if service == "worker":
        # This worker, not any worker: with --scale worker=3 each container answers for itself.
        # Celery names a worker celery@<host name>; Docker sets HOSTNAME to the container's.
        # (Compose writes the `$` as `$$`, its escape.)
        return ["sh", "-c", f'celery --app {CELERY_APP} inspect ping --timeout 10 --destination "celery@${{HOSTNAME}}"']
    raise ValueError(f"no health check for {service!r}")


HEALTHCHECKS: dict[str, list[str]] = {name: healthcheck(name) for name in (*COMPONENTS, "mlflow")}

# --- environment -------------------------------------------------------------------------------

#: What docker-compose.yml passes for the parameters of production_env / mlflow_server_env:
#: references Compose fills in from .env (`:?` = required, `:-` = default).
COMPOSE_SETTINGS: dict[str, str] = {
    "postgres_user": "${POSTGRES_USER:-ctflow}",
    "postgres_password": "${POSTGRES_PASSWORD:?set it in .env}",
    "redis_password": "${REDIS_PASSWORD:?set it in .env}",
    "fernet_key": "${AIRFLOW_FERNET_KEY:?set it in .env}",
    "jwt_secret": "${AIRFLOW_JWT_SECRET:?set it in .env}",
    "api_secret_key": "${AIRFLOW_API_SECRET_KEY:?set it in .env}",
    "worker_concurrency": "${CTFLOW_WORKER_CONCURRENCY:-4}",
}
COMPOSE_MLFLOW_SETTINGS: dict[str, str] = {
    "postgres_user": COMPOSE_SETTINGS["postgres_user"],
    "postgres_password": COMPOSE_SETTINGS["postgres_password"],
    "allowed_hosts": "${MLFLOW_ALLOWED_HOSTS:-mlflow:5000,localhost:*,127.0.0.1:*}",
}

_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}$")


def _userinfo(value: str) -> str:
    """A user name or password for a URI: quoted, unless it is a ``${VAR}`` reference for Compose."""
    return value if _REFERENCE.match(value) else quote(value, safe="")


class PostgresLogin(TypedDict):
    """Where and as whom :func:`postgres_uri` connects: every argument but the database."""

    user: str
    password: str
    host: str
    port: int | str


def postgres_uri(*, user: str, password: str, host: str, port: int | str, database: str,
                 driver: str = PG_DRIVER) -> str:
    """A SQLAlchemy URI of a PostgreSQL database (an empty password: trust or peer auth)."""
    auth = _userinfo(user) + (f":{_userinfo(password)}" if password else "")
    return f"{driver}://{auth}@{host}:{port}/{database}"


def redis_url(*, host: str, port: int | str, db: int | str, password: str | None = None) -> str:
    """A ``redis://`` URL (Celery's broker)."""
    auth = f":{_userinfo(password)}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


def feast_redis_connection_string(*, host: str, port: int | str, db: int | str, password: str | None = None) -> str:
    """Feast's ``host:port,db=N,password=P`` (comma-separated, so a password may not hold a comma)."""
    if password and "," in password:
        raise ValueError("Feast's Redis connection string cannot carry a password with a comma")
    return f"{host}:{port},db={db}" + (f",password={password}" if password else "")


def production_env(
    *,
    postgres_password: str,
    fernet_key: str,
    jwt_secret: str,
    api_secret_key: str,
    postgres_host: str = POSTGRES_HOST,
    postgres_port: int | str = POSTGRES_PORT,
    postgres_user: str = "ctflow",
    airflow_db: str = "airflow",
    ctflow_db: str = "ctflow",
    redis_host: str = REDIS_HOST,
    redis_port: int | str = REDIS_PORT,
    redis_password: str | None = None,
    broker_redis_db: int | str = 0,
    feast_redis_db: int | str = 1,
    api_host: str = API_SERVER_HOST,
    api_port: int | str = API_SERVER_PORT,
    mlflow_host: str = MLFLOW_HOST,
    mlflow_port: int | str = MLFLOW_PORT,
    project_dir: str | PurePath = APP_DIR,
    ctflow_home: str | PurePath = CTFLOW_HOME_DIR,
    airflow_home: str | PurePath = AIRFLOW_HOME_DIR,
    logs_dir: str | PurePath = AIRFLOW_LOGS_DIR,
    worker_concurrency: int | str = 4,
) -> dict[str, str]:
    """The environment of every Airflow container (api-server, scheduler, dag-processor,
    triggerer, worker, init): all of them get the same, so that none can disagree.

    Secrets are parameters, never defaults: ``fernet_key`` encrypts connection passwords and
    variables in the database; ``jwt_secret`` signs the tokens the scheduler hands to task
    processes and the api-server checks (so it must be the same everywhere); ``api_secret_key``
    signs the UI's session cookies. ``postgres_password`` may be empty (local trust auth).
    """
    project = PurePath(project_dir)
    pg = PostgresLogin(user=postgres_user, password=postgres_password, host=postgres_host, port=postgres_port)
    return {
        # Airflow
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        # Task processes on the workers talk to the api-server, not to the database.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{api_host}:{api_port}/execution/",
        "AIRFLOW__API__SECRET_KEY": api_secret_key,
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__FAB__CONFIG_FILE": str(project / "deploy" / "airflow" / "webserver_config.py"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_uri(**pg, database=airflow_db),
        "AIRFLOW__CELERY__BROKER_URL": redis_url(host=redis_host, port=redis_port, db=broker_redis_db,
                                                 password=redis_password),
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres_uri(**pg, database=airflow_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": CELERY_CONFIG_OPTIONS,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs_dir),
        # ctflow's connections (ctflow.hooks): as variables, identical in every container.
        "AIRFLOW_CONN_CTFLOW_MLFLOW": json.dumps({"conn_type": "http", "host": mlflow_host, "port": int(mlflow_port)}),
        "AIRFLOW_CONN_CTFLOW_FEAST": json.dumps({"conn_type": "generic",
                                                 "extra": {"repo_path": str(project / "feature_repo")}}),
        # ctflow outside Airflow (`ctflow rollback`, `ctflow history` in a container) finds the same.
        "MLFLOW_TRACKING_URI": f"http://{mlflow_host}:{mlflow_port}",
        "CTFLOW_PROJECT": str(project),
        "CTFLOW_HOME": str(ctflow_home),
        "CTFLOW_FEATURE_REPO": str(project / "feature_repo"),
        # Registry changes (new version, alias move) are serialized by a PostgreSQL advisory lock
        # that workers on every host see (ctflow.core.registry_lock.lock_for), not a file lock.
        "CTFLOW_LOCK_URL": postgres_uri(**pg, database=ctflow_db),
        # What the monitoring DAG scored, and each model's performance (ctflow.core.predictions).
        "CTFLOW_PREDICTIONS_URL": postgres_uri(**pg, database=ctflow_db),
        # Feast: the production configuration, and what its ${...} references resolve to.
        "FEAST_FS_YAML_FILE_PATH": str(project / "feature_repo" / FEAST_PRODUCTION_YAML),
        "CTFLOW_FEAST_REGISTRY_URI": postgres_uri(**pg, database=ctflow_db),
        "CTFLOW_FEAST_REDIS": feast_redis_connection_string(host=redis_host, port=redis_port, db=feast_redis_db,
                                                            password=redis_password),
    }


def mlflow_server_env(
    *,
    postgres_password: str,
    postgres_host: str = POSTGRES_HOST,
    postgres_port: int | str = POSTGRES_PORT,
    postgres_user: str = "ctflow",
    mlflow_db: str = "mlflow",
    allowed_hosts: str = f"{MLFLOW_HOST}:{MLFLOW_PORT},localhost:*,127.0.0.1:*",
) -> dict[str, str]:
    """The environment of the MLflow server.

    ``allowed_hosts``: the Host headers MLflow answers (its DNS-rebinding protection rejects
    any other with 403, and its default, localhost and private IPs, does not include the
    Compose service name ``mlflow`` the workers use). Add the public name when exposing it.
    """
    return {
        "MLFLOW_BACKEND_STORE_URI": postgres_uri(user=postgres_user, password=postgres_password, host=postgres_host,
                                                 port=postgres_port, database=mlflow_db),
        "MLFLOW_SERVER_ALLOWED_HOSTS": allowed_hosts,
        # No background job runner (GenAI scorers, prompt optimization: none of which ctflow uses);
        # it would start half a dozen more processes beside the server.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


# --- init --------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def init_commands(env: Mapping[str, str]) -> list[list[str]]:
    """:data:`INIT_COMMANDS` with every ``${NAME}`` replaced by ``env[NAME]``.

    :raises KeyError: naming every variable that ``env`` lacks or has empty.
    """
    missing = sorted({name for argv in INIT_COMMANDS for arg in argv for name in _PLACEHOLDER.findall(arg)
                      if not env.get(name)})
    if missing:
        raise KeyError(f"init needs these environment variables: {', '.join(missing)}")
    return [[_PLACEHOLDER.sub(lambda m: env[m.group(1)], arg) for arg in argv] for argv in INIT_COMMANDS]


def run_init(env: Mapping[str, str] | None = None) -> int:
    """Run :data:`INIT_COMMANDS` in order with ``env`` (default: this process's); stop at the first failure."""
    env = dict(os.environ if env is None else env)
    for argv, template in zip(init_commands(env), INIT_COMMANDS, strict=True):
        # Print the template, not the argv: the latter holds the admin password.
        print(f"init: {' '.join(template)}", flush=True)
        code = subprocess.run(argv, env=env).returncode
        if code != 0:
            print(f"init: failed with exit code {code}: {' '.join(template)}", file=sys.stderr, flush=True)
            return code
    print("init: done", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["init"]:
        return run_init()
    print("usage: python -m ctflow.deploy.topology init", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
