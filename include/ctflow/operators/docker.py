"""Run a heavy step of a CT run in a container: ``runner: {kind: docker, image: ...}``.

The container runs ``ctflow run-step STEP ...``, whose argv
:func:`ctflow.steps.command.command_for` builds from the step's declaration, and which calls the same
:mod:`ctflow.core.steps` function the in-process operator calls, with the same arguments
(``tests/production/test_docker_runner.py`` checks that, step by step). Only the place
differs: a container of the spec's image, with the dependencies and limits of that image.

The steps hand files to each other through the run folder under ``CTFLOW_HOME``, so the
container mounts it at the path the workers use. What else it needs comes from the worker:

* ``MLFLOW_TRACKING_URI`` (and ``--tracking-uri``): the ``ctflow_mlflow`` connection, resolved
  when the task runs (basic-auth credentials, if any, as private environment);
* ``CTFLOW_PROJECT``, ``CTFLOW_FEATURE_REPO``, ``FEAST_FS_YAML_FILE_PATH``: copied; the Feast
  registry and online-store settings and ``CTFLOW_LOCK_URL`` (which may hold passwords) as
  private environment, which Airflow neither renders nor shows.

Deployment settings (environment of the workers):

* ``CTFLOW_DOCKER_HOME_SOURCE``: what to mount at ``CTFLOW_HOME``: a Docker volume name (e.g.
  ``ctflow_ctflow-home`` under Compose) or a host path; default the same path on the host
  (right for workers that run on the Docker host itself);
* ``CTFLOW_DOCKER_MOUNTS``: more mounts, ``source:target[:ro]`` separated by commas (e.g. the
  feature data volume at ``/app/feature_repo/data``); the spec file must exist at its path in
  the container: it does in ctflow's image, whose DAGs folder is baked in at the same path;
* ``CTFLOW_DOCKER_NETWORK``: the container's network (e.g. the Compose network, so that
  ``mlflow`` and ``postgres`` resolve; ``host`` for services on the host's loopback);
* ``DOCKER_HOST``: the Docker engine (the docker provider's default: the local socket).

A step that refuses its input (a data-quality failure, exit code
:data:`~ctflow.steps.command.EXIT_REFUSED`) or finds a configuration error (exit code
:data:`~ctflow.steps.command.EXIT_CONFIGURATION`: bad arguments, an unknown feature service, a
missing entity file or column, a table a feature view cannot read as declared, by the rule of
:func:`ctflow.exceptions.not_retried`) fails the task without retries, as in process: a retry
would meet the same frame, the same spec or the same table again.

Registration, promotion and rollback stay in the worker: they are quick registry calls that
must answer "skipped" to Airflow, which a container's exit code cannot.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from docker.types import Mount

from ctflow.operators.base import RUN_KEY_TEMPLATE, FinalFailure, airflow_run_context
from ctflow.steps.command import EXIT_CONFIGURATION, EXIT_REFUSED, carried_needs, command_for, command_line
from ctflow.steps.ct import STEPS

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ctflow.spec import PipelineSpec

#: The steps a docker runner runs in a container (the heavy ones: declared ``container=True``).
DOCKER_STEPS = tuple(name for name, step in STEPS.items() if step.container)

#: Copied from the worker's environment into the container.
PASSED_ENV = ("CTFLOW_PROJECT", "CTFLOW_FEATURE_REPO", "FEAST_FS_YAML_FILE_PATH")
#: Copied too, as private environment: they may hold passwords.
PASSED_PRIVATE_ENV = ("CTFLOW_FEAST_REGISTRY_URI", "CTFLOW_FEAST_REDIS", "CTFLOW_LOCK_URL",
                      "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


class CtflowDockerOperator(DockerOperator):
    """
    Run one step of a CT run, ``ctflow run-step STEP``, in a container of ``image``.

    :param step: one of :data:`DOCKER_STEPS`.
    :param spec: the validated pipeline spec.
    :param spec_path: the spec file, at the same path in the container.
    :param image: the container image (the spec's ``runner.image``); it must provide ``ctflow``.
    :param run_key: identifies the DAG run (its folder, its MLflow run). (templated)
    :param mlflow_conn_id: Airflow connection of the MLflow tracking server.
    :param feast_conn_id: Airflow connection naming the Feast repository (the path is the
        worker's, so the container must see the repository at the same path).
    :param ctflow_home: ``CTFLOW_HOME`` in the container; default the worker's.
    :param home_source: what to mount there; default ``$CTFLOW_DOCKER_HOME_SOURCE``, else the
        same path on the Docker host.
    :param kwargs: passed to :class:`~airflow.providers.docker.operators.docker.DockerOperator`.
    """

    template_fields: Sequence[str] = (*DockerOperator.template_fields, "run_key")
    ui_color = "#d6eaf8"
    # Set by DockerOperator.__init__; prepare() extends them per try.
    environment: dict[str, str]
    _private_environment: dict[str, str]

    def __init__(
        self,
        *,
        step: str,
        spec: PipelineSpec,
        spec_path: str | None,
        image: str,
        run_key: str = RUN_KEY_TEMPLATE,
        mlflow_conn_id: str = "ctflow_mlflow",
        feast_conn_id: str = "ctflow_feast",
        ctflow_home: str | None = None,
        home_source: str | None = None,
        **kwargs: Any,
    ) -> None:
        if step not in DOCKER_STEPS:
            raise ValueError(f"step {step!r} does not run in a container; expected one of {', '.join(DOCKER_STEPS)}")
        if not spec_path:
            raise ValueError(f"the docker runner of {spec.pipeline!r} needs the spec's path: the container reads it")
        home = ctflow_home or _worker_home()
        source = home_source or os.environ.get("CTFLOW_DOCKER_HOME_SOURCE") or home
        kwargs.setdefault("mounts", [_mount(source, home), *parse_mounts(os.environ.get("CTFLOW_DOCKER_MOUNTS", ""))])
        kwargs.setdefault("network_mode", os.environ.get("CTFLOW_DOCKER_NETWORK") or None)
        kwargs.setdefault("auto_remove", "success")
        kwargs.setdefault("mount_tmp_dir", False)  # the run folder is the only exchange
        # Every line of the container's output: execute() picks the step's JSON result among
        # them (the provider's last line may be a blank one, or a library's warning on stderr).
        kwargs.setdefault("xcom_all", True)
        super().__init__(
            image=image,
            # What it will run; execute() adds the run-time options (--as-of, --tracking-uri, ...).
            command=command_line(step, spec_path=spec_path, run_key=run_key),
            environment={"CTFLOW_HOME": home, "PYTHONUNBUFFERED": "1", **kwargs.pop("environment", {})},
            **kwargs,
        )
        self.step = step
        self.spec = spec
        self.spec_path = spec_path
        self.run_key = run_key
        self.mlflow_conn_id = mlflow_conn_id
        self.feast_conn_id = feast_conn_id
        self.ctflow_home = home

    def core_command(self, context: Context) -> list[str]:
        """The ``ctflow run-step`` argv of this try: the in-process operator's call, as a command line."""
        from ctflow.hooks.feast import FeastHook
        from ctflow.hooks.mlflow import MlflowHook

        declaration = STEPS[self.step]
        run_context = airflow_run_context(
            context,
            carried_needs(declaration),
            run_key=self.run_key,
            run_dir=_resolved_in_container,  # the container finds its folder from --run-key
            tracking_uri=lambda: MlflowHook(mlflow_conn_id=self.mlflow_conn_id).tracking_uri(),
            feature_repo=lambda: FeastHook(feast_conn_id=self.feast_conn_id).repo_path(self.spec),
            predictions_url=_resolved_in_container,
            spec_text=_resolved_in_container,  # the container reads --spec
        )
        return command_for(declaration, run_context, spec_path=self.spec_path, run_key=self.run_key)

    def prepare(self, context: Context) -> None:
        """Set this try's command and environment (MLflow from the connection, ctflow's from the worker)."""
        self.command = self.core_command(context)
        tracking_uri = self.command[self.command.index("--tracking-uri") + 1]
        self.environment = {**self.environment, "MLFLOW_TRACKING_URI": tracking_uri,
                            **{k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)}}
        # MlflowHook puts a connection's basic-auth credentials into os.environ.
        self._private_environment = {**self._private_environment,
                                     **{k: os.environ[k] for k in PASSED_PRIVATE_ENV if os.environ.get(k)}}

    def execute(self, context: Context) -> dict[str, Any] | str | None:
        self.prepare(context)
        self.log.info("running in %s: %s", self.image, " ".join(self.command))
        try:
            output = super().execute(context)
        except DockerContainerFailedException as err:
            code = container_exit_code(err)
            if code in (EXIT_REFUSED, EXIT_CONFIGURATION):
                refused = code == EXIT_REFUSED
                what = "refused its input" if refused else "found a configuration error"
                said = what_the_step_said(err.logs)
                raise FinalFailure(f"{self.step} {what} (no retries): {err}\n" + "\n".join(said),
                                   kind="refused" if refused else "configuration") from err
            raise
        # The step prints its result as one JSON line, last on stdout: the same XCom as in process.
        return step_result(output)


#: A log record's timestamp (Python logging, MLflow, Airflow's structlog): not what the step printed.
_LOG_RECORD = re.compile(r"^\d{4}[-/]\d\d[-/]\d\d[ T]")


def what_the_step_said(logs: list | None, lines: int = 10) -> list[str]:
    """The last lines a step printed (its refusal's reasons), without the libraries' log records
    (stderr, interleaved with stdout in any order)."""
    texts = [line.decode() if isinstance(line, bytes) else line for line in logs or []]
    return [t for t in texts if isinstance(t, str) and t.strip() and not _LOG_RECORD.match(t)][-lines:]


def step_result(output: Any) -> Any:
    """The last line of a container's output that is a JSON object, else its last non-blank line."""
    lines = output if isinstance(output, list) else [output]
    texts = [line.decode() if isinstance(line, bytes) else line for line in lines if line is not None]
    texts = [text.strip() for text in texts if isinstance(text, str) and text.strip()]
    for text in reversed(texts):
        if text.startswith("{"):
            try:
                return json.loads(text)
            except ValueError:
                continue
    return texts[-1] if texts else None


def container_exit_code(err: DockerContainerFailedException) -> int | None:
    """The exit code in the docker provider's failure (it says ``Docker container failed: {result}``
    with the engine's wait result, ``{'Error': None, 'StatusCode': 3}``, and keeps no attribute)."""
    found = re.search(r"['\"]StatusCode['\"]:\s*(-?\d+)", str(err))
    return int(found.group(1)) if found else None


def parse_mounts(text: str) -> list[Mount]:
    """``source:target[:ro]`` entries separated by commas (``CTFLOW_DOCKER_MOUNTS``) as Mounts."""
    mounts = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        parts = entry.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise ValueError(f"CTFLOW_DOCKER_MOUNTS entry {entry!r}: expected source:target or source:target:ro")
        mounts.append(_mount(parts[0], parts[1], read_only=len(parts) == 3 and parts[2] == "ro"))
    return mounts


def _mount(source: str, target: str, *, read_only: bool = False) -> Mount:
    """A bind mount of a host path, or a volume mount of a named volume (a source without ``/``)."""
    if not PurePosixPath(target).is_absolute():
        raise ValueError(f"mount target {target!r} must be an absolute path in the container")
    kind = "bind" if "/" in source else "volume"
    return Mount(target=target, source=source, type=kind, read_only=read_only)


def _resolved_in_container() -> NoReturn:
    """The resolver of a need the container resolves itself: :func:`carried_needs` never asks the worker for it."""
    raise AssertionError("resolved in the container, never in the worker (see carried_needs)")


def _worker_home() -> str:
    from ctflow import settings

    return str(settings.home())
