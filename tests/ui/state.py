"""Real MLflow state for the ctflow view's tests: tiny scikit-learn models, registered versions,
aliases with history, and one monitoring window, on a throw-away SQLite tracking DB."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ctflow.contract import mlflow_tags

PIPELINE = "flight_delay"
METRIC = "roc_auc"

#: (as of, roc_auc, gate decision, what happens in the registry)
CANDIDATES = [
    ("2013-03-01T00:00:00+00:00", 0.701, "promote", "champion"),
    ("2013-04-01T00:00:00+00:00", 0.664, "reject_champion", None),
    ("2013-05-01T00:00:00+00:00", 0.731, "promote", "champion"),
    ("2013-06-01T00:00:00+00:00", 0.742, "promote", "challenger"),
]
DRIFT_COLUMNS = [
    {"column": "temp", "method": "ks", "kind": "numerical", "statistic": 0.41, "p_value": 1e-12, "threshold": 0.05,
     "drifted": True},
    {"column": "dep_hour", "method": "ks", "kind": "numerical", "statistic": 0.02, "p_value": 0.61,
     "threshold": 0.05, "drifted": False},
    {"column": "carrier", "method": "chi2", "kind": "categorical", "statistic": 35.2, "p_value": 0.002,
     "threshold": 0.05, "drifted": True},
    {"column": "distance", "method": "ks", "kind": "numerical", "statistic": 0.01, "p_value": 0.93,
     "threshold": 0.05, "drifted": False},
    {"column": "origin", "method": "chi2", "kind": "categorical", "statistic": 1.1, "p_value": 0.58,
     "threshold": 0.05, "drifted": False},
]


def performance_floor() -> float:
    """The demo spec's monitoring floor (``monitoring.performance.min``)."""
    from ctflow.factory.discover import load_folder
    from tests.conftest import DAGS_FOLDER

    (item,) = [i for i in load_folder(DAGS_FOLDER / "specs") if i.spec and i.spec.pipeline == PIPELINE]
    return item.spec.monitoring.performance.min


def performance_below_floor() -> float:
    """A monitored value that breaches the floor."""
    return round(performance_floor() - 0.016, 3)


@dataclass
class UiState:
    tracking_uri: str
    experiment_id: str
    run_ids: list[str] = field(default_factory=list)
    monitoring_run_id: str | None = None
    versions: dict[str, str] = field(default_factory=dict)  # run_id -> version


@contextlib.contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """Point MLflow's global URIs at ``uri`` for a while, then back exactly (MLflow also writes them to
    ``os.environ``, which the Airflow components started later would inherit)."""
    import mlflow

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = {key: os.environ.get(key) for key in keys}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(before["MLFLOW_REGISTRY_URI"])
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def build(folder: Path, *, pipeline: str = PIPELINE, monitoring: bool = True) -> UiState:
    """Candidates, versions v1..v3 (champion v2 after v1, challenger v3) and a monitoring window."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    from ctflow.core.registry import ModelRegistry

    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = client.create_experiment(
        f"ctflow/{pipeline}", artifact_location=(folder / "artifacts").as_uri(), tags={mlflow_tags.PIPELINE: pipeline}
    )
    state = UiState(tracking_uri=uri, experiment_id=experiment_id)
    registry = ModelRegistry(pipeline, tracking_uri=uri)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    with _tracking(uri):
        for i, (as_of, value, decision, alias) in enumerate(CANDIDATES):
            run_key = f"ct_{pipeline}/scheduled__{as_of[:10]}"
            tags = {"ctflow.stage": "candidate", mlflow_tags.RUN_KEY: run_key, mlflow_tags.PIPELINE: pipeline,
                    mlflow_tags.AS_OF: as_of, mlflow_tags.GATE: "passed", mlflow_tags.GATE_DECISION: decision,
                    "airflow.dag_id": f"ct_{pipeline}", "airflow.run_id": run_key.split("/", 1)[1]}
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"{pipeline} as of {as_of[:10]}", tags=tags) as run:
                model = LogisticRegression(C=0.5 + i).fit(x, y)
                mlflow.log_metrics({METRIC: value, "accuracy": value - 0.05})
                info = mlflow.sklearn.log_model(model, name="model", input_example=x[:3],
                                                serialization_format="cloudpickle")
            state.run_ids.append(run.info.run_id)
            if alias is None:
                continue
            version = registry.register(info.model_uri, run_key=run_key, run_id=run.info.run_id,
                                        tags={mlflow_tags.GATE: "passed", f"ctflow.metric.{METRIC}": str(value)})
            state.versions[run.info.run_id] = version.version
            actor = f"airflow:{run_key}"
            if alias == "champion":
                current = registry.champion()
                registry.promote(version.version, reason=f"{METRIC} {value:.3f} beats the champion", actor=actor,
                                 expected_current=current.version if current else None, run_key=run_key)
            else:
                registry.set_challenger(version.version, reason="shadow candidate", actor=actor, run_key=run_key)
        if monitoring:
            # Named as the monitoring step names them (ctflow.contract.monitoring); the step
            # itself is proven against this reader in tests/core/test_monitoring.py.
            from ctflow.contract import monitoring as names

            drifted = sum(c["drifted"] for c in DRIFT_COLUMNS) / len(DRIFT_COLUMNS)
            floor, value = performance_floor(), performance_below_floor()
            breaches = [{"kind": "drift", "what": "data_drift", "reason": f"{drifted:.0%} of the features drifted"},
                        {"kind": "performance", "what": "performance",
                         "reason": f"champion v2 {METRIC} {value} below {floor}"}]
            tags = {"ctflow.stage": names.STAGE, mlflow_tags.PIPELINE: pipeline,
                    names.WINDOW_START_TAG: "2013-06-10T00:00:00+00:00", names.WINDOW_END_TAG: "2013-06-11T00:00:00+00:00",
                    names.CHAMPION_VERSION_TAG: "2", names.BREACH_TAG: names.breach_tag({b["kind"] for b in breaches})}
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"{pipeline} monitoring 2013-06-10", tags=tags) as run:
                mlflow.log_metrics({names.DRIFT_SHARE_METRIC: drifted, names.performance_metric("champion", METRIC): value})
                mlflow.log_dict({"columns": DRIFT_COLUMNS, "drifted_share": drifted, "drifted": drifted >= 0.3,
                                 "max_drifted_share": 0.3}, names.DATA_DRIFT_ARTIFACT)
                mlflow.log_dict({"breaches": breaches, "breach": True}, names.SUMMARY_ARTIFACT)
                mlflow.log_text("<html><body>report</body></html>", names.REPORT_ARTIFACT)
            state.monitoring_run_id = run.info.run_id
    (folder / "state.json").write_text(json.dumps(state.__dict__, indent=2))
    return state
