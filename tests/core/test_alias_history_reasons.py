"""The alias history keeps the gate's reason and the trigger's ``conf.reason`` side by side.

Through the promote step itself (``steps.promote``, as the operator and ``run-step`` call it),
a real MLflow registry on SQLite, and ``ctflow history`` as a subprocess.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ctflow.contract.results import AliasMove
from ctflow.core import steps
from ctflow.core.registry import ModelRegistry
from ctflow.core.registry_history import MAX_EVENT_CHARS, encode_event
from ctflow.spec import parse_spec
from tests.conftest import demo_spec, isolated_home, run_cli

SPEC = parse_spec(demo_spec(("pipeline: flight_delay", "pipeline: history_reasons")))
GATE_REASON = "candidate roc_auc 0.7012 beats champion v1 0.6950 (min improvement 0.0)"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with isolated_home(tmp_path_factory.mktemp("history-reasons")) as path:
        yield path


@pytest.fixture(scope="module")
def model_uri(home: Path) -> tuple[str, str]:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment = mlflow.create_experiment("history-reasons", artifact_location=(home / "artifacts").as_uri())
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"],
                                        serialization_format="cloudpickle")
    return info.model_uri, run.info.run_id


def _gated_run(home: Path, name: str, model_uri: tuple[str, str], *, champion: str | None) -> Path:
    """A run folder as evaluate and register leave it: gate.json and register.json."""
    registry = ModelRegistry(SPEC.model_name)
    version = registry.register(model_uri[0], run_key=f"ct_history_reasons/{name}", run_id=model_uri[1]).version
    run_dir = home / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / steps.GATE).write_text(json.dumps({
        "reason": GATE_REASON, "promote": True, "passed_floors": True, "champion_version": champion,
        "candidate": {"roc_auc": 0.7012}}))
    (run_dir / steps.REGISTER).write_text(json.dumps({"version": version}))
    return run_dir


@pytest.mark.integration
def test_the_gate_reason_stays_and_the_trigger_reason_is_kept_beside_it(home, model_uri):
    first = _gated_run(home, "first", model_uri, champion=None)
    plain = steps.promote(SPEC, run_dir=first, actor="airflow:ct_history_reasons/run1", run_key="r1")
    assert plain["reason"] == GATE_REASON and plain["request_reason"] is None

    second = _gated_run(home, "second", model_uri, champion="1")
    asked = steps.promote(SPEC, run_dir=second, actor="airflow:ct_history_reasons/run2", run_key="r2",
                          reason="  weekly retrain after the schedule change  ")
    assert asked["reason"] == GATE_REASON  # before: the trigger's reason replaced it
    assert asked["request_reason"] == "weekly retrain after the schedule change"

    history = ModelRegistry(SPEC.model_name).history(alias="champion")
    assert [(e.version, e.reason, e.request_reason) for e in history] == [
        ("1", GATE_REASON, None), ("2", GATE_REASON, "weekly retrain after the schedule change")]

    shown = run_cli("ctflow", "history", SPEC.model_name, timeout=120)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert GATE_REASON in lines[0] and "requested" not in lines[0]
    assert GATE_REASON in lines[1] and "[requested: weekly retrain after the schedule change]" in lines[1]


def test_both_reasons_fit_one_history_tag():
    change = AliasMove("champion", "2", "1", "2013-03-01T00:00:00+00:00", "a", "g" * MAX_EVENT_CHARS, True,
                         "promote", "r", "t" * MAX_EVENT_CHARS)
    text = encode_event(change, "done")
    event = json.loads(text)
    assert len(text) <= MAX_EVENT_CHARS
    assert event["reason"].startswith("ggg") and event["request_reason"].startswith("ttt")
    # An event without a request reason is encoded as before (old readers, old events).
    old = json.loads(encode_event(AliasMove("champion", "1", None, "t", "a", "gate", True), "done"))
    assert "request_reason" not in old
