"""The production topology's files agree with each other and with ``ctflow.deploy.topology``.

Fast and without Docker: docker-compose.yml, .env.example, the Dockerfile, .dockerignore and
the production Feast configuration are read as text/YAML and checked against the module that
a native harness runs the same processes from. ``docker compose config`` (or docker-compose
1.29's) runs too when Compose is there (it needs no engine); under ``CI=true`` it must be.
``tests/production/test_compose_up.py`` starts the stack for real.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctflow.deploy import topology

PROJECT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT / ".env.example"
DOCKERFILE = PROJECT / "Dockerfile"
DOCKERIGNORE = PROJECT / ".dockerignore"
FEAST_PRODUCTION = PROJECT / "feature_repo" / topology.FEAST_PRODUCTION_YAML
FEAST_DEV = PROJECT / "feature_repo" / "feature_store.yaml"
#: ctflow's ASOF offline store, which both configurations select (tests/core/test_asof_store.py proves it).
ASOF_STORE = "ctflow.core.feast_asof.store.AsofDuckDBOfflineStore"

AIRFLOW_SERVICES = [*topology.COMPONENTS, "init"]
#: Compose variable references: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}.
REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|(?<![A-Z])KEY$|_KEY(?:_|$)|AUTH$", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text) -> dict:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example:{number}: not NAME=value: {line!r}"
        values[name.strip()] = value.strip()
    return values


def _unescape(value: str) -> str:
    """What Compose makes of ``$$``: a literal ``$`` for the container."""
    return value.replace("$$", "$")


def _strings(node):
    """Every string in a YAML tree, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _references(text: str) -> set[str]:
    """Names Compose interpolates (``$${X}`` is an escaped literal for the container, not one)."""
    return {m.group("name") for m in REFERENCE.finditer(text.replace("$$", ""))}


# --- the compose file's shape ------------------------------------------------------------------


def test_compose_file_parses_with_the_expected_services(compose, services):
    assert "version" not in compose, "the Compose specification has no version key"
    assert set(services) == {"postgres", "redis", "init", "mlflow", *topology.COMPONENTS}
    # The official images by default; the Debian-built ones of `make images` where no registry is.
    assert services["postgres"]["image"] == "${POSTGRES_IMAGE:-postgres:16}"
    assert services["redis"]["image"] == "${REDIS_IMAGE:-redis:7}"


def test_compose_file_works_with_docker_compose_1_29(compose):
    """No top-level ``name:`` (docker-compose 1.29 rejects it): COMPOSE_PROJECT_NAME in .env names the project."""
    assert "name" not in compose


def test_every_dependency_exists_and_waits_on_a_condition(services):
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs the long form, with conditions"
        for target, spec in depends_on.items():
            assert target in services, f"{name} depends on {target!r}, which is not a service"
            assert spec.get("condition") in ("service_healthy", "service_completed_successfully"), (
                f"{name} -> {target}: condition {spec.get('condition')!r} does not wait for readiness"
            )


def test_services_depended_on_have_health_checks(services):
    """A service others wait for is healthy (healthcheck) or has completed (the one-shot init)."""
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            if spec["condition"] == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), f"{name} waits for {target}'s health check"
            else:
                assert services[target].get("restart") == "no", f"{target} is waited for to complete: a one-shot"


def test_every_long_running_service_has_a_health_check(services):
    for name, service in services.items():
        if name != "init":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_airflow_services_start_after_init(services):
    for name in topology.COMPONENTS:
        depends_on = services[name]["depends_on"]
        assert depends_on["init"]["condition"] == "service_completed_successfully", name
        assert {"postgres", "redis"} <= set(depends_on), name
    assert {"api-server", "mlflow"} <= set(services["worker"]["depends_on"])


def test_worker_is_scalable(services, compose):
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container_name forbids --scale worker=N"
    assert "ports" not in worker, "a published host port forbids --scale worker=N"
    assert not any("container_name" in service for service in services.values())


def test_named_volumes_are_declared_and_used(services, compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
            if source.startswith((".", "/", "~")):
                assert (PROJECT / source).exists() if source.startswith(".") else True, f"{name}: {source} missing"
                continue
            assert source in declared, f"{name} mounts volume {source!r}, not declared under volumes:"
            used.add(source)
    assert declared == used, f"declared but unused volumes: {sorted(declared - used)}"
    assert {"postgres-data", "mlflow-artifacts", "ctflow-home"} <= declared


def test_shared_state_is_mounted_where_topology_puts_it(services):
    mounts = {name: {m.split(":")[1] for m in services[name].get("volumes", [])} for name in services}
    for name in AIRFLOW_SERVICES:
        assert {topology.CTFLOW_HOME_DIR, topology.AIRFLOW_LOGS_DIR} <= mounts[name], name
    assert topology.MLFLOW_ARTIFACTS_DIR in mounts["mlflow"]


def test_one_image_built_from_the_dockerfile(services):
    images = {services[name]["image"] for name in [*AIRFLOW_SERVICES, "mlflow"]}
    assert len(images) == 1, f"Airflow, init and MLflow should run one image, not {images}"
    for name in [*AIRFLOW_SERVICES, "mlflow"]:
        build = services[name]["build"]
        assert (PROJECT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


# --- commands, health checks and environment are the topology's ------------------------------


def test_commands_are_the_topology_commands(services):
    for name, argv in topology.AIRFLOW_COMPONENTS.items():
        assert services[name]["command"] == argv, name
    assert services["mlflow"]["command"] == topology.MLFLOW_SERVER
    assert services["init"]["command"] == topology.INIT


def test_health_checks_are_the_topology_health_checks(services):
    for name, argv in topology.HEALTHCHECKS.items():
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD", f"{name}: exec form, as topology.healthcheck returns argv"
        assert [_unescape(arg) for arg in test[1:]] == argv, name


def test_airflow_environment_is_production_env(services):
    expected = topology.production_env(**topology.COMPOSE_SETTINGS)
    admin = {"AIRFLOW_ADMIN_USERNAME", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_ADMIN_EMAIL"}
    for name in AIRFLOW_SERVICES:
        environment = dict(services[name]["environment"])
        if name == "init":
            assert admin <= set(environment), "init creates the admin user from these"
            environment = {key: value for key, value in environment.items() if key not in admin}
        assert environment == expected, f"{name}: differs from production_env(**COMPOSE_SETTINGS)"


def test_mlflow_environment_is_mlflow_server_env(services):
    assert services["mlflow"]["environment"] == topology.mlflow_server_env(**topology.COMPOSE_MLFLOW_SETTINGS)


def test_init_has_every_variable_its_commands_need(services):
    environment = {key: str(value) for key, value in services["init"]["environment"].items()}
    commands = topology.init_commands(environment)  # raises KeyError naming what is missing
    assert commands[0] == ["airflow", "db", "migrate"]
    assert commands[-1][-1] == f"{topology.APP_DIR}/feature_repo/bootstrap.py"


def test_compose_files_referenced_from_the_environment_exist(services):
    environment = topology.production_env(**topology.COMPOSE_SETTINGS)
    in_repo = {
        environment["AIRFLOW__FAB__CONFIG_FILE"],
        environment["FEAST_FS_YAML_FILE_PATH"],
        environment["AIRFLOW__CORE__DAGS_FOLDER"],
        environment["CTFLOW_FEATURE_REPO"] + "/bootstrap.py",
    }
    for path in in_repo:
        relative = Path(path).relative_to(topology.APP_DIR)
        assert (PROJECT / relative).exists(), f"{path} is not in the project ({relative})"


def test_postgres_init_script_creates_the_databases_the_uris_use(services):
    script = (PROJECT / "deploy" / "postgres" / "init-databases.sh").read_text()
    listed = set(re.search(r"for database in ([a-z_ ]+); do", script).group(1).split())
    environment = topology.production_env(**topology.COMPOSE_SETTINGS)
    mlflow_env = topology.mlflow_server_env(**topology.COMPOSE_MLFLOW_SETTINGS)
    uris = [environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], environment["CTFLOW_FEAST_REGISTRY_URI"],
            mlflow_env["MLFLOW_BACKEND_STORE_URI"]]
    assert {uri.rsplit("/", 1)[1] for uri in uris} == listed == {"airflow", "mlflow", "ctflow"}


# --- variables and secrets -------------------------------------------------------------------


def test_every_dollar_is_a_reference_or_escaped(compose_text):
    """What ``docker compose config`` would reject: a bare ``$`` that is neither ``$$`` nor ``${...}``."""
    for number, line in enumerate(compose_text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        stripped = REFERENCE.sub("", line.replace("$$", ""))
        assert "$" not in stripped, f"docker-compose.yml:{number}: unescaped $ in {line.strip()!r}"


def _compose_references(compose) -> set[str]:
    """Variables Compose interpolates: in the parsed values (comments are not interpolated)."""
    return set().union(*(_references(value) for value in _strings(compose)))


#: Compose's own settings, which .env may hold but the file does not reference.
COMPOSE_OWN = {"COMPOSE_PROJECT_NAME"}


def test_every_variable_is_documented_in_env_example(compose, env_example):
    used = _compose_references(compose) | COMPOSE_OWN
    undocumented = used - set(env_example)
    assert not undocumented, f"used in docker-compose.yml but not in .env.example: {sorted(undocumented)}"
    unused = set(env_example) - used
    assert not unused, f"in .env.example but not used by docker-compose.yml: {sorted(unused)}"


def test_secrets_are_required_and_have_no_committed_value(compose, env_example):
    for name, value in env_example.items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example gives {name} a value: secrets are left empty"
    matches = [m for value in _strings(compose) for m in REFERENCE.finditer(value.replace("$$", ""))]
    assert matches
    for match in matches:
        if SECRET_NAME.search(match.group("name")):
            assert match.group("op") == ":?", (
                f"${{{match.group('name')}}} must be required (${{{match.group('name')}:?...}}), never defaulted"
            )


def test_no_literal_secret_in_the_compose_file(compose):
    for value in _strings(compose):
        literal = REFERENCE.sub("", _unescape(value))
        # Passwords inside URIs (scheme://user:password@host) and key=value strings.
        for password in re.findall(r"://[^/@\s:]*:([^@/\s]+)@", literal):
            pytest.fail(f"a literal password in {value!r}: {password!r}")
        assert not re.search(r"(?i)password=[^,\s]", literal), f"a literal password in {value!r}"
        # Anything that looks like a generated key or token.
        for token in re.findall(r"[A-Za-z0-9+/=_-]{32,}", literal):
            if re.search(r"\d", token) and re.search(r"[A-Za-z]", token):
                pytest.fail(f"this looks like a committed secret: {token!r} in {value!r}")
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert REFERENCE.search(str(value)), f"{name}: {key} must come from .env"


# --- image -----------------------------------------------------------------------------------


def test_dockerfile_installs_from_the_lock_as_a_non_root_user():
    text = DOCKERFILE.read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    # The base is a build argument whose default is the official image (`make images` passes
    # the Debian-built one).
    assert instructions[0] == "ARG PYTHON_IMAGE=python:3.11-slim", instructions[0]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert froms == ["FROM ${PYTHON_IMAGE}"], froms  # one stage: the environment is written once
    assert "--mount=" not in text and not text.startswith("# syntax"), "BuildKit-only syntax breaks the legacy builder"
    assert "ENV CTFLOW_CODE_VERSION=${GIT_COMMIT}" in instructions, "the code version is baked in"
    assert "uv sync --frozen --no-dev" in text, "the image installs exactly uv.lock, without dev tools"
    assert "uv lock" not in text and "uv pip install" not in text and "pip install -r" not in text
    # uv is installed, used and removed in one RUN (one layer): no uv, no pip cache in the image.
    logical = re.sub(r"\\\n\s*", " ", "\n".join(instructions)).splitlines()  # continuation lines joined
    install = next(line for line in logical if line.startswith("RUN ") and "uv sync" in line)
    assert "rm -rf /opt/uv" in install and "--no-cache-dir" in install and "UV_NO_CACHE=1" in install, install
    lock_copy = next(i for i, line in enumerate(instructions) if line.startswith("COPY") and "uv.lock" in line)
    project_copy = next(i for i, line in enumerate(instructions) if line.startswith("COPY . "))
    first_sync = next(i for i, line in enumerate(instructions) if "uv sync" in line)
    assert lock_copy < first_sync < project_copy, "dependencies in their own layer, before the code is copied"
    user = [line for line in instructions if line.startswith("USER ")]
    assert user and user[-1].split()[1] not in ("root", "0"), "runs as a non-root user"
    assert re.search(r"^ENV PATH=/app/\.venv/bin:\$PATH", text, re.MULTILINE)
    assert re.search(r"^LABEL org\.opencontainers\.image\.", text, re.MULTILINE)
    for line in instructions:
        if line.startswith(("ENV", "ARG")):
            assert not re.search(r"(?i)(password|secret|token|fernet)", line), f"a secret baked into the image: {line}"


def test_dockerignore_keeps_secrets_and_local_state_out():
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {".env", ".git", ".venv", ".ctflow", "feature_repo/data"} <= patterns
    # ...but not what the image needs.
    for needed in ("dags", "plugins", "feature_repo", "include", "deploy", "pyproject.toml", "uv.lock", "README.md"):
        assert needed not in patterns, f"{needed} is needed in the image"


# --- Feast ---------------------------------------------------------------------------------


def test_production_feast_config_keeps_the_project_and_moves_the_state():
    production = yaml.safe_load(FEAST_PRODUCTION.read_text())
    dev = yaml.safe_load(FEAST_DEV.read_text())
    assert production["project"] == dev["project"]
    assert production["provider"] == dev["provider"]
    assert production["entity_key_serialization_version"] == dev["entity_key_serialization_version"]
    assert production["registry"]["registry_type"] == "sql"
    assert production["online_store"]["type"] == "redis"
    assert production["offline_store"]["type"] == dev["offline_store"]["type"] == ASOF_STORE


def test_production_feast_config_variables_are_set_by_production_env():
    """Feast expands ${VAR} with os.path.expandvars: an unset one stays literal, and no defaults."""
    text = FEAST_PRODUCTION.read_text()
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    names = _references(body)
    assert names, "hosts and passwords come from the environment"
    assert not any(m.group("op") for m in REFERENCE.finditer(body)), "os.path.expandvars has no ${VAR:-default}"
    environment = topology.production_env(postgres_password="pw", fernet_key="f", jwt_secret="j", api_secret_key="a")
    assert names <= set(environment), f"not set by production_env: {sorted(names - set(environment))}"


def test_production_feast_config_loads_in_feast(monkeypatch, tmp_path):
    repo_config = pytest.importorskip("feast.repo_config")
    # Feast's Redis online store needs the redis client: feast[redis] in the project's dependencies.
    pytest.importorskip("redis", reason="the redis client is not installed: the production stack needs feast[redis]")
    environment = topology.production_env(postgres_password="p@ss/word", redis_password="r3dis",
                                          fernet_key="f", jwt_secret="j", api_secret_key="a")
    for name in ("CTFLOW_FEAST_REGISTRY_URI", "CTFLOW_FEAST_REDIS"):
        monkeypatch.setenv(name, environment[name])
    config = repo_config.load_repo_config(FEAST_PRODUCTION.parent, FEAST_PRODUCTION)
    assert config.registry.registry_type == "sql"
    assert config.registry.path == "postgresql+psycopg2://ctflow:p%40ss%2Fword@postgres:5432/ctflow"
    assert config.online_store.connection_string == "redis:6379,db=1,password=r3dis"
    assert config.offline_store.type == ASOF_STORE


# --- the topology module itself ----------------------------------------------------------------


def test_topology_imports_without_heavy_dependencies():
    code = ("import sys; import ctflow.deploy.topology; "
            "heavy = [m for m in ('airflow', 'mlflow', 'feast', 'pandas', 'sklearn', 'yaml', 'pydantic') if m in sys.modules]; "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_native_harness_gets_its_own_hosts_ports_and_paths(tmp_path):
    environment = topology.production_env(
        postgres_host="127.0.0.1", postgres_user="postgres", postgres_password="", airflow_db="t_airflow",
        ctflow_db="t_ctflow", redis_host="127.0.0.1", redis_port=6390, broker_redis_db=5, feast_redis_db=6,
        api_host="127.0.0.1", api_port=18080, mlflow_host="127.0.0.1", mlflow_port=15000, project_dir=tmp_path,
        ctflow_home=tmp_path / "home", airflow_home=tmp_path / "airflow", logs_dir=tmp_path / "logs",
        fernet_key="f", jwt_secret="j", api_secret_key="a",
    )
    assert environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://postgres@127.0.0.1:5432/t_airflow"
    assert environment["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6390/5"
    assert environment["CTFLOW_FEAST_REDIS"] == "127.0.0.1:6390,db=6"
    assert environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert environment["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:15000"
    assert environment["CTFLOW_HOME"] == str(tmp_path / "home")
    assert environment["FEAST_FS_YAML_FILE_PATH"] == str(tmp_path / "feature_repo" / topology.FEAST_PRODUCTION_YAML)
    assert all(isinstance(value, str) for value in environment.values()), "an environment holds strings"
    assert topology.airflow_command("api-server", port=18080) == ["airflow", "api-server", "--port", "18080"]
    assert topology.mlflow_server_command(host="127.0.0.1", port=15000, artifacts_destination=tmp_path)[-1] == str(tmp_path)
    assert topology.healthcheck("api-server", port=18080)[-1] == "http://localhost:18080/api/v2/monitor/health"


def test_passwords_are_quoted_into_uris():
    environment = topology.production_env(postgres_password="p@ss:w/rd", redis_password="r@dis",
                                          fernet_key="f", jwt_secret="j", api_secret_key="a")
    assert environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://ctflow:p%40ss%3Aw%2Frd@postgres:5432/airflow"
    assert environment["AIRFLOW__CELERY__BROKER_URL"] == "redis://:r%40dis@redis:6379/0"
    with pytest.raises(ValueError, match="comma"):
        topology.feast_redis_connection_string(host="redis", port=6379, db=1, password="a,b")


def test_init_commands_name_every_missing_variable():
    with pytest.raises(KeyError, match="AIRFLOW_ADMIN_EMAIL, AIRFLOW_ADMIN_PASSWORD"):
        topology.init_commands({"AIRFLOW_ADMIN_USERNAME": "admin", "CTFLOW_PROJECT": "/app", "AIRFLOW_ADMIN_PASSWORD": ""})
    commands = topology.init_commands({"AIRFLOW_ADMIN_USERNAME": "root", "AIRFLOW_ADMIN_PASSWORD": "pw",
                                       "AIRFLOW_ADMIN_EMAIL": "a@b.c", "CTFLOW_PROJECT": "/srv/ctflow"})
    create_user = commands[1]
    assert create_user[create_user.index("--username") + 1] == "root"
    assert create_user[create_user.index("--password") + 1] == "pw"
    assert commands[2] == ["python", "/srv/ctflow/feature_repo/bootstrap.py"]


def test_unknown_components_are_refused():
    with pytest.raises(ValueError, match="unknown Airflow component"):
        topology.airflow_command("webserver")
    with pytest.raises(ValueError, match="no health check"):
        topology.healthcheck("postgres")


# --- docker compose config (Compose v2 or docker-compose 1.29) -----------------------------------


def test_docker_compose_config_validates(env_example, tmp_path):
    """``docker compose config`` parses and interpolates the file; it needs no Docker engine."""
    from tests.production.containers import require_compose

    compose = require_compose()
    filled = {name: value or f"test-{name.lower()}" for name, value in env_example.items()}
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in filled.items()))
    base = [*compose, "--project-directory", str(PROJECT), "-f", str(COMPOSE_FILE)]
    clean_env = {key: value for key, value in os.environ.items() if key not in env_example}

    result = subprocess.run([*base, "--env-file", str(env_file), "config"], capture_output=True, text=True,
                            timeout=60, env=clean_env)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)["services"]
    assert rendered["postgres"]["image"] == "postgres:16" and rendered["redis"]["image"] == "redis:7"
    assert rendered["worker"]["build"]["args"]["PYTHON_IMAGE"] == "python:3.11-slim"

    # The air-gapped route: the images `make images` builds, through the same variables.
    offline = tmp_path / "offline.env"
    offline.write_text(env_file.read_text() + "POSTGRES_IMAGE=ctflow-base/postgres:15\nREDIS_IMAGE=ctflow-base/redis:7\n"
                       "PYTHON_IMAGE=ctflow-base/python:3.11\n")
    result = subprocess.run([*base, "--env-file", str(offline), "config"], capture_output=True, text=True,
                            timeout=60, env=clean_env)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)["services"]
    assert rendered["postgres"]["image"] == "ctflow-base/postgres:15"
    assert rendered["init"]["build"]["args"]["PYTHON_IMAGE"] == "ctflow-base/python:3.11"

    # Without the secrets, Compose refuses and says where to set them.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = subprocess.run([*base, "--env-file", str(empty), "config", "--quiet"], capture_output=True, text=True,
                            timeout=60, env=clean_env)
    assert result.returncode != 0 and "set it in .env" in result.stderr


# --- the native harness runs the same commands ----------------------------------------------


def test_native_harness_runs_the_compose_commands(services):
    """tests/production/native.py starts every service with its compose command, plus only the
    arguments one host needs (NATIVE_EXTRA_ARGS), with this host's ports and folders."""
    from tests.production import native

    planned = native.native_commands(api_port=topology.API_SERVER_PORT, mlflow_port=topology.MLFLOW_PORT,
                                     artifacts_dir=topology.MLFLOW_ARTIFACTS_DIR, mlflow_host="0.0.0.0")
    assert set(planned) == {"init", "mlflow", *(c for c in topology.COMPONENTS if c != "worker"), *native.WORKERS}
    for name, (argv, extra) in planned.items():
        service = "worker" if name in native.WORKERS else name
        assert argv == services[service]["command"], name
        assert extra[:len(native.NATIVE_EXTRA_ARGS.get(service, ()))] == list(native.NATIVE_EXTRA_ARGS.get(service, ())), name
    assert len(native.WORKERS) >= 2 and len({planned[w][1][-1] for w in native.WORKERS}) == len(native.WORKERS)
    # Its environment is production_env's, with host-only overrides that compose leaves alone.
    overrides = native.native_overrides(dags_folder=Path("/tmp/dags"))
    compose_env = services["worker"]["environment"]
    assert set(overrides) & set(compose_env) == {"AIRFLOW__CORE__DAGS_FOLDER"}
