"""A window that cannot be judged is "insufficient data", never "no drift".

Empty, all-missing, all-+-inf and too-small current windows, through the library, the
``ctflow drift`` console script (exit 3) and the monitoring steps with a real MLflow reference
run (report tags and metrics, which the UI reads, and the breach actions).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctflow.core import monitoring
from ctflow.core.drift import dataset_drift
from ctflow.core.drift.sufficiency import INSUFFICIENT_DATA
from ctflow.spec import parse_spec
from tests.conftest import demo_spec, isolated_home, run_cli

RNG = np.random.default_rng(7)
REFERENCE = pd.DataFrame({"a": RNG.normal(0, 1, 3000), "b": RNG.choice(["x", "y", "z"], 3000)})


def _windows() -> dict[str, pd.DataFrame]:
    return {
        "empty": REFERENCE.head(0),
        "all-missing": pd.DataFrame({"a": [np.nan] * 400, "b": pd.Series([None] * 400, dtype=object)}),
        "all-inf": pd.DataFrame({"a": [np.inf, -np.inf] * 200, "b": pd.Series([None] * 400, dtype=object)}),
        "too-few": REFERENCE.sample(20, random_state=1),
    }


@pytest.mark.parametrize("name", list(_windows()))
def test_library_says_insufficient_data_not_no_drift(name):
    result = dataset_drift(REFERENCE, _windows()[name], min_rows=100)
    assert result.state == INSUFFICIENT_DATA and not result.drifted and result.insufficient
    assert result.to_dict()["state"] == INSUFFICIENT_DATA


def test_a_usable_window_keeps_its_verdict():
    calm = dataset_drift(REFERENCE, REFERENCE.sample(500, random_state=2), min_rows=100)
    assert calm.state == "no_drift" and calm.insufficient is None
    shifted = REFERENCE.sample(500, random_state=3).assign(a=lambda f: f.a + 2)
    assert dataset_drift(REFERENCE, shifted, min_rows=100).state == "drift"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("insufficient")
    REFERENCE.to_parquet(folder / "reference.parquet")
    for name, frame in _windows().items():
        frame.to_parquet(folder / f"{name}.parquet")
    REFERENCE.sample(500, random_state=2).to_parquet(folder / "calm.parquet")
    return folder


@pytest.mark.parametrize("name", list(_windows()))
def test_cli_exits_3_and_says_insufficient_data(files, name):
    result = run_cli("ctflow", "drift", "--reference", str(files / "reference.parquet"),
                     "--current", str(files / f"{name}.parquet"), "--json", timeout=120)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["state"] == INSUFFICIENT_DATA
    assert "insufficient data, no verdict" in result.stderr


def test_cli_text_verdict_and_min_rows(files):
    text = run_cli("ctflow", "drift", "--reference", str(files / "reference.parquet"),
                   "--current", str(files / "too-few.parquet"), timeout=120)
    assert text.returncode == 3 and "dataset: INSUFFICIENT DATA" in text.stdout and "no drift" not in text.stdout
    lowered = run_cli("ctflow", "drift", "--reference", str(files / "reference.parquet"),
                      "--current", str(files / "too-few.parquet"), "--min-rows", "10", timeout=120)
    assert lowered.returncode == 0, lowered.stderr
    calm = run_cli("ctflow", "drift", "--reference", str(files / "reference.parquet"),
                   "--current", str(files / "calm.parquet"), timeout=120)
    assert calm.returncode == 0 and "dataset: no drift" in calm.stdout


# --------------------------------------------------------------------------- the monitoring steps

SPEC = parse_spec(demo_spec(
    ("pipeline: flight_delay", "pipeline: insufficient"),
    ("    max_drifted_share: 0.3\n", "    max_drifted_share: 0.3\n    columns: [a, b]\n"),  # the reference's columns
))


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with isolated_home(tmp_path_factory.mktemp("insufficient-monitoring"), predictions=True) as path:
        yield path


@pytest.fixture(scope="module")
def reference_run(home: Path) -> str:
    """An MLflow run holding the reference profile and scores, as training logs them."""
    import mlflow
    from mlflow import MlflowClient

    from ctflow.core.drift import ReferenceProfile

    folder = home / "reference"
    folder.mkdir()
    ReferenceProfile.from_frame(REFERENCE).save(folder / "profile")
    np.save(folder / "scores.npy", RNG.beta(2, 5, 2000))
    experiment = MlflowClient().create_experiment("insufficient-reference",
                                                  artifact_location=(home / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(folder), "reference")
    return run.info.run_id


def _scored_window(run_dir: Path, run_id: str, frame: pd.DataFrame) -> Path:
    run_dir.mkdir(parents=True)
    frame = frame.assign(**{monitoring.CHAMPION_SCORE: RNG.beta(2, 5, len(frame)),
                            monitoring.CHALLENGER_SCORE: np.nan, monitoring.ARM: "champion"})
    frame.to_parquet(run_dir / monitoring.WINDOW_FRAME, index=False)
    (run_dir / monitoring.SCORE).write_text(json.dumps({
        "as_of": "2013-03-11T06:00:00+00:00", "window_start": "2013-03-04T06:00:00+00:00",
        "window_end": "2013-03-11T06:00:00+00:00", "rows": len(frame), "entity_rows": len(frame),
        "strategy": "direct", "champion": {"version": "1", "run_id": run_id, "rows": len(frame)}, "challenger": None,
        "predictions_written": len(frame), "feature_seconds": 0.1, "scoring_seconds": 0.1,
        "scoring_seconds_per_1000_rows": None, "store_seconds": 0.0, "seconds": 0.2}))
    (run_dir / monitoring.PERFORMANCE).write_text(json.dumps({
        "metric": "roc_auc", "window_start": "2013-03-03T06:00:00+00:00", "window_end": "2013-03-10T06:00:00+00:00",
        "available": False, "breach": None, "challenger": None, "decision": None, "reason": "no labels yet"}))
    return run_dir


@pytest.mark.integration
@pytest.mark.parametrize("name", ["empty", "all-missing", "too-few"])
def test_monitoring_reports_insufficient_data_and_alerts_without_retraining(home, reference_run, name):
    from mlflow import MlflowClient

    run_dir = _scored_window(home / "runs" / name, reference_run, _windows()[name])
    data = monitoring.data_drift(SPEC, run_dir=run_dir)
    assert data["available"] and data["state"] == INSUFFICIENT_DATA and not data["drifted"]
    preds = monitoring.prediction_drift(SPEC, run_dir=run_dir)
    if name != "all-missing":  # there the champion still scored 400 rows (the model handles missing values)
        assert preds["state"] == INSUFFICIENT_DATA and not preds["drifted"]

    estimated = monitoring.estimated_performance(SPEC, run_dir=run_dir)
    assert not estimated["available"] and estimated["reason"]

    summary = monitoring.report(SPEC, run_dir=run_dir, run_key=f"monitor_insufficient/{name}")
    assert summary["data_drift"]["state"] == INSUFFICIENT_DATA and summary["breach"]
    assert INSUFFICIENT_DATA in [b["kind"] for b in summary["breaches"]]
    assert "INSUFFICIENT DATA" in (run_dir / "report" / "report.html").read_text()
    lines = monitoring.summary_lines(summary)
    assert any(line.startswith("  data drift: insufficient data, no verdict") for line in lines), lines
    assert f"  estimated performance: not available: {estimated['reason']}" in lines  # and why not
    if name != "all-missing":  # no verdict on the scores either, which the summary must not call "ok"
        assert any(line.startswith("  prediction drift: insufficient data, no verdict: ") and "fewer than min_rows"
                   in line for line in lines), lines
    run = MlflowClient().get_run(summary["mlflow_run_id"])
    assert run.data.tags[monitoring.DATA_STATE_TAG] == INSUFFICIENT_DATA
    assert INSUFFICIENT_DATA in run.data.tags["ctflow.breach"].split(",")
    assert run.data.metrics["insufficient_data"] == 1.0 and "data_drift.share" not in run.data.metrics

    decision = monitoring.actions(SPEC, run_dir=run_dir)
    assert decision["alert"] and INSUFFICIENT_DATA in decision["kinds"]
    assert INSUFFICIENT_DATA not in decision["retrain_kinds"]


@pytest.mark.integration
def test_a_usable_window_is_not_insufficient(home, reference_run):
    run_dir = _scored_window(home / "runs" / "calm", reference_run, REFERENCE.sample(500, random_state=4))
    data = monitoring.data_drift(SPEC, run_dir=run_dir)
    assert data["state"] == "no_drift"
    assert monitoring.prediction_drift(SPEC, run_dir=run_dir)["state"] in ("drift", "no_drift")


def test_min_rows_is_a_spec_field_with_a_default():
    assert SPEC.monitoring.min_rows == 100
    small = parse_spec(demo_spec(("  window: 7d\n", "  window: 7d\n  min_rows: 10\n")))
    assert small.monitoring.min_rows == 10
    assert dataset_drift(REFERENCE, _windows()["too-few"], min_rows=small.monitoring.min_rows).state != INSUFFICIENT_DATA
