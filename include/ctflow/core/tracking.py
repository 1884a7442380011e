"""MLflow plumbing: one experiment per pipeline, explicit URIs, lineage that reproduces a run."""

from __future__ import annotations

import hashlib
import os
import subprocess
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow import MlflowClient

from ctflow import settings
from ctflow.contract import mlflow_tags

if TYPE_CHECKING:
    from mlflow.entities import Run


def experiment_name(pipeline: str) -> str:
    return f"ctflow/{pipeline}"


def client(tracking_uri: str | None = None) -> MlflowClient:
    uri = tracking_uri or settings.mlflow_tracking_uri()
    # The fluent API (start_run, log_model) reads MLflow's process-global URI, so set it; but
    # set_tracking_uri also exports MLFLOW_TRACKING_URI to os.environ, where it would outlive
    # this call and become every later caller's and child process's default: put it back.
    exported = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if exported is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = exported
    # No set_registry_uri, for the same reason; unset, the registry follows the tracking URI.
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(mlflow_client: MlflowClient, pipeline: str) -> str:
    """The pipeline's experiment id, created with an explicit artifact location if new."""
    name = experiment_name(pipeline)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if mlflow_client.tracking_uri.startswith("sqlite:"):
        # With a SQLite store MLflow would otherwise write artifacts under the current directory.
        location = f"{settings.mlflow_artifact_root().rstrip('/')}/{pipeline}"
    try:
        return mlflow_client.create_experiment(name, artifact_location=location, tags={mlflow_tags.PIPELINE: pipeline})
    except mlflow.exceptions.MlflowException:
        return mlflow_client.get_experiment_by_name(name).experiment_id  # created by a concurrent run


def find_run(mlflow_client: MlflowClient, experiment_id: str, run_key: str, stage: str) -> Run | None:
    """The finished MLflow run of this pipeline run and stage, if an earlier try made one."""
    runs = mlflow_client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{mlflow_tags.RUN_KEY}` = '{run_key}' and tags.`{mlflow_tags.STAGE}` = '{stage}' "
        "and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return runs[0] if runs else None


def fail_abandoned_runs(mlflow_client: MlflowClient, experiment_id: str, run_key: str, stage: str) -> list[str]:
    """Mark ``RUNNING`` runs of this pipeline run and stage ``FAILED``; return their ids.

    A try that was killed (worker lost, timeout) never ends its MLflow run. Airflow runs one try
    of a task at a time, so when a new try starts, a run still marked running is abandoned.
    """
    runs = mlflow_client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{mlflow_tags.RUN_KEY}` = '{run_key}' and tags.`{mlflow_tags.STAGE}` = '{stage}' "
        "and attributes.status = 'RUNNING'",
    )
    for run in runs:
        mlflow_client.set_tag(run.info.run_id, mlflow_tags.ABANDONED, "a later try of this task took over")
        mlflow_client.set_terminated(run.info.run_id, status="FAILED")
    return [run.info.run_id for run in runs]


def latest_training_as_of(mlflow_client: MlflowClient, pipeline: str) -> datetime | None:
    """The data time (:data:`mlflow_tags.AS_OF`) of the pipeline's newest finished training, whatever its gate said."""
    experiment = mlflow_client.get_experiment_by_name(experiment_name(pipeline))
    if experiment is None:
        return None
    runs = mlflow_client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{mlflow_tags.STAGE}` = 'candidate' and attributes.status = 'FINISHED'",
        order_by=[f"tags.`{mlflow_tags.AS_OF}` DESC"],  # ISO 8601 in UTC: text order is time order
        max_results=1,
    )
    value = runs[0].data.tags.get(mlflow_tags.AS_OF) if runs else None
    return datetime.fromisoformat(value) if value else None


@cache
def code_version(root: str | None = None) -> str:
    """The git commit of the project (with ``-dirty`` for local changes), or ``unknown``.

    ``$CTFLOW_CODE_VERSION`` comes first: an image has no ``.git`` and records the commit it
    was built from there (Dockerfile's ``GIT_COMMIT`` build argument).
    """
    pinned = os.environ.get("CTFLOW_CODE_VERSION", "").strip()
    if pinned and pinned != "unknown":
        return pinned
    cwd = Path(root or settings.project_root())
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
