"""``ctflow run-step``: every argument checked before any work, and exit codes that say whether a
retry can help. Each case runs the console script as a subprocess, as a container would.

0 done; 2 bad arguments, spec or configuration (one line on stderr, no traceback, naming the
field and the fix); 3 the step refused its input (data quality). Cases that reach the data use
the real entity table and Feast repository.
"""

from __future__ import annotations

import json
import os
from datetime import UTC
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DAGS_FOLDER, TEST_ENV, demo_spec, run_cli

SPEC = DAGS_FOLDER / "specs" / "flight_delay.yaml"


def run_step(*args: str | Path):
    return run_cli("ctflow", "run-step", *map(str, args), timeout=300)


def assert_one_line_error(result, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("ctflow run-step: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["fetch_features", "--as-of", "notadate"], ["--as-of", "'notadate' is not an ISO 8601"]),
        (["fetch_features", "--as-of", "2013-03-01", "--window-days", "0"], ["--window-days", "0 is no window"]),
        (["fetch_features", "--as-of", "2013-03-01", "--window-days", "-5"], ["--window-days", "-5 is no window"]),
        (["fetch_features", "--as-of", "2013-03-01", "--window-days", "two"], ["'two' is not a whole number"]),
        (["fetch_features"], ["fetch_features needs --as-of"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
        (["check_quality", "--as-of", "2013-03-01"], ["needs frame.parquet", "run fetch_features"]),
        (["evaluate"], ["needs train.json", "run train"]),
        (["promote"], ["needs gate.json", "run evaluate"]),
        (["rollback"], ["rollback needs --reason"]),
        (["register", "--force"], ["--force needs --reason"]),
    ],
    ids=["bad-as-of", "window-0", "window-negative", "window-text", "no-as-of", "unknown-step",
         "no-frame", "no-train", "no-gate", "rollback-no-reason", "force-no-reason"],
)
def test_bad_arguments_exit_2_with_one_line(args, needles):
    step, *rest = args
    result = run_step(step, "--spec", SPEC, "--run-key", f"args/{step}-{len(rest)}", *rest)
    assert_one_line_error(result, *needles)


def _spec_file(tmp_path: Path, *changes: tuple[str, str]) -> Path:
    path = tmp_path / "flight_delay.yaml"
    path.write_text(demo_spec(*changes))
    return path


@pytest.mark.integration
@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (("features: flight_delay_v1", "features: flight_delay_v9"),
         ["data.features:", "unknown feature service 'flight_delay_v9'", "did you mean 'flight_delay_v1'",
          "fix: name one of the repository's services"]),
        (("entities: feature_repo/data/flights.parquet", "entities: feature_repo/data/nope.parquet"),
         ["data.entities:", "nope.parquet does not exist", "fix: point data.entities at a parquet file"]),
        (("timestamp: scheduled_departure", "timestamp: sched_dep"),
         ["data.timestamp:", "no column 'sched_dep'", "did you mean 'scheduled_departure'"]),
        (("column: arr_delay", "column: arr_delayz"), ["data.label.column:", "no column 'arr_delayz'"]),
        (("columns: [carrier, origin, dest, distance, dep_hour, day_of_week]\n  window",
          "columns: [carrier, origin, dest, distance, dep_hour, day_of_weak]\n  window"),
         ["data.columns:", "'day_of_weak'", "fix: list only columns"]),
    ],
    ids=["unknown-feature-service", "missing-entity-file", "missing-timestamp", "missing-label", "bad-column"],
)
def test_configuration_errors_exit_2_naming_the_field_and_the_fix(feature_repo_ready, tmp_path, change, needles):
    spec = _spec_file(tmp_path, change)
    result = run_step("fetch_features", "--spec", spec, "--run-key", f"config/{tmp_path.name}", "--as-of", "2013-03-01")
    assert_one_line_error(result, *needles)


def _run_dir(run_key: str) -> Path:
    folder = Path(TEST_ENV["CTFLOW_HOME"]) / "runs" / run_key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_check_quality_refuses_a_frame_without_the_spec_columns_with_exit_3():
    """The frame on disk lacks the label and a feature: refused (exit 3, final), not a KeyError (exit 1, retried)."""
    run_key = "quality/lacking-columns"
    folder = _run_dir(run_key)
    times = pd.date_range("2013-02-01", periods=50, freq="h", tz="UTC")
    pd.DataFrame({"scheduled_departure": times, "carrier": ["UA"] * 50}).to_parquet(folder / "frame.parquet")
    (folder / "features.json").write_text(json.dumps({
        "features": ["carrier", "distance"], "window_start": "2013-01-01T00:00:00+00:00",
        "window_end": "2013-03-01T00:00:00+00:00"}))
    result = run_step("check_quality", "--spec", SPEC, "--run-key", run_key, "--as-of", "2013-03-01")
    assert result.returncode == 3, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr
    assert "FAIL required_columns observed distance, ctflow_label absent" in result.stdout
    report = json.loads((folder / "quality.json").read_text())
    assert report["passed"] is False and report["rules"][0]["rule"] == "required_columns"


@pytest.mark.integration
def test_a_valid_step_still_runs_and_prints_its_json(feature_repo_ready):
    result = run_step("fetch_features", "--spec", SPEC, "--run-key", "ok/fetch", "--as-of", "2013-03-01",
                      "--window-days", "28")
    assert result.returncode == 0, result.stderr[-3000:]
    fetched = json.loads(result.stdout.splitlines()[-1])
    assert fetched["rows"] > 20000 and fetched["window_start"] == "2013-02-01T00:00:00+00:00"


def test_window_days_is_validated_in_the_core_too():
    """The operators pass ``params.window_days`` straight to the core: 0 is a configuration error there."""
    from datetime import datetime

    from ctflow.core import steps
    from ctflow.exceptions import ConfigurationError
    from ctflow.spec import load_spec

    with pytest.raises(ConfigurationError) as raised:
        steps.fetch_features(load_spec(SPEC), as_of=datetime(2013, 3, 1, tzinfo=UTC),
                             run_dir=Path(os.devnull), window_days=0)
    assert raised.value.field == "params.window_days" and "> 0" in raised.value.fix


def test_a_rollback_without_reason_is_a_configuration_error_in_the_core():
    """What the operators call: final (AirflowFailException), where it was a retried ValueError."""
    from ctflow.core import steps
    from ctflow.exceptions import ConfigurationError
    from ctflow.spec import load_spec

    with pytest.raises(ConfigurationError) as raised:
        steps.rollback(load_spec(SPEC), actor="test", reason="  ")
    assert raised.value.field == "params.reason"
