"""The Docker engine, Compose and the stack's images, for the tests that run containers.

* :func:`compose_command`: ``docker compose`` (v2 plugin) if the CLI has it, else the
  standalone ``docker-compose`` (Debian's 1.29); None with the reason when neither works.
* :func:`engine_unavailable`: why no Docker engine answers (None: one does).
* :func:`require_engine`: skip with the reason, or under ``CI=true`` fail, like
  :func:`tests.production.native.require` does for PostgreSQL and Redis.
* :func:`stack_images`: ``make images`` once per test session (the offline base images from
  Debian's packages and ctflow's image on them; cached, seconds when nothing changed), and the
  image names to hand to Compose.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.production.native import in_ci

PROJECT = Path(__file__).resolve().parents[2]
#: ctflow's image, as docker-compose.yml names it by default.
CTFLOW_IMAGE = os.environ.get("CTFLOW_TEST_IMAGE", "ctflow:0.1.0")
#: What `make images` builds (deploy/images/build-base.sh) and the compose variables they go to.
BASE_IMAGES = {
    "PYTHON_IMAGE": "ctflow-base/python:3.11",
    "POSTGRES_IMAGE": "ctflow-base/postgres:15",
    "REDIS_IMAGE": "ctflow-base/redis:7",
}


@functools.cache
def compose_command() -> tuple[list[str] | None, str]:
    """(argv prefix of Compose, '') or (None, why there is none)."""
    if shutil.which("docker"):
        result = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return ["docker", "compose"], ""
    if shutil.which("docker-compose"):
        result = subprocess.run(["docker-compose", "version", "--short"], capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return ["docker-compose"], ""
        return None, f"`docker-compose version` failed: {(result.stderr or result.stdout).strip()[:160]}"
    return None, "neither `docker compose` (Compose v2 plugin) nor `docker-compose` is installed"


@functools.cache
def engine_unavailable() -> str | None:
    """None if a Docker engine answers, else why not."""
    try:
        import docker
    except ImportError as err:
        return f"the docker SDK is not installed ({err})"
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as err:  # noqa: BLE001 - any reason is a reason not to run
        return f"no Docker engine reachable (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}: {type(err).__name__})"
    return None


def _skip_or_fail(reason: str) -> None:
    import pytest

    if in_ci():
        pytest.fail(f"{reason}; CI=true, where the Docker engine and Compose must be there", pytrace=False)
    pytest.skip(reason)


def require_compose() -> list[str]:
    """Skip (or, with ``CI=true``, fail) unless Compose is installed; its argv. Needs no engine."""
    argv, reason = compose_command()
    if argv is None:
        _skip_or_fail(reason)
    return argv


def require_engine(*, compose: bool = False) -> list[str] | None:
    """Skip (or, with ``CI=true``, fail) unless an engine answers (and Compose exists); the Compose argv."""
    if reason := engine_unavailable():
        _skip_or_fail(reason)
    if compose:
        argv, reason = compose_command()
        if argv is None:
            _skip_or_fail(reason)
        return argv
    return None


@functools.cache
def stack_images() -> dict[str, str]:
    """``make images`` (cached by the engine and the recipe labels); the compose image variables.

    :raises RuntimeError: with the build's last lines when it fails.
    """
    started = time.monotonic()
    result = subprocess.run(["make", "--no-print-directory", "images"], cwd=PROJECT, capture_output=True, text=True,
                            timeout=3600)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"make images failed ({result.returncode}):\n{output[-4000:]}")
    print(f"make images: {time.monotonic() - started:.0f} s\n{output[-1500:]}", flush=True)
    return {**BASE_IMAGES, "CTFLOW_IMAGE": CTFLOW_IMAGE}
