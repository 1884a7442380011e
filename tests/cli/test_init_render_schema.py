"""``ctflow init``, ``ctflow render`` and ``ctflow schema``, in-process through ``ctflow.cli.main``."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from ctflow.cli import main
from ctflow.spec import load_spec
from ctflow.spec.schema import json_schema
from tests.conftest import PROJECT

REFERENCE = PROJECT / "dags" / "specs" / "flight_delay.yaml"


def run(*args: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main([*map(str, args)])
    captured = capsys.readouterr()
    assert captured.err == ""
    return code, captured.out


# --- init

#: What a user writes over the template's placeholders.
FILLED = {"data/TODO_entities.parquet": "data/fraud.parquet", "TODO_timestamp": "created_at",
          "TODO_label": "is_fraud", "TODO_feature_service": "fraud_v1"}


def fill_in(path: Path) -> Path:
    text = path.read_text()
    for placeholder, value in FILLED.items():
        text = text.replace(placeholder, value)
    path.write_text(text)
    return path


def test_init_writes_a_template_that_validate_refuses_until_filled_in(tmp_path: Path, capsys):
    code, out = run("init", "fraud_alerts", "--dir", tmp_path / "specs", capsys=capsys)
    target = tmp_path / "specs" / "fraud_alerts.yaml"
    assert code == 0
    assert out == (f"wrote {target}: a template; replace its TODO_ values (or use --from TABLE.parquet), then: "
                   f"ctflow validate --deep {target}\n")
    text = target.read_text()
    assert not any(word in text for word in ("flight", "carrier", "origin", "arr_delay", "2013")), text
    # The template is commented for its reader.
    assert sum(line.lstrip().startswith("#") or " # " in line for line in text.splitlines()) >= 10
    code, out = run("validate", target, capsys=capsys)
    assert code == 1
    assert [line.split(": ")[1] for line in out.splitlines()[:-1]] == [
        "data.entities", "data.timestamp", "data.label.column", "data.features"]
    assert "is a placeholder of the `ctflow init` template" in out
    code, out = run("validate", fill_in(target), capsys=capsys)
    assert code == 0 and out.endswith("1 spec(s) checked, 0 invalid, 0 problem(s)\n")
    spec = load_spec(target)
    assert (spec.pipeline, spec.owner, spec.schedule.start_date) == ("fraud_alerts", "data-science", date.today())
    assert spec.monitoring.performance is not None and spec.monitoring.performance.metric == "roc_auc"


def test_init_options(tmp_path: Path, capsys):
    code, _ = run("init", "churn", "--dir", tmp_path, "--owner", "crm-team", "--start", "2024-05-01", capsys=capsys)
    assert code == 0
    spec = load_spec(fill_in(tmp_path / "churn.yaml"))
    assert (spec.owner, spec.schedule.start_date) == ("crm-team", date(2024, 5, 1))


def test_init_does_not_overwrite_without_force(tmp_path: Path, capsys):
    target = tmp_path / "churn.yaml"
    target.write_text("# mine\n")
    code, out = run("init", "churn", "--dir", tmp_path, capsys=capsys)
    assert (code, out) == (1, f"{target} exists; use --force to overwrite\n")
    assert target.read_text() == "# mine\n"
    code, _ = run("init", "churn", "--dir", tmp_path, "--force", capsys=capsys)
    assert code == 0
    assert load_spec(fill_in(target)).pipeline == "churn"


@pytest.mark.parametrize("name", ["Churn", "churn-model", "1churn", "_churn", "a" * 64])
def test_init_rejects_names_the_spec_would_reject(name: str, tmp_path: Path, capsys):
    code, out = run("init", name, "--dir", tmp_path, capsys=capsys)
    assert code == 2
    assert out.startswith(f"invalid name {name!r}")
    assert list(tmp_path.iterdir()) == []


# --- render


def _tasks(section: str) -> list[str]:
    return [line.split(" (", 1)[0].strip() for line in section.splitlines() if line.startswith("    ")]


def test_render_lists_both_dags_and_their_tasks(capsys):
    code, out = run("render", REFERENCE, capsys=capsys)
    assert code == 0
    ct, _, monitor = out.partition("DAG monitor_flight_delay\n")
    assert ct.startswith("DAG ct_flight_delay\n") and monitor, out
    assert "  schedule: cron 0 2 1 */3 * (UTC) or asset ctflow://flight_delay/breach" in ct
    assert "  owner: data-science-flights  retries: 2" in ct
    ct_tasks, monitor_tasks = _tasks(ct), _tasks(monitor)
    assert {"training.fetch_features", "training.check_data_quality", "training.train", "training.evaluate"} <= set(ct_tasks)
    assert {"promotion.register", "promotion.promote"} <= set(ct_tasks)
    assert ct_tasks.index("training.train") < ct_tasks.index("training.evaluate") < ct_tasks.index("promotion.promote")
    assert {"score_batch", "data_drift", "performance"} <= set(monitor_tasks)
    assert monitor_tasks[0] == "score_batch"
    assert "  schedule: cron 0 6 * * 1 (UTC)" in monitor


def test_render_of_an_init_spec(tmp_path: Path, capsys):
    assert run("init", "fraud_alerts", "--dir", tmp_path, capsys=capsys)[0] == 0
    code, out = run("render", fill_in(tmp_path / "fraud_alerts.yaml"), capsys=capsys)
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("DAG ")] == [
        "DAG ct_fraud_alerts",
        "DAG monitor_fraud_alerts",
    ]


def test_render_of_a_broken_spec_prints_its_problems(capsys):
    spec = PROJECT / "tests" / "fixtures" / "broken_specs" / "unknown_metric.yaml"
    code, out = run("render", spec, capsys=capsys)
    assert code == 1
    assert out.startswith(f"{spec}:26: evaluation.metric: unknown classification metric 'rocauc'")
    assert "DAG " not in out


# --- schema


def test_schema_prints_the_json_schema(capsys):
    code, out = run("schema", capsys=capsys)
    assert code == 0
    assert json.loads(out) == json_schema()


def test_schema_markdown(capsys):
    code, out = run("schema", "--markdown", capsys=capsys)
    assert code == 0
    assert out.startswith("Every key, its type and default.")
    assert "\n#### `evaluation`\n" in out and "| `metric` | str | **required** |" in out
