"""The ctflow view as a person uses it: headless Chromium against a real Airflow deployment
(scheduler, dag-processor, triggerer, api-server; the ctflow plugin loaded from plugins/).

* log in on Airflow's login page, open *ctflow* in Airflow's navigation, see the pipeline, its
  champion and a monitoring window that breached (made by ctflow's own steps, :mod:`tests.ui.state`)
  shown as a breach with the step's reasons, its drift share and realized performance as MLflow
  recorded them; open its page, see the metric chart with the gate's decisions, the per-feature
  drift; click *Retrain now*: a ``ct_`` run is queued;
* see the trend of the monitoring windows, each point what MLflow recorded for its window;
* see a CT run that failed for good (its data check refused a window the data does not cover)
  on the overview and the pipeline page: the task it failed at and the reason the task recorded;
* see two manual-approval candidates "awaiting approval" in the view, follow each one's link to
  Airflow's own required-action form and reject one, approve the other there: the decisions are
  recorded on the model versions with who and why, shown in the view, and only the approved one
  becomes champion.

Screenshots go to ``$CTFLOW_TEST_ARTIFACTS`` (default: ``test-artifacts/ui`` under the project).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from ctflow.contract import mlflow_tags
from tests.conftest import PROJECT, QUICK_TRIGGER_ONLY, demo_spec
from tests.harness import running_airflow
from tests.ui import state as ui_state
from tests.ui.browser import browser_page, chromium_path, ctflow_frame, login, password
from tests.ui.conftest import APPROVAL, APPROVAL_SPEC, airflow_env, dags_folder, wait_parsed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.scheduler,
    pytest.mark.skipif(chromium_path() is None and os.environ.get("CI") != "true",
                       reason="no system chromium (apt-get install chromium)"),
]

ARTIFACTS = Path(os.environ.get("CTFLOW_TEST_ARTIFACTS", PROJECT / "test-artifacts" / "ui"))
COLD = "flight_delay_cold"
#: The quick demo spec deployed with the first data (2013-01-01): a run as of January 20 has 19 days
#: for its 28-day window, and the data check refuses it for good (``min_window_coverage``), as in
#: ``tests/integration/test_cold_start_dag.py``. Its own pipeline: the other tests' runs stay theirs.
COLD_SPEC = demo_spec(*QUICK_TRIGGER_ONLY, ("pipeline: flight_delay", f"pipeline: {COLD}"),
                      ("start_date: 2013-02-01", "start_date: 2013-01-01"))
QUALITY = "training.check_data_quality"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, built_ui_state):
    """A deployment of its own, not the package's: this test unpauses ``ct_flight_delay`` and follows a
    retrain to its end, so the scheduler would also run the runs other tests queued there (rollbacks
    that move the shared store's champion). Its scheduler runs the approval and cold-start pipelines too."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("ui-browser")
    # A copy of the view state's MLflow DB (artifacts stay where the steps wrote them): the retrain
    # this test follows to its end logs a run, which the other deployments must not see.
    shutil.copy(Path(built_ui_state.tracking_uri.removeprefix("sqlite:///")), root / "mlflow.db")
    built = dataclasses.replace(built_ui_state, tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    folder = dags_folder(root, {f"{APPROVAL}.yaml": APPROVAL_SPEC, f"{COLD}.yaml": COLD_SPEC}, spec_text=built.spec_text)
    with running_airflow(root / "airflow", dags_folder=folder, extra_env=airflow_env(root, built.tracking_uri)) as airflow:
        wait_parsed(airflow, "ct_flight_delay")
        yield airflow, built


def test_view_shows_pipeline_and_a_retrain_is_followed_to_its_end(deployment):
    from ctflow.contract import monitoring as names

    airflow, built = deployment
    client = ui_state.mlflow_client(built)
    champion = ui_state.champion_version(built)
    champion_value = client.get_run(client.get_model_version("flight_delay", champion).run_id).data.metrics["roc_auc"]
    recorded = client.get_run(built.monitoring_run_id).data
    realized = recorded.metrics[names.performance_metric("champion", "roc_auc")]
    with browser_page() as page:
        login(page, airflow.api, "admin", password(airflow.home))
        frame = ctflow_frame(page, airflow.api)
        row = frame.locator("tr[data-pipeline=flight_delay]")
        row.wait_for()
        assert row.locator("td.champion .version").inner_text() == f"v{champion}"
        assert f"{champion_value:.4f}" in row.locator("td.champion").inner_text()
        # The window breached: the health says so, never OK.
        assert "BREACH" in row.inner_text() and "OK" not in row.locator(".health").inner_text()
        page.screenshot(path=str(ARTIFACTS / "ctflow-view.png"))

        row.locator("a.pipeline-name").click()
        frame.locator("#metric-chart").wait_for()
        card = frame.locator("#monitoring-card")
        assert card.locator(".health").inner_text() == "BREACH"
        reasons = card.locator("ul.breaches li").all_inner_texts()
        assert reasons == [f"{b['kind']}: {b['reason']}" for b in built.monitoring["breaches"]]
        text = card.inner_text()
        assert f"{recorded.metrics[names.DRIFT_SHARE_METRIC]:.0%}" in text and f"{realized:.4f}" in text
        # One point per candidate; the champion marked; the rejected candidate not registered.
        points = frame.locator("#metric-chart g.point[data-version]")
        assert points.count() == len(built.candidates)
        assert frame.locator("#metric-chart g.alias-champion[data-version]").get_attribute("data-version") == champion
        assert frame.locator("#metric-chart").bounding_box()["width"] > 300  # drawn, not collapsed
        # Per-feature drift as the data-drift step computed it, drifted ones marked.
        drift = frame.locator("#drift")
        drifted = sorted(c["column"] for c in built.data_drift["columns"] if c["drifted"])
        assert sorted(drift.locator("tr.drifted code").all_inner_texts()) == drifted
        assert drift.locator("tbody tr").count() == len(built.data_drift["columns"])
        # The trend of the monitoring windows, oldest first: each point what MLflow recorded for its
        # window, the breached one shaded, the windows of the current champion on its badge.
        windows = frame.locator("#trend-chart g.window")
        assert windows.count() == len(built.monitoring_run_ids) == len(ui_state.MONITORED)
        for i, (run_id, (_, breached)) in enumerate(zip(built.monitoring_run_ids, ui_state.MONITORED, strict=True)):
            logged = client.get_run(run_id).data
            window = windows.nth(i)
            assert window.get_attribute("data-run-id") == run_id
            assert window.get_attribute("data-champion") == logged.tags[names.CHAMPION_VERSION_TAG] == champion
            assert "current-champion" in window.get_attribute("class").split()
            assert ("status-breach" in window.get_attribute("class").split()) is breached
            assert bool(names.breach_kinds(logged.tags[names.BREACH_TAG])) is breached
            for series, metric in (("drift-share", names.DRIFT_SHARE_METRIC),
                                   ("performance", names.performance_metric("champion", "roc_auc"))):
                point = frame.locator(f'#trend-chart circle.{series}[data-window="{i}"]')
                assert float(point.get_attribute("data-value")) == pytest.approx(logged.metrics[metric])
        assert frame.locator("#trend-chart > rect.breach-band").count() == 2 * sum(b for _, b in ui_state.MONITORED)
        assert frame.locator("#trend-chart").bounding_box()["width"] > 300
        # Every gate decision with its reason, inline: the rejected candidate says why it lost.
        turned_down = ui_state.rejected(built)
        row = frame.locator("#candidates tr.gate-reject_champion")
        assert row.locator(".reason").inner_text() == turned_down["gate"]["reason"]
        assert "not registered" in row.inner_text() and "lost to champion" in row.inner_text()
        page.screenshot(path=str(ARTIFACTS / "ctflow-pipeline-in-airflow.png"), full_page=True)
        # The page alone (the docs' screenshots), then in Airflow's dark theme: no white frame.
        page.goto(f"{airflow.api}/ctflow/pipelines/flight_delay")
        page.locator("#metric-chart").wait_for()
        page.screenshot(path=str(ARTIFACTS / "ctflow-pipeline.png"), full_page=True)
        page.evaluate("window.localStorage.setItem('theme', 'dark')")
        page.reload()
        page.locator("#metric-chart").wait_for()
        assert page.locator("html").get_attribute("class") == "dark"
        background = page.locator("body").evaluate("el => getComputedStyle(el).backgroundColor")
        assert background == "rgb(22, 24, 29)", background
        page.screenshot(path=str(ARTIFACTS / "ctflow-pipeline-dark.png"), full_page=True)
        page.evaluate("window.localStorage.setItem('theme', 'light')")
        frame = ctflow_frame(page, airflow.api)
        frame.locator("tr[data-pipeline=flight_delay] a.pipeline-name").click()
        frame.locator("#metric-chart").wait_for()

        form = frame.locator("#retrain-form")
        form.locator("input[name=as_of]").fill("2013-10-01T00:00:00Z")
        form.locator("input[name=dry_run]").check()
        form.locator("#retrain-button").click()
        assert form.locator("#retrain-button").inner_text() == "Click again to confirm"
        form.locator("#retrain-button").click()
        triggered = frame.locator("#triggered-run")
        triggered.wait_for()
        run_id = triggered.get_attribute("data-run-id")
        # ct_flight_delay is paused: the view says so and offers to unpause it, as this user.
        note = frame.locator("#paused-note")
        assert "is paused" in note.inner_text()
        page.screenshot(path=str(ARTIFACTS / "ctflow-retrain-queued.png"))
        run = airflow.request("GET", f"/api/v2/dags/ct_flight_delay/dagRuns/{run_id}").json()
        assert run["state"] == "queued" and run["triggering_user_name"] == "admin"
        assert run["conf"]["action"] == "train" and run["conf"]["dry_run"] is True
        assert run["conf"]["as_of"] == "2013-10-01T00:00:00+00:00"
        note.locator("button").click()
        frame.locator("#paused-note", has_text="is unpaused").wait_for()
        # The page follows the run to its end, then reloads: the run is listed with its final state.
        finished = airflow.wait_for_run("ct_flight_delay", run_id, timeout=900)
        row = frame.locator(f'#runs tr:has(a[title="{run_id}"])')
        row.wait_for(timeout=120_000)
        assert row.locator(".state").inner_text() == finished["state"] == "success", (
            airflow.failed_tasks("ct_flight_delay", run_id))
        assert "admin" in row.inner_text()
        # What the run did is on the reloaded page: its candidate, as MLflow recorded it, not registered.
        (logged,) = client.search_runs(
            [built.experiment_id],
            filter_string=f"tags.`{mlflow_tags.RUN_KEY}` = 'ct_flight_delay/{run_id}' and tags.`{mlflow_tags.STAGE}` = 'candidate'")
        candidate = frame.locator(f'#candidates tr[data-run-id="{logged.info.run_id}"]')
        assert f"{logged.data.metrics['roc_auc']:.4f}" in candidate.inner_text()
        assert "not registered" in candidate.inner_text()
        assert frame.locator("#metric-chart g.point[data-version]").count() == len(built.candidates) + 1
        page.screenshot(path=str(ARTIFACTS / "ctflow-retrain-done.png"), full_page=True)


def test_a_run_that_failed_for_good_shows_where_and_why(deployment):
    """A real ``ct_`` run whose data check refuses its window: the overview and the pipeline page show
    the task it failed at and the reason that task recorded (Airflow's own XCom of it), as text."""
    from ctflow.contract import tasks

    airflow, _ = deployment
    dag_id = f"ct_{COLD}"
    wait_parsed(airflow, dag_id)
    airflow.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    run_id = airflow.trigger(dag_id, "2013-01-20T00:00:00Z")
    run = airflow.wait_for_run(dag_id, run_id, timeout=900)
    states = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in airflow.task_instances(dag_id, run_id)}
    assert run["state"] == "failed" and states[QUALITY] == ("failed", 1), states
    entry = airflow.request(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{QUALITY}/xcomEntries/"
               f"{tasks.FINAL_ERROR_XCOM}", params={"deserialize": "true", "stringify": "false"})
    assert entry.status_code == 200, entry.text
    reason = entry.json()["value"]
    assert reason["kind"] == "refused" and "FAIL min_window_coverage" in reason["message"], reason
    assert ">=" in reason["message"]  # shown as text, not read as markup

    with browser_page() as page:
        login(page, airflow.api, "admin", password(airflow.home))
        frame = ctflow_frame(page, airflow.api)
        row = frame.locator(f"tr[data-pipeline={COLD}]")
        row.wait_for()
        _assert_failure_shown(row, reason)
        page.screenshot(path=str(ARTIFACTS / "ctflow-view-failed-run.png"))
        row.locator("a.pipeline-name").click()
        frame.locator("#runs").wait_for()
        _assert_failure_shown(frame.locator(".cards .card", has_text="Last CT run"), reason)
        _assert_failure_shown(frame.locator(f'#runs tr:has(a[title="{run_id}"])'), reason)
        page.screenshot(path=str(ARTIFACTS / "ctflow-pipeline-failed-run.png"), full_page=True)


def _assert_failure_shown(where, reason: dict) -> None:
    """``where`` says the run failed at the quality check, and shows the reason it recorded as text."""
    assert where.locator(".failure").inner_text().startswith(f"failed at {QUALITY}"), where.inner_text()
    # The task id whole on screen, not clipped by the overview's fixed-width column.
    assert where.locator(".failure b").evaluate(
        "el => el.getBoundingClientRect().right <= el.closest('td, .card').getBoundingClientRect().right")
    shown = where.locator(f'.failure-reason.failure-refused[data-task-id="{QUALITY}"]')
    assert shown.inner_text().strip() == reason["message"].strip()
    assert shown.evaluate("el => el.childElementCount") == 0  # the message's text, no element made of it


def _decide_in_airflow(page, airflow, frame, run_id: str, button: str, note: str) -> None:
    """From the run's row on the pipeline page, follow its "awaiting approval" link to Airflow's own
    required-action form, and answer it there with ``note``."""
    dag_id = f"ct_{APPROVAL}"
    waiting = frame.locator(f'#runs tr:has(a[title="{run_id}"]) a.awaiting-approval')
    href = waiting.get_attribute("href")
    assert href == f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/promotion.approve/required_actions", href
    page.goto(f"{airflow.api}{href}")
    page.locator("text=Promote a new").first.wait_for()
    assert page.locator("text=roc_auc").first.is_visible()
    page.screenshot(path=str(ARTIFACTS / f"approval-form-{button.lower()}.png"), full_page=True)
    page.locator("#element_note").fill(note)
    page.get_by_role("button", name=button).click()
    # The form's answer reached Airflow: the task no longer waits for input (a state, not a sleep).
    airflow.wait_for_task(dag_id, run_id, "promotion.approve", lambda ti: ti["state"] != "awaiting_input",
                          timeout=300, interval=1)


def test_rejecting_and_approving_in_airflow_are_recorded_and_shown(deployment):
    """Two candidates of the manual-approval pipeline wait for a human; in the browser one is
    rejected and the other approved through Airflow's own form. MLflow's versions carry each
    decision with who and why, only the approved one becomes champion, and the view says so."""
    from ctflow.core.registry import ModelRegistry

    airflow, built = deployment
    dag_id = f"ct_{APPROVAL}"
    wait_parsed(airflow, dag_id)
    airflow.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    rejected_run = airflow.trigger(dag_id, "2013-03-01T00:00:00Z")
    approved_run = airflow.trigger(dag_id, "2013-03-08T00:00:00Z")
    for run_id in (rejected_run, approved_run):
        airflow.wait_for_task(dag_id, run_id, "promotion.approve", lambda ti: ti["state"] == "awaiting_input",
                              timeout=900, interval=2)
    registry = ModelRegistry(APPROVAL, tracking_uri=built.tracking_uri)
    by_run = {v.tags.get(mlflow_tags.RUN_KEY): v.version for v in registry.versions()}
    rejected, approved = by_run[f"{dag_id}/{rejected_run}"], by_run[f"{dag_id}/{approved_run}"]
    why_not, why = "Too few March rows to trust it", "Looks good on the March holdout"

    with browser_page() as page:
        login(page, airflow.api, "admin", password(airflow.home))
        # The overview says the pipeline waits for a human, with a link to Airflow's form.
        frame = ctflow_frame(page, airflow.api)
        waiting = frame.locator(f"tr[data-pipeline={APPROVAL}] a.awaiting-approval")
        assert waiting.get_attribute("href").endswith("/tasks/promotion.approve/required_actions")
        frame = _pipeline_frame(page, airflow)
        _decide_in_airflow(page, airflow, frame, rejected_run, "Reject", why_not)
        frame = _pipeline_frame(page, airflow)
        _decide_in_airflow(page, airflow, frame, approved_run, "Approve", why)
        for run_id in (rejected_run, approved_run):
            run = airflow.wait_for_run(dag_id, run_id, timeout=900)
            assert run["state"] == "success", airflow.failed_tasks(dag_id, run_id)
        states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(dag_id, rejected_run)}
        assert states["promotion.promote"] == "skipped", states

        # MLflow's own records: each version carries the decision, who made it and why.
        tags = {v: registry.get_version(v).tags for v in (rejected, approved)}
        assert (tags[rejected][mlflow_tags.APPROVAL], tags[rejected][mlflow_tags.APPROVAL_BY],
                tags[rejected][mlflow_tags.APPROVAL_NOTE]) == ("rejected", "admin", why_not)
        assert (tags[approved][mlflow_tags.APPROVAL], tags[approved][mlflow_tags.APPROVAL_BY],
                tags[approved][mlflow_tags.APPROVAL_NOTE]) == ("approved", "admin", why)
        champion = registry.champion()
        assert champion is not None and champion.version == approved
        assert [e.version for e in registry.history(alias="champion")] == [approved]

        # The view shows both decisions as MLflow recorded them, with who and why.
        frame = _pipeline_frame(page, airflow)
        versions = frame.locator("#versions")
        assert versions.locator(f'tr[data-version="{rejected}"] td.approval').inner_text() == f"rejected by admin: {why_not}"
        assert versions.locator(f'tr[data-version="{approved}"] td.approval').inner_text() == f"approved by admin: {why}"
        assert frame.locator("#champion-card .version").inner_text() == f"v{approved}"
        frame.locator(f'#runs tr:has(a[title="{rejected_run}"]) a.awaiting-approval').wait_for(state="detached")
        page.screenshot(path=str(ARTIFACTS / "approval-decided.png"), full_page=True)
        latest = max((rejected, approved), key=lambda v: tags[v][mlflow_tags.APPROVAL_AT])
        decision = frame.locator(".cards .decision")
        assert decision.locator("b").inner_text() == tags[latest][mlflow_tags.APPROVAL]
        assert decision.locator(".note").inner_text() == tags[latest][mlflow_tags.APPROVAL_NOTE]
        assert decision.locator("a").get_attribute("href").startswith(f"/dags/{dag_id}/runs/")


def _pipeline_frame(page, airflow):
    """The approval pipeline's page inside Airflow's UI (from the overview)."""
    frame = ctflow_frame(page, airflow.api)
    frame.locator(f"tr[data-pipeline={APPROVAL}] a.pipeline-name").click()
    frame.locator("#metric-chart").wait_for()
    return frame
