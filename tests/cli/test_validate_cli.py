"""``ctflow validate``: files and folders, every problem on its own line, exit 1 when any is invalid.

In-process through ``ctflow.cli.main`` (fast); one subprocess checks ``python -m ctflow.cli``.
The broken corpus is run through the console script in tests/spec/test_broken_corpus.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctflow.cli import main
from tests.conftest import PROJECT

FIXTURES = PROJECT / "tests" / "fixtures"
REFERENCE = PROJECT / "dags" / "specs" / "flight_delay.yaml"


def validate(*args: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["validate", *map(str, args)])
    captured = capsys.readouterr()
    assert captured.err == ""
    return code, captured.out.splitlines()


def test_good_spec_exits_0_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "ctflow.cli", "validate", "dags/specs/flight_delay.yaml"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "dags/specs/flight_delay.yaml: ok (ct_flight_delay, monitor_flight_delay)",
        "1 spec(s) checked, 0 invalid, 0 problem(s)",
    ]


def test_good_folder_exits_0_and_lists_each_spec(capsys):
    code, lines = validate(FIXTURES / "good_specs", capsys=capsys)
    assert code == 0, lines
    assert lines == [
        "fixtures/good_specs/churn.yaml: ok (ct_churn, monitor_churn)",
        "fixtures/good_specs/minimal.yaml: ok (ct_minimal, monitor_minimal)",
        "fixtures/good_specs/taxi_fare.yaml: ok (ct_taxi_fare, monitor_taxi_fare)",
        "3 spec(s) checked, 0 invalid, 0 problem(s)",
    ]


def test_quiet_prints_nothing_for_good_specs(capsys):
    assert validate("-q", REFERENCE, capsys=capsys) == (0, [])


def test_files_and_folders_together_report_every_problem(tmp_path: Path, capsys):
    broken = tmp_path / "broken.yaml"
    text = (FIXTURES / "good_specs" / "minimal.yaml").read_text()
    broken.write_text(text.replace("owner: data-science", "owner: ''").replace("metric: roc_auc", "metric: [roc_auc]"))
    code, lines = validate(REFERENCE, broken, FIXTURES / "broken_specs" / "bad_cron.yaml", capsys=capsys)
    assert code == 1
    cron = FIXTURES / "broken_specs" / "bad_cron.yaml"
    assert lines == [
        f"{REFERENCE}: ok (ct_flight_delay, monitor_flight_delay)",
        f"{broken}:3: owner: must not be empty",
        f"{broken}:15: evaluation.metric: expected a string, got ['roc_auc']",
        (
            f"{cron}:6: schedule.train: expected a cron expression such as '0 2 * * *' or a preset "
            "(@daily, @hourly, @monthly, @quarterly, @weekly, @yearly), got '0 25 * * 1'"
        ),
        "3 spec(s) checked, 2 invalid, 3 problem(s)",
    ]


def test_quiet_still_prints_problems_and_the_summary(capsys):
    code, lines = validate("--quiet", REFERENCE, FIXTURES / "broken_specs" / "empty_owner.yaml", capsys=capsys)
    assert code == 1
    assert len(lines) == 2
    assert lines[0].endswith("empty_owner.yaml:4: owner: must not be empty")
    assert lines[1] == "2 spec(s) checked, 1 invalid, 1 problem(s)"


def test_folder_reports_cross_spec_problems(capsys):
    code, lines = validate(FIXTURES / "broken_folders" / "unknown_and_cycle", capsys=capsys)
    assert code == 1
    cycle = "retraining triggers form a cycle: churn -> upsell -> churn"
    assert lines == [
        (
            "broken_folders/unknown_and_cycle/churn.yaml:6: schedule.after[1]: no pipeline named 'retension' "
            "in this folder (did you mean 'retention'?)"
        ),
        f"broken_folders/unknown_and_cycle/churn.yaml:6: schedule.after: {cycle}",
        "broken_folders/unknown_and_cycle/retention.yaml: ok (ct_retention, monitor_retention)",
        f"broken_folders/unknown_and_cycle/upsell.yaml:6: schedule.after: {cycle}",
        "3 spec(s) checked, 2 invalid, 3 problem(s)",
    ]


def test_cross_spec_rules_apply_within_a_folder_not_across_arguments(tmp_path: Path, capsys):
    # Each folder argument is checked on its own: the same pipeline in two folders is fine...
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        shutil.copy(FIXTURES / "good_specs" / "minimal.yaml", tmp_path / name / "minimal.yaml")
    code, lines = validate(tmp_path / "one", tmp_path / "two", capsys=capsys)
    assert code == 0, lines
    # ...but a copy under another file name in the same folder is a duplicate.
    shutil.copy(FIXTURES / "good_specs" / "minimal.yaml", tmp_path / "one" / "minimal_copy.yaml")
    code, lines = validate(tmp_path / "one", capsys=capsys)
    assert code == 1
    assert lines[1].endswith(
        "one/minimal_copy.yaml:2: pipeline: pipeline 'minimal' is already defined in "
        f"{tmp_path.name}/one/minimal.yaml"
    ), lines


def test_empty_folder_and_missing_file(tmp_path: Path, capsys):
    code, lines = validate(tmp_path, capsys=capsys)
    assert (code, lines) == (1, [f"no spec files found in: {tmp_path}"])
    code, lines = validate(tmp_path / "nope.yaml", capsys=capsys)
    assert code == 1
    assert lines[0].startswith(f"{tmp_path / 'nope.yaml'}: cannot read spec: ")
    assert lines[1] == "1 spec(s) checked, 1 invalid, 1 problem(s)"
