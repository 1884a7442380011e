"""``ctflow run``: usage and spec errors exit 2 before anything runs (the runs themselves are in
tests/cli/test_readme_walkthrough.py)."""

from __future__ import annotations

from tests.conftest import run_cli


def test_an_unknown_pipeline_is_a_usage_error_with_the_closest_name():
    result = run_cli("ctflow", "run", "ct", "us_employmnt", "--as-of", "2013-01-01")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no valid spec of pipeline 'us_employmnt'" in result.stderr
    assert "did you mean 'us_employment'?" in result.stderr and "flight_delay" in result.stderr


def test_a_date_that_is_no_date_is_a_usage_error():
    result = run_cli("ctflow", "run", "monitor", "flight_delay", "--as-of", "last tuesday")
    assert result.returncode == 2 and "--as-of 'last tuesday' is not a date" in result.stderr


def test_an_invalid_spec_is_reported_as_its_problems(tmp_path):
    (tmp_path / "dags" / "specs").mkdir(parents=True)
    (tmp_path / "dags" / "specs" / "broken.yaml").write_text("pipeline: broken\nowner: me\n")
    result = run_cli("ctflow", "run", "ct", "broken", "--as-of", "2013-01-01", env={"CTFLOW_PROJECT": str(tmp_path)})
    assert result.returncode == 2 and "broken.yaml" in result.stderr and "schedule" in result.stderr, result.stderr
