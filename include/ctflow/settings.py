"""Where ctflow keeps its state on the embedded default, and how to find the project.

Every value can be overridden by an environment variable so that the same code runs in a
test, on a laptop and in a container. Airflow connections (see :mod:`ctflow.hooks`) take
precedence over these defaults when ctflow runs inside Airflow.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root when ctflow is installed editable from ``include/``.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def project_root() -> Path:
    """The ctflow project: ``$CTFLOW_PROJECT`` or the checkout this package lives in."""
    return Path(os.environ.get("CTFLOW_PROJECT", _SOURCE_ROOT)).resolve()


def home() -> Path:
    """The data directory of the embedded default (MLflow DB, artifacts, run frames, predictions)."""
    path = Path(os.environ.get("CTFLOW_HOME", project_root() / ".ctflow")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def feature_repo() -> Path:
    """The Feast repository: ``$CTFLOW_FEATURE_REPO`` or ``feature_repo/`` of the project."""
    return Path(os.environ.get("CTFLOW_FEATURE_REPO", project_root() / "feature_repo")).resolve()


def mlflow_tracking_uri() -> str:
    """MLflow tracking URI: ``$MLFLOW_TRACKING_URI`` or a SQLite store in :func:`home`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home() / 'mlflow.db'}"


def mlflow_artifact_root() -> str:
    """Artifact root for experiments ctflow creates on the embedded default."""
    return os.environ.get("CTFLOW_ARTIFACT_ROOT") or (home() / "mlartifacts").as_uri()


def runs_dir() -> Path:
    """Per-run artifacts (training frames, reports) that tasks hand to each other."""
    path = home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_dir(run_key: str) -> Path:
    """The working folder of one DAG run (``dag_id/run_id``), safe as a path on any filesystem."""
    path = runs_dir() / run_key.replace(":", "_").replace("+", "_")
    path.mkdir(parents=True, exist_ok=True)
    return path


#: ``${VAR}`` in a spec may name variables with this prefix, or those listed in ``$CTFLOW_SPEC_ENV_ALLOW``.
SPEC_ENV_PREFIX = "CTFLOW_SPEC_"
#: Parts of a variable name that mark a secret: such a variable is never interpolated, even when listed.
_SECRET_WORDS = {"SECRET", "SECRETS", "PASSWORD", "PASSWD", "PWD", "PASS", "TOKEN", "KEY", "CREDENTIAL",
                 "CREDENTIALS", "PRIVATE", "AUTH", "JWT", "FERNET", "SALT", "CERT"}


def spec_env_refusal(name: str) -> str | None:
    """Why ``${name}`` may not be interpolated into a spec, or None if it may.

    A spec's values are shown to everyone who can see its DAGs or the ctflow view, and they are
    read inside processes that hold secrets (the api-server holds the JWT secret). So a variable
    is interpolated only if the deployment opted it in, by its name (``CTFLOW_SPEC_*``) or by
    listing it in ``$CTFLOW_SPEC_ENV_ALLOW`` (comma-separated), which declares its value fit to
    show; names that look like secrets and Airflow's own variables are refused even then.
    """
    words = set(name.upper().split("_"))
    if name.upper().startswith("AIRFLOW") or words & _SECRET_WORDS:
        return "it looks like a secret or Airflow's configuration, and a spec's values are shown to every viewer"
    listed = {n.strip() for n in os.environ.get("CTFLOW_SPEC_ENV_ALLOW", "").split(",") if n.strip()}
    if name.startswith(SPEC_ENV_PREFIX) or name in listed:
        return None
    return (f"only variables named {SPEC_ENV_PREFIX}* or listed in $CTFLOW_SPEC_ENV_ALLOW are interpolated "
            "(their values are shown to everyone who can see the pipeline)")


def data_roots() -> list[Path]:
    """Folders a spec's paths may lead into: the project, and ``$CTFLOW_DATA_ROOTS`` (``os.pathsep``-separated)."""
    extra = [Path(p).expanduser() for p in os.environ.get("CTFLOW_DATA_ROOTS", "").split(os.pathsep) if p.strip()]
    return [project_root(), *(p.resolve() for p in extra)]
