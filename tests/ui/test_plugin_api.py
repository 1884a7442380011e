"""The ctflow view's API in a real api-server (plugin loaded from plugins/), with Airflow's own
auth manager in front: what it shows for a pipeline with a champion and a challenger, and that
it changes nothing for a caller without a valid login or without the permission."""

from __future__ import annotations

import re

import pytest
import requests

from tests.ui import state as ui_state
from tests.ui.conftest import MLFLOW_UI, dag_runs, login_token

pytestmark = [pytest.mark.integration, pytest.mark.scheduler]

DAG_ID = "ct_flight_delay"


@pytest.fixture(scope="module")
def deployment(api_deployment):
    return api_deployment


_login = login_token


def _call(airflow, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{airflow.api}{path}", headers=headers, timeout=120, allow_redirects=False,
                            **kwargs)


def test_plugin_shows_in_airflow(deployment):
    airflow, _ = deployment
    plugins = airflow.request("GET", "/api/v2/plugins").json()["plugins"]
    ctflow = next(p for p in plugins if p["name"] == "ctflow")
    assert ctflow["fastapi_apps"][0]["url_prefix"] == "/ctflow"
    assert {(v["destination"], v["href"]) for v in ctflow["external_views"]} == {
        ("nav", "/ctflow/"), ("dag", "/ctflow/dag/{DAG_ID}")}
    links = " ".join(ctflow["operator_extra_links"])
    assert all(name in links for name in ("MlflowRunLink", "ModelVersionLink", "MonitoringReportLink")), links


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/ctflow/api/pipelines", None),
    ("GET", "/ctflow/api/pipelines/flight_delay", None),
    ("POST", "/ctflow/api/pipelines/flight_delay/retrain", {"dry_run": True, "force_promotion": False}),
    ("POST", "/ctflow/api/pipelines/flight_delay/rollback", {"reason": "no login"}),
])
def test_no_login_no_access_and_nothing_changes(deployment, method, path, body):
    airflow, _ = deployment
    before = len(dag_runs(airflow, DAG_ID))
    anonymous = _call(airflow, method, path, json=body)
    assert anonymous.status_code == 401, anonymous.text
    forged = _call(airflow, method, path, token="not-a-jwt", json=body)
    assert forged.status_code == 403, forged.text
    assert "champion" not in anonymous.text and "champion" not in forged.text
    assert len(dag_runs(airflow, DAG_ID)) == before


def test_pages_send_anonymous_users_to_login(deployment):
    airflow, _ = deployment
    for path in ("/ctflow/", "/ctflow/pipelines/flight_delay"):
        response = _call(airflow, "GET", path)
        assert response.status_code == 303, response.text
        assert "/auth/login" in response.headers["location"] and "flight_delay" not in response.text


def test_viewer_reads_but_cannot_act(deployment):
    airflow, _ = deployment
    viewer = _login(airflow, "viewer")
    assert _call(airflow, "GET", "/ctflow/api/pipelines/flight_delay", viewer).status_code == 200
    before = len(dag_runs(airflow, DAG_ID))
    for action, body in (("retrain", {"dry_run": False, "force_promotion": False}),
                         ("rollback", {"reason": "viewer tries"})):
        response = _call(airflow, "POST", f"/ctflow/api/pipelines/flight_delay/{action}", viewer, json=body)
        assert response.status_code == 403, response.text
    assert len(dag_runs(airflow, DAG_ID)) == before


def test_overview_lists_the_pipeline_with_champion_challenger_and_monitoring(deployment):
    airflow, built = deployment
    response = _call(airflow, "GET", "/ctflow/api/pipelines", _login(airflow, "admin"))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["invalid_specs"] == [] and data["mlflow_ui"] == MLFLOW_UI
    (row,) = [p for p in data["pipelines"] if p["pipeline"] == "flight_delay"]
    assert row["owner"] == "data-science-flights" and row["metric"] == "roc_auc"
    assert row["champion"]["version"] == "2" and row["champion"]["value"] == pytest.approx(0.731)
    assert row["champion"]["url"] == f"{MLFLOW_UI}/#/models/flight_delay/versions/2"
    assert row["challenger"]["version"] == "3" and row["challenger"]["value"] == pytest.approx(0.742)
    monitoring = row["monitoring"]
    assert monitoring["status"] == "breach" and monitoring["run_id"] == built.monitoring_run_id
    assert monitoring["drift_share"] == pytest.approx(0.4) and monitoring["drift_breach"] is True
    assert monitoring["performance"] == {"metric": "roc_auc", "value": pytest.approx(ui_state.performance_below_floor()),
                                         "min": ui_state.performance_floor(), "max": None, "breach": True}
    assert row["dags"]["ct"] == {"dag_id": DAG_ID, "url": f"/dags/{DAG_ID}", "known": True, "paused": True}
    assert row["mlflow"]["experiment"] == f"{MLFLOW_UI}/#/experiments/{built.experiment_id}"


def test_pipeline_detail_has_timeline_history_drift_and_spec(deployment):
    airflow, built = deployment
    response = _call(airflow, "GET", "/ctflow/api/pipelines/flight_delay", _login(airflow, "admin"))
    assert response.status_code == 200, response.text
    p = response.json()
    timeline = p["timeline"]
    assert [(t["as_of"][:10], t["value"], t["version"]) for t in timeline] == [
        ("2013-03-01", pytest.approx(0.701), "1"), ("2013-04-01", pytest.approx(0.664), None),
        ("2013-05-01", pytest.approx(0.731), "2"), ("2013-06-01", pytest.approx(0.742), "3")]
    assert timeline[2]["aliases"] == ["champion"] and timeline[1]["decision"] == "reject_champion"
    history = [(e["alias"], e["previous"], e["version"], e["action"]) for e in p["history"]]
    assert history == [("challenger", None, "3", "promote"), ("champion", "1", "2", "promote"),
                       ("champion", None, "1", "promote")]  # newest first
    assert p["history"][1]["reason"] == "roc_auc 0.731 beats the champion"
    assert p["history"][1]["run_url"] == f"/dags/{DAG_ID}/runs/scheduled__2013-05-01"
    assert [v["version"] for v in p["versions"]] == ["3", "2", "1"]
    assert p["rollback_to"] == "1" and p["may_trigger"] is True
    drift = p["monitoring"]
    assert [c["column"] for c in drift["columns"]][:2] == ["temp", "carrier"]  # drifted first
    assert drift["report_url"].endswith(f"/runs/{built.monitoring_run_id}/artifactPath/report/report.html")
    assert [b["kind"] for b in drift["breaches"]] == ["drift", "performance"]
    assert p["spec_text"].startswith("# yaml-language-server") and "pipeline: flight_delay" in p["spec_text"]
    assert _call(airflow, "GET", "/ctflow/api/pipelines/no_such_pipeline", _login(airflow, "admin")).status_code == 404


def test_pipeline_page_renders_the_chart(deployment):
    airflow, _ = deployment
    response = _call(airflow, "GET", "/ctflow/pipelines/flight_delay", _login(airflow, "admin"))
    assert response.status_code == 200, response.text
    html = response.text
    assert '<svg id="metric-chart"' in html
    assert re.findall(r'<g class="point ([^"]*)" data-version="(\d*)"', html) == [
        ("registered", "1"), ("candidate", ""), ("registered alias-champion", "2"),
        ("registered alias-challenger", "3")]
    assert "alias-champion" in html and "Roll back" in html and "v1" in html
    assert "temp" in html and "roc_auc 0.731 beats the champion" in html


def test_retrain_triggers_ct_run_as_the_caller(deployment):
    airflow, _ = deployment
    admin = _login(airflow, "admin")
    before = len(dag_runs(airflow, DAG_ID))
    refused = _call(airflow, "POST", "/ctflow/api/pipelines/flight_delay/retrain", admin,
                    json={"force_promotion": True, "dry_run": False})
    assert refused.status_code == 422 and "reason" in refused.text
    assert len(dag_runs(airflow, DAG_ID)) == before
    response = _call(airflow, "POST", "/ctflow/api/pipelines/flight_delay/retrain", admin,
                     json={"as_of": "2013-10-01T00:00:00Z", "window_days": 30, "dry_run": True,
                           "force_promotion": False})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    run = airflow.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()
    assert run["state"] == "queued" and run["triggering_user_name"] == "admin"
    assert run["conf"] == {"action": "train", "force_promotion": False, "dry_run": True, "reason": "",
                           "as_of": "2013-10-01T00:00:00+00:00", "window_days": 30}
    assert "ctflow view by admin" in (run.get("note") or "")


def test_rollback_needs_a_reason_and_triggers_a_rollback_run(deployment):
    airflow, _ = deployment
    admin = _login(airflow, "admin")
    before = len(dag_runs(airflow, DAG_ID))
    for body in ({}, {"reason": "   "}):
        response = _call(airflow, "POST", "/ctflow/api/pipelines/flight_delay/rollback", admin, json=body)
        assert response.status_code == 422, response.text
    assert len(dag_runs(airflow, DAG_ID)) == before
    response = _call(airflow, "POST", "/ctflow/api/pipelines/flight_delay/rollback", admin,
                     json={"reason": "v2 misbehaves on JFK"})
    assert response.status_code == 200, response.text
    run = airflow.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{response.json()['dag_run_id']}").json()
    assert run["conf"] == {"action": "rollback", "reason": "v2 misbehaves on JFK"}
    assert run["triggering_user_name"] == "admin"
