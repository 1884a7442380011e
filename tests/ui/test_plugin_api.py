"""The ctflow view's API in a real api-server (plugin loaded from plugins/), with Airflow's own
auth manager in front: what it shows for a pipeline whose state ctflow's own steps made
(:mod:`tests.ui.state`: two promotions, a candidate the gate turned down, a breaching monitoring
window), checked against MLflow's records; and that it changes nothing for a caller without a
valid login or without the permission."""

from __future__ import annotations

import re

import pytest
import requests
from markupsafe import escape

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


def test_overview_lists_the_pipeline_with_champion_and_monitoring_as_mlflow_recorded_them(deployment):
    """The row's champion and monitoring verdict are what the steps wrote: checked against MLflow's
    own records of the steps' runs, not against numbers this test made up."""
    from ctflow.contract import monitoring as names

    airflow, built = deployment
    response = _call(airflow, "GET", "/ctflow/api/pipelines", _login(airflow, "admin"))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["invalid_specs"] == [] and data["mlflow_ui"] == MLFLOW_UI
    (row,) = [p for p in data["pipelines"] if p["pipeline"] == "flight_delay"]
    assert row["owner"] == "data-science-flights" and row["metric"] == "roc_auc"
    client, champion = ui_state.mlflow_client(built), ui_state.champion_version(built)
    champion_run = client.get_model_version("flight_delay", champion).run_id
    assert row["champion"]["version"] == champion
    assert row["champion"]["value"] == pytest.approx(client.get_run(champion_run).data.metrics["roc_auc"])
    assert row["champion"]["url"] == f"{MLFLOW_UI}/#/models/flight_delay/versions/{champion}"
    assert row["challenger"] is None  # direct strategy
    recorded = client.get_run(built.monitoring_run_id).data
    monitoring, spec = row["monitoring"], built.spec()
    kinds = sorted({b["kind"] for b in built.monitoring["breaches"]})
    assert monitoring["status"] == "breach" and monitoring["run_id"] == built.monitoring_run_id  # never "ok"
    assert monitoring["breach_kinds"] == kinds == names.breach_kinds(recorded.tags[names.BREACH_TAG])
    assert monitoring["drift_share"] == pytest.approx(recorded.metrics[names.DRIFT_SHARE_METRIC])
    assert monitoring["drift_share"] == pytest.approx(built.data_drift["drifted_share"])
    assert monitoring["drift_breach"] is ("drift" in kinds)
    realized = recorded.metrics[names.performance_metric("champion", "roc_auc")]
    floor = spec.monitoring.performance.min
    estimated = recorded.metrics[names.estimated_performance_metric("roc_auc")]  # logged before the labels
    assert monitoring["performance"] == {"metric": "roc_auc", "value": pytest.approx(realized), "min": floor,
                                         "max": None, "breach": realized < floor, "estimated": pytest.approx(estimated)}
    assert monitoring["performance"]["breach"] is ("performance" in kinds)
    assert monitoring["champion_version"] == champion
    assert row["dags"]["ct"] == {"dag_id": DAG_ID, "url": f"/dags/{DAG_ID}", "known": True, "paused": True}
    assert row["mlflow"]["experiment"] == f"{MLFLOW_UI}/#/experiments/{built.experiment_id}"


def test_pipeline_detail_has_timeline_history_drift_and_spec(deployment):
    airflow, built = deployment
    response = _call(airflow, "GET", "/ctflow/api/pipelines/flight_delay", _login(airflow, "admin"))
    assert response.status_code == 200, response.text
    p = response.json()
    first, second, turned_down = built.candidates
    assert ui_state.rejected(built) is turned_down
    # Every candidate, with the metric train logged, the gate's decision and the version it became.
    assert [(t["as_of"], t["value"], t["version"], t["decision"]) for t in p["timeline"]] == [
        (c["as_of"], pytest.approx(c["train"]["metrics"]["roc_auc"]), c["register"].get("version"), c["gate"]["decision"])
        for c in built.candidates]
    assert p["timeline"][1]["aliases"] == ["champion"] and p["timeline"][2]["gate"] == "passed"
    assert [t["reason"] for t in p["timeline"]] == [c["gate"]["reason"] for c in built.candidates]
    # The alias history the promote steps wrote, newest first, with the gate's reasons.
    history = [(e["alias"], e["previous"], e["version"], e["action"]) for e in p["history"]]
    assert history == [("champion", "1", "2", "promote"), ("champion", None, "1", "promote")]
    assert [e["reason"] for e in p["history"]] == [second["gate"]["reason"], first["gate"]["reason"]]
    assert p["history"][0]["run_url"] == f"/dags/{DAG_ID}/runs/scheduled__2013-04-01"
    assert [v["version"] for v in p["versions"]] == ["2", "1"]
    assert p["versions"][0]["gate_reason"] == second["gate"]["reason"]
    assert p["rollback_to"] == "1" and p["may_trigger"] is True
    # The monitoring window: per-feature drift as the data-drift step computed it, the step's reasons.
    drift = p["monitoring"]
    written = {c["column"]: c["drifted"] for c in built.data_drift["columns"]}
    assert {c["column"]: c["drifted"] for c in drift["columns"]} == written and written
    assert [c["drifted"] for c in drift["columns"]] == sorted(written.values(), reverse=True)  # drifted first
    assert drift["breaches"] == built.monitoring["breaches"]
    assert drift["report_url"].endswith(f"/runs/{built.monitoring_run_id}/artifactPath/report/report.html")
    # The trend: the last monitoring windows, oldest first, each as MLflow recorded it.
    from ctflow.contract import monitoring as names

    client = ui_state.mlflow_client(built)
    assert [w["run_id"] for w in p["monitoring_trend"]] == built.monitoring_run_ids
    for window in p["monitoring_trend"]:
        logged = client.get_run(window["run_id"]).data
        assert window["drift_share"] == pytest.approx(logged.metrics[names.DRIFT_SHARE_METRIC])
        assert window["performance"]["value"] == pytest.approx(
            logged.metrics[names.performance_metric("champion", "roc_auc")])
        assert window["breach_kinds"] == names.breach_kinds(logged.tags[names.BREACH_TAG])
        assert window["champion_version"] == logged.tags[names.CHAMPION_VERSION_TAG] == "2"
    assert [w["status"] == "breach" for w in p["monitoring_trend"]] == [b for _, b in ui_state.MONITORED]
    assert p["spec_text"] == built.spec_text and "pipeline: flight_delay" in p["spec_text"]
    assert _call(airflow, "GET", "/ctflow/api/pipelines/no_such_pipeline", _login(airflow, "admin")).status_code == 404


def test_pipeline_page_renders_the_chart_and_the_decisions(deployment):
    airflow, built = deployment
    response = _call(airflow, "GET", "/ctflow/pipelines/flight_delay", _login(airflow, "admin"))
    assert response.status_code == 200, response.text
    html = response.text
    assert '<svg id="metric-chart"' in html
    assert re.findall(r'<g class="point ([^"]*)" data-version="(\d*)"', html) == [
        ("registered", "1"), ("registered alias-champion", "2"), ("candidate", "")]
    assert "Roll back" in html and "v1" in html
    # Every gate decision explained inline, the rejected candidate's like-for-like comparison too.
    for candidate in built.candidates:
        assert html_text(candidate["gate"]["reason"]) in html, candidate["gate"]
    for breach in built.monitoring["breaches"]:
        assert html_text(breach["reason"]) in html, breach


def html_text(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


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


def test_errors_are_readable_pages_and_sentences(deployment):
    """A bad as-of date is one sentence in ``detail`` (what the page shows), an unknown pipeline a
    page that says so, with the closest name; nothing is triggered."""
    airflow, _ = deployment
    admin = _login(airflow, "admin")
    before = len(dag_runs(airflow, DAG_ID))
    response = _call(airflow, "POST", "/ctflow/api/pipelines/flight_delay/retrain", admin,
                     json={"as_of": "2013-13-45", "dry_run": True, "force_promotion": False})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.startswith("as_of: not a valid date") and "'2013-13-45'" in detail
    assert len(dag_runs(airflow, DAG_ID)) == before
    page = _call(airflow, "GET", "/ctflow/pipelines/flight_dely", admin)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Pipeline not found</h1>" in page.text and str(escape("did you mean 'flight_delay'?")) in page.text
    api = _call(airflow, "GET", "/ctflow/api/pipelines/flight_dely", admin)
    assert api.status_code == 404 and api.json() == {
        "detail": "no valid ctflow spec defines pipeline 'flight_dely'; did you mean 'flight_delay'?"}


def test_run_lists_are_paged_and_filtered_and_a_triggered_run_can_be_followed(deployment):
    """Every run of ct_ is reachable page by page (10 a page), filtered by state; a triggered run's
    state is what the page polls, with the user who triggered it."""
    airflow, _ = deployment
    admin = _login(airflow, "admin")
    triggered = None
    while len(dag_runs(airflow, DAG_ID)) < 12:
        response = _call(airflow, "POST", "/ctflow/api/pipelines/flight_delay/retrain", admin,
                         json={"dry_run": True, "force_promotion": False})
        assert response.status_code == 200 and response.json()["paused"] is True, response.text
        triggered = response.json()["dag_run_id"]
    every = {r["dag_run_id"]: r["state"] for r in dag_runs(airflow, DAG_ID)}
    path = "/ctflow/api/pipelines/flight_delay"
    first, second = (_call(airflow, "GET", path, admin, params={"runs_page": n}).json() for n in (1, 2))
    assert first["ct_runs_page"] == {"page": 1, "size": 10, "state": None, "total": len(every),
                                     "pages": -(-len(every) // 10)}
    shown = [r["run_id"] for r in first["ct_runs"] + second["ct_runs"]]
    assert len(first["ct_runs"]) == 10 and sorted(shown) == sorted(every)  # each once, none lost
    for state in ("queued", "failed"):
        page = _call(airflow, "GET", path, admin, params={"runs_state": state}).json()
        assert page["ct_runs_page"]["total"] == sum(s == state for s in every.values())
        assert {r["state"] for r in page["ct_runs"]} <= {state}
    bad = _call(airflow, "GET", path, admin, params={"runs_state": "done"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("runs_state: Input should be 'queued'")
    html = _call(airflow, "GET", "/ctflow/pipelines/flight_delay", admin, params={"runs_page": 2}).text
    assert f"page 2 of {-(-len(every) // 10)}" in html and 'rel="prev"' in html
    # What the page polls after a trigger: the run's state, whether it has finished, who started it.
    if triggered is not None:
        run = _call(airflow, "GET", f"{path}/runs/{triggered}", admin).json()
        assert (run["run_id"], run["state"], run["finished"], run["triggered_by"]) == (triggered, "queued", False,
                                                                                         "admin")
    assert _call(airflow, "GET", f"{path}/runs/no_such_run", admin).status_code == 404


def test_a_paused_dag_is_said_and_only_who_may_trigger_may_unpause_it(deployment):
    """The unpause itself is exercised by the browser test, on a deployment of its own: here queued
    runs of the shared deployment (rollbacks among them) must stay queued."""
    airflow, _ = deployment
    admin, viewer = _login(airflow, "admin"), _login(airflow, "viewer")
    assert 'id="paused-warning"' in _call(airflow, "GET", "/ctflow/pipelines/flight_delay", admin).text
    path = "/ctflow/api/pipelines/flight_delay/unpause"
    # An unpause states nothing: no body (the view's button sends none) or {} reaches the permission
    # check; a body must still be JSON with no unknown field.
    for body in ({}, {"json": {}}):
        refused = _call(airflow, "POST", path, viewer, **body)
        assert refused.status_code == 403, refused.text
    form = requests.post(f"{airflow.api}{path}", data={"paused": "false"}, timeout=120,
                         headers={"Authorization": f"Bearer {viewer}"})
    assert form.status_code == 415, form.text
    assert _call(airflow, "POST", path, viewer, json={"is_paused": False}).status_code == 422
    assert airflow.request("GET", f"/api/v2/dags/{DAG_ID}").json()["is_paused"] is True
