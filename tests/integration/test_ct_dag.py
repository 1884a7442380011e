"""ct_flight_delay end to end through real Airflow, real Feast and MLflow on SQLite.

One story, in order: a first run promotes; a worse model is gated out and the champion
stays; a forced promotion moves the champion; a rollback run moves it back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from mlflow import MlflowClient

from ctflow.contract import mlflow_tags
from tests.conftest import DAGS_FOLDER, TEST_ENV, asset_events, demo_spec, run_cli, task_states

pytestmark = pytest.mark.integration

FIRST = datetime(2013, 3, 1, tzinfo=UTC)
PROMOTED = "ctflow://flight_delay/promoted"
SPEC = demo_spec()
# A deliberately worse model: passes a lowered floor, loses to any real champion.
WORSE = demo_spec(
    ("sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.tree.DecisionTreeClassifier"),
    ("params: {max_iter: 200, learning_rate: 0.1, max_leaf_nodes: 31}", "params: {max_depth: 1}"),
    ("roc_auc: {min: 0.65}", "roc_auc: {min: 0.5}"),
    ("roc_auc: {min: 0.60}", "roc_auc: {min: 0.5}"),  # the per-airport floor too
)


@pytest.fixture(scope="module")
def registry():
    from ctflow.core.registry import ModelRegistry

    return ModelRegistry("flight_delay")


@pytest.fixture(scope="module")
def first_run(airflow_db, feature_repo_ready):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_FOLDER)).get_dag("ct_flight_delay")
    return dag.test(logical_date=FIRST)


def _dags_test(folder, date: str, conf: dict | None = None):
    args = ["airflow", "dags", "test", "ct_flight_delay", date]
    if conf:
        args += ["--conf", json.dumps(conf)]
    result = run_cli(*args, env={"AIRFLOW__CORE__DAGS_FOLDER": str(folder)}, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


def _candidate_runs() -> list:
    client = MlflowClient(TEST_ENV["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("ctflow/flight_delay")
    return client.search_runs([experiment.experiment_id], filter_string="tags.`ctflow.stage` = 'candidate'",
                              order_by=["attributes.start_time ASC"])


def test_first_run_trains_logs_and_promotes(first_run, registry):
    assert first_run.state == "success"
    champion = registry.champion()
    assert champion is not None and champion.version == "1"
    assert [e.version for e in registry.history(alias="champion")] == ["1"]

    run = _candidate_runs()[0]
    assert run.data.tags[mlflow_tags.GATE] == "passed"
    assert run.data.tags["airflow.dag_id"] == "ct_flight_delay"
    assert run.data.tags["ctflow.feature_service"] == "flight_delay_v1"
    assert len(run.data.tags["ctflow.data_sha256"]) == 64
    assert run.data.tags[mlflow_tags.CODE_VERSION] != ""
    assert run.data.params["data.window_start"].startswith("2012-12-31")
    assert run.data.params["data.window_end"].startswith("2013-03-01")
    assert run.data.metrics["roc_auc"] >= 0.65
    artifacts = {a.path for a in MlflowClient(TEST_ENV["MLFLOW_TRACKING_URI"]).list_artifacts(run.info.run_id)}
    assert {"plots", "spec.yaml", "data_fingerprint.json", "features.json", "slices.json", "gate.json"} <= artifacts
    plots = {a.path for a in MlflowClient(TEST_ENV["MLFLOW_TRACKING_URI"]).list_artifacts(run.info.run_id, "plots")}
    assert {"plots/roc_curve.png", "plots/precision_recall.png", "plots/confusion_matrix.png",
            "plots/feature_importance.png"} <= plots
    version = registry.get_version("1")
    assert version.tags[mlflow_tags.RUN_KEY].startswith("ct_flight_delay/")
    assert version.run_id == run.info.run_id
    # The promotion moved the champion: announced on the promoted asset (through promote's alias).
    last = asset_events(PROMOTED)[-1]
    assert (last["task_id"], last["extra"]["version"], last["extra"]["by"]) == ("promotion.promote", "1", "ct")
    # ... and the feature service's views were brought into the online store up to the run's as_of.
    assert task_states(first_run)["materialize_online"] == "success"


def test_worse_model_is_gated_out_and_champion_stays(first_run, registry, dags_folder_with):
    folder = dags_folder_with({"flight_delay.yaml": WORSE})
    announced = len(asset_events(PROMOTED))
    _dags_test(folder, "2013-03-01")
    assert len(asset_events(PROMOTED)) == announced  # nothing moved, nothing announced
    latest = _candidate_runs()[-1]
    assert latest.data.params["estimator"] == "sklearn.tree.DecisionTreeClassifier"
    assert latest.data.tags[mlflow_tags.GATE_DECISION] == "reject_champion"
    assert latest.data.tags[mlflow_tags.GATE] == "passed"  # above the floor, so not marked failed
    assert latest.data.metrics["champion_roc_auc"] > latest.data.metrics["roc_auc"]
    assert registry.champion().version == "1"
    assert [v.version for v in registry.versions()] == ["1"]  # nothing registered for a loser


def test_forced_promotion_then_rollback_run(first_run, registry, dags_folder_with):
    folder = dags_folder_with({"flight_delay.yaml": WORSE})
    announced = len(asset_events(PROMOTED))
    _dags_test(folder, "2013-03-01", {"force_promotion": True, "reason": "integration test: forced"})
    forced = registry.champion()
    assert forced.version == "2" and forced.tags[mlflow_tags.GATE] == "forced"
    [event] = asset_events(PROMOTED)[announced:]
    assert (event["task_id"], event["extra"]["version"], event["extra"]["previous"]) == ("promotion.promote", "2", "1")

    _dags_test(DAGS_FOLDER, "2013-03-01", {"action": "rollback", "reason": "integration test: roll back"})
    assert registry.champion().version == "1"
    history = registry.history(alias="champion")
    assert [(e.previous, e.version) for e in history] == [(None, "1"), ("1", "2"), ("2", "1")]
    assert history[-1].reason == "integration test: roll back" and history[-1].action == "rollback"
