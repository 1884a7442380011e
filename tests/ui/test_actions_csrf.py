"""Cross-site request forgery on the ctflow view's actions, against a real api-server.

A browser attaches Airflow's ``_token`` cookie (SameSite=Lax) to requests from any page of the
same *site*: another port of the same host (the MLflow UI on :5000 and the HTML artifacts it
serves, any other service on 127.0.0.1) can post a form or a ``no-cors`` fetch to the api-server
with the user's login. Such a request has no ``Authorization`` header (setting one needs a CORS
preflight the api-server does not grant), can only carry a form or ``text/plain`` body, and its
``Origin`` is the other site's. Each state-changing route must refuse every one of them (4xx),
and never act on an empty body, and nothing may change: no DAG run, no move in the registry.
"""

from __future__ import annotations

import pytest
import requests

from tests.ui import state as ui_state
from tests.ui.conftest import dag_runs, login_token

pytestmark = [pytest.mark.integration, pytest.mark.scheduler]

DAG_ID = "ct_flight_delay"
#: The state-changing routes of the view, each with a body it accepts.
ROUTES = {
    "retrain": {"dry_run": True, "force_promotion": False, "reason": "csrf test"},
    "rollback": {"reason": "csrf test"},
}
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
OTHER_ORIGIN = "http://127.0.0.1:5000"  # same site, another port: the cookie goes along


def _refused_cases(origin: str) -> dict[str, dict]:
    """Requests (headers and body by name) that must change nothing; ``origin`` is the api-server's."""
    return {
        # the reproduction: the session cookie and an empty form body, nothing else
        "cookie, empty form body": {"content_type": FORM, "data": ""},
        "cookie, form body, own origin": {"content_type": FORM, "data": "reason=csrf+test&dry_run=true",
                                          "origin": origin},
        "cookie, JSON as text/plain (HTML form enctype)": {"content_type": "text/plain", "json_text": True,
                                                           "origin": origin},
        "cookie, JSON without a content type (no-cors fetch of a Blob)": {"content_type": None, "json_text": True,
                                                                           "origin": origin},
        "cookie, valid JSON, other origin": {"content_type": JSON, "json_text": True, "origin": OTHER_ORIGIN},
        "cookie, valid JSON, other referer": {"content_type": JSON, "json_text": True,
                                              "referer": f"{OTHER_ORIGIN}/report.html"},
        "cookie, valid JSON, origin null (sandboxed page)": {"content_type": JSON, "json_text": True,
                                                             "origin": "null"},
        "cookie, valid JSON, no origin or referer": {"content_type": JSON, "json_text": True},
        "cookie, JSON, empty body": {"content_type": JSON, "data": "", "origin": origin},
        "cookie, JSON, {}": {"content_type": JSON, "data": "{}", "origin": origin},
        "bearer, JSON, {}": {"content_type": JSON, "data": "{}", "bearer": True},
        "bearer, empty form body": {"content_type": FORM, "data": "", "bearer": True},
    }


CASES = list(_refused_cases("x"))


def _post(airflow, token: str, action: str, case: dict) -> requests.Response:
    import json

    headers = {}
    if case.get("content_type"):
        headers["Content-Type"] = case["content_type"]
    for name in ("origin", "referer"):
        if case.get(name):
            headers[name.title()] = case[name]
    cookies = {}
    if case.get("bearer"):
        headers["Authorization"] = f"Bearer {token}"
    else:
        cookies["_token"] = token
    data = json.dumps(ROUTES[action]) if case.get("json_text") else case["data"]
    request = requests.Request("POST", f"{airflow.api}/ctflow/api/pipelines/flight_delay/{action}", headers=headers,
                               cookies=cookies, data=data.encode()).prepare()
    if not case.get("content_type"):
        request.headers.pop("Content-Type", None)
    with requests.Session() as session:
        return session.send(request, timeout=120, allow_redirects=False)


def _registry_state(tracking_uri: str) -> tuple:
    from ctflow.core.registry import ModelRegistry

    registry = ModelRegistry(ui_state.PIPELINE, tracking_uri=tracking_uri)
    champion = registry.champion()
    return champion.version if champion else None, len(registry.history()), len(registry.versions())


@pytest.fixture(scope="module")
def deployment(api_deployment):
    return api_deployment


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("action", list(ROUTES))
def test_forged_or_empty_requests_change_nothing(deployment, action, case):
    airflow, built = deployment
    token = login_token(airflow, "admin")
    runs, registry = len(dag_runs(airflow, DAG_ID)), _registry_state(built.tracking_uri)
    response = _post(airflow, token, action, _refused_cases(airflow.api)[case])
    print(f"{action} | {case} | {response.status_code} {response.text[:160]}")  # the closing note's table (-rP)
    assert 400 <= response.status_code < 500, f"{case}: {response.status_code} {response.text}"
    assert "dag_run_id" not in response.text
    assert len(dag_runs(airflow, DAG_ID)) == runs, f"{case}: a DAG run was created"
    assert _registry_state(built.tracking_uri) == registry


@pytest.mark.parametrize("how", ["origin", "referer", "bearer"])
@pytest.mark.parametrize("action", list(ROUTES))
def test_own_origin_json_acts(deployment, action, how):
    """The page's own requests (cookie + JSON + its origin, as ctflow.js sends them) and API
    clients (bearer, no origin) still work."""
    airflow, _ = deployment
    token = login_token(airflow, "admin")
    before = len(dag_runs(airflow, DAG_ID))
    case = {"content_type": JSON, "json_text": True}
    if how == "origin":
        case["origin"] = airflow.api
    elif how == "referer":
        case["referer"] = f"{airflow.api}/ctflow/pipelines/flight_delay"
    else:
        case["bearer"] = True
    response = _post(airflow, token, action, case)
    assert response.status_code == 200, response.text
    assert response.json()["dag_run_id"] and len(dag_runs(airflow, DAG_ID)) == before + 1
