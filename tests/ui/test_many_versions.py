"""A pipeline with many versions, made by the real registry code in a real MLflow store (the view
state's champion model registered again and again under another pipeline, each version promoted,
then a rollback by a person): the view's data and its page render them all, paged and readable."""

from __future__ import annotations

import re

import pytest

from tests.conftest import write_dags_folder
from tests.ui import state as ui_state

pytestmark = pytest.mark.integration

VERSIONS = 30
#: A long name: the overview and the page cut it with an ellipsis, the full name in its title.
NAME = "flight_delay_with_a_very_long_name_that_pushes_columns_aside"  # 60 of the 63 allowed


@pytest.fixture(scope="module")
def many(tmp_path_factory, built_ui_state, airflow_db):
    from ctflow.core.registry import ModelRegistry

    built = built_ui_state
    spec_text = built.spec_text.replace("pipeline: flight_delay", f"pipeline: {NAME}", 1)
    folder = write_dags_folder(tmp_path_factory.mktemp("many") / "dags", {f"{NAME}.yaml": spec_text})
    client = ui_state.mlflow_client(built)
    source = client.get_model_version("flight_delay", ui_state.champion_version(built))
    registry = ModelRegistry(NAME, tracking_uri=built.tracking_uri)
    previous = None
    for i in range(1, VERSIONS + 1):
        version = registry.register(source.source, run_key=f"ct_{NAME}/scheduled__{i}",
                                    run_id=source.run_id, tags={"ctflow.gate": "passed"}).version
        moved = registry.promote(version, reason=f"candidate {i} wins", actor=f"airflow:ct_{NAME}/scheduled__{i}",
                                 expected_current=previous)
        assert moved.moved, moved
        previous = version
    registry.rollback(reason="v30 misbehaves", actor="alice")
    return folder / "specs", built


def test_many_versions_are_all_listed_with_their_history(many, monkeypatch):
    from ctflow.factory.discover import load_folder
    from ctflow.ui import data

    specs, built = many
    monkeypatch.setenv("CTFLOW_SPECS_FOLDER", str(specs))
    (item,) = load_folder(specs)
    payload = data.detail(item, data.Sources(tracking_uri=built.tracking_uri, mlflow_ui="http://m:5000"))
    assert [v["version"] for v in payload["versions"]] == [str(i) for i in range(VERSIONS, 0, -1)]
    assert payload["champion"]["version"] == str(VERSIONS - 1)  # after the rollback
    history = payload["history"]
    assert len(history) == VERSIONS + 1
    assert (history[0]["action"], history[0]["version"], history[0]["by"]) == ("rollback", str(VERSIONS - 1), "alice")
    # Moves made by scheduled runs say so, not a run id; the run stays one click away.
    assert {e["by"] for e in history[1:]} == {"schedule"}
    assert history[1]["run_url"] == f"/dags/ct_{NAME}/runs/scheduled__{VERSIONS}"
    assert payload["ct_runs_page"] == {"page": 1, "size": data.RECENT_RUNS, "state": None, "total": 0, "pages": 1}


def test_the_page_renders_every_version_and_cuts_the_long_name(many, monkeypatch):
    from ctflow.factory.discover import load_folder
    from ctflow.ui import app, data
    from ctflow.ui.chart import metric_timeline_svg

    specs, built = many
    (item,) = load_folder(specs)
    payload = data.detail(item, data.Sources(tracking_uri=built.tracking_uri, mlflow_ui="http://m:5000"))
    payload.update(rollback_to=None, may_trigger=True)
    html = app._templates().get_template("pipeline.html").render(
        base="/ctflow", airflow_root="", user="admin", timezone="UTC", p=payload,
        chart=metric_timeline_svg(payload["timeline"], metric=payload["metric"]))
    versions = re.search(r'<section id="versions">(.*?)</section>', html, re.S).group(1)
    assert re.findall(r">v(\d+)</a></td>", versions) == [str(i) for i in range(VERSIONS, 0, -1)]
    assert f'<h1 class="pipeline-title" title="{NAME}">{NAME}</h1>' in html
    assert html.count('<td class="by">') == VERSIONS + 1 and '<td class="by">alice</td>' in html
