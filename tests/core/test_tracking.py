"""MLflow plumbing on a real SQLite tracking store: runs left behind by killed tries."""

from __future__ import annotations

import os

import pytest

from ctflow.contract import mlflow_tags
from ctflow.core import tracking


@pytest.fixture(autouse=True)
def _restore_fluent_tracking_uri():
    yield
    import mlflow

    # tracking.client() sets MLflow's process-global URI; later modules expect the session's.
    if os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


@pytest.mark.integration
def test_client_leaves_the_process_environment_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///configured.db")
    tracking.client(f"sqlite:///{tmp_path / 'other.db'}")
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///configured.db"  # what children inherit
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    tracking.client(f"sqlite:///{tmp_path / 'other.db'}")
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ


@pytest.mark.integration
def test_a_killed_tries_running_run_is_marked_failed_and_finished_runs_are_kept(tmp_path):
    client = tracking.client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracking.ensure_experiment(client, "abandoned")
    tags = {mlflow_tags.RUN_KEY: "ct_abandoned/run1", mlflow_tags.STAGE: "candidate"}
    killed = client.create_run(experiment, tags=tags).info.run_id  # never terminated: its worker died
    other = client.create_run(experiment, tags={**tags, mlflow_tags.RUN_KEY: "ct_abandoned/run2"}).info.run_id
    finished = client.create_run(experiment, tags=tags).info.run_id
    client.set_terminated(finished)

    assert tracking.fail_abandoned_runs(client, experiment, "ct_abandoned/run1", "candidate") == [killed]
    assert client.get_run(killed).info.status == "FAILED"
    assert client.get_run(killed).data.tags[mlflow_tags.ABANDONED]
    assert client.get_run(finished).info.status == "FINISHED"
    assert client.get_run(other).info.status == "RUNNING"  # another DAG run's try: not ours to end
    assert tracking.find_run(client, experiment, "ct_abandoned/run1", "candidate").info.run_id == finished
    assert tracking.fail_abandoned_runs(client, experiment, "ct_abandoned/run1", "candidate") == []


def test_code_version_is_the_commit_or_the_one_an_image_was_built_from(monkeypatch, tmp_path):
    import subprocess

    from tests.conftest import PROJECT

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True).stdout.strip()
    tracking.code_version.cache_clear()
    monkeypatch.delenv("CTFLOW_CODE_VERSION", raising=False)
    assert tracking.code_version(str(PROJECT)).removesuffix("-dirty") == head
    assert tracking.code_version(str(tmp_path)) == "unknown"  # no .git, as in an image
    monkeypatch.setenv("CTFLOW_CODE_VERSION", "0123abc")
    tracking.code_version.cache_clear()
    assert tracking.code_version(str(tmp_path)) == tracking.code_version(str(PROJECT)) == "0123abc"
    monkeypatch.setenv("CTFLOW_CODE_VERSION", "unknown")  # the build argument's default
    tracking.code_version.cache_clear()
    assert tracking.code_version(str(tmp_path)) == "unknown"
    tracking.code_version.cache_clear()
