"""The parts of the ctflow view that need no running Airflow: links, chart, monitoring reader,
trigger-form params and the approval step."""

from __future__ import annotations

from types import SimpleNamespace

import jinja2
import pytest

from ctflow import links
from ctflow.factory.discover import load_folder
from tests.conftest import DAGS_FOLDER


@pytest.fixture(scope="module")
def spec():
    (item,) = [i for i in load_folder(DAGS_FOLDER / "specs") if i.spec and i.spec.pipeline == "flight_delay"]
    return item.spec


# -- links ----------------------------------------------------------------------------------


def test_mlflow_ui_url_from_environment(monkeypatch):
    monkeypatch.setenv(links.UI_URL_ENV, "https://mlflow.example.com/")
    assert links.mlflow_ui_url() == "https://mlflow.example.com"
    monkeypatch.delenv(links.UI_URL_ENV)
    monkeypatch.setattr(links, "_cached", {})
    monkeypatch.setattr(links, "_from_variable", lambda: None)
    monkeypatch.setattr(links, "_from_connection", lambda: None)
    assert links.mlflow_ui_url() == links.DEFAULT_MLFLOW_UI_URL


def test_link_urls(monkeypatch):
    monkeypatch.setenv(links.UI_URL_ENV, "http://m:5000")
    assert links.MlflowRunLink().url_for({"run_id": "abc", "experiment_id": "3"}) == "http://m:5000/#/experiments/3/runs/abc"
    assert links.ModelVersionLink().url_for({"name": "flight delay", "version": "2"}) == (
        "http://m:5000/#/models/flight%20delay/versions/2")
    report = links.MonitoringReportLink()
    assert report.url_for({"run_id": "r", "experiment_id": "1", "report_path": "report/report.html"}) == (
        "http://m:5000/#/experiments/1/runs/r/artifactPath/report/report.html")
    assert report.url_for({"run_id": "r", "experiment_id": "1"}) == "http://m:5000/#/experiments/1/runs/r"
    assert report.url_for({"report_url": "https://reports/x.html"}) == "https://reports/x.html"
    assert report.url_for({"skipped": True}) is None


def test_links_read_the_task_return_value_inside_a_task(monkeypatch):
    monkeypatch.setenv(links.UI_URL_ENV, "http://m:5000")
    pulled = []

    class RuntimeTI:  # what the task runner passes as ti_key while finalizing a task
        task_id, map_index = "training.train", -1

        def xcom_pull(self, **kwargs):
            pulled.append(kwargs)
            return {"run_id": "abc", "experiment_id": "7", "metrics": {}}

    assert links.MlflowRunLink().get_link(None, ti_key=RuntimeTI()) == "http://m:5000/#/experiments/7/runs/abc"
    assert pulled == [{"task_ids": "training.train", "key": "return_value", "map_indexes": -1}]
    RuntimeTI.xcom_pull = lambda self, **kwargs: None  # skipped task: no link
    assert links.ModelVersionLink().get_link(None, ti_key=RuntimeTI()) == ""


def test_operators_carry_their_links():
    from ctflow.operators import MonitoringReportOperator, RegisterModelOperator, TrainModelOperator

    assert [link.name for link in TrainModelOperator.operator_extra_links] == ["MLflow run"]
    assert [link.name for link in RegisterModelOperator.operator_extra_links] == ["MLflow model version"]
    assert links.MonitoringReportLink().operators == [MonitoringReportOperator]


# -- chart ----------------------------------------------------------------------------------


def test_chart_marks_versions_champion_and_failures():
    from ctflow.ui.chart import metric_timeline_svg

    points = [
        {"value": 0.70, "version": "1", "aliases": [], "as_of": "2013-03-01T00:00:00+00:00", "gate": "passed"},
        {"value": 0.55, "version": None, "aliases": [], "as_of": "2013-04-01T00:00:00+00:00", "gate": "failed"},
        {"value": 0.73, "version": "2", "aliases": ["champion"], "as_of": "2013-05-01T00:00:00+00:00"},
        {"value": None, "version": None, "aliases": []},  # a run without the metric is left out
    ]
    svg = metric_timeline_svg(points, metric="roc_auc<b>", floor=0.6)
    assert svg.count('data-version="') == 3 and 'class="point failed"' in svg
    assert 'class="point registered alias-champion" data-version="2"' in svg
    assert "floor 0.6" in svg and "roc_auc&lt;b&gt;" in svg and "<b>" not in svg
    assert "No candidate" in metric_timeline_svg([], metric="roc_auc")


# -- monitoring -----------------------------------------------------------------------------


def _run(metrics, tags=None):
    return SimpleNamespace(
        info=SimpleNamespace(run_id="m1", experiment_id="1", start_time=1_370_000_000_000),
        data=SimpleNamespace(metrics=metrics, tags={"ctflow.stage": "monitoring", **(tags or {})}),
    )


def test_monitoring_summary_without_the_steps_verdict_judges_the_metrics(spec):
    """A run the monitoring step wrote carries its verdict (``ctflow.breach``; proven on a real run in
    tests/core/test_monitoring.py); one without it is judged from the contract's metrics."""
    from ctflow.contract import monitoring as names
    from ctflow.ui.monitoring import summarize

    assert summarize(None, spec, None) == {"status": "none", "message": "no monitoring yet"}
    floor = spec.monitoring.performance.min
    limit = spec.monitoring.drift.max_drifted_share
    perf = names.performance_metric("champion", spec.monitoring.performance.metric)
    ok = summarize(None, spec, _run({names.DRIFT_SHARE_METRIC: limit / 2, perf: floor + 0.1}))
    assert ok["status"] == "ok" and ok["breach_kinds"] == [] and ok["performance"]["breach"] is False
    drifted = summarize(None, spec, _run({names.DRIFT_SHARE_METRIC: limit, perf: floor + 0.1}))
    assert drifted["status"] == "breach" and drifted["breach_kinds"] == ["drift"] and drifted["drift_breach"]
    slow = summarize(None, spec, _run({names.DRIFT_SHARE_METRIC: 0.0, perf: floor - 0.1}))
    assert slow["breach_kinds"] == ["performance"] and slow["performance"]["breach"] is True
    # The step's verdict wins over the metrics, in both directions (prediction drift has no share).
    told = summarize(None, spec, _run({names.DRIFT_SHARE_METRIC: 0.0}, {names.BREACH_TAG: "drift"}))
    assert told["status"] == "breach" and told["drift_breach"] is True
    calm = summarize(None, spec, _run({names.DRIFT_SHARE_METRIC: 1.0}, {names.BREACH_TAG: names.NO_BREACH}))
    assert calm["status"] == "ok"


@pytest.mark.integration
def test_the_views_data_on_the_state_the_steps_made(built_ui_state):
    """The view's readers (no api-server) on the state ctflow's steps wrote (tests/ui/state.py): the
    overview row, the candidates' timeline and the monitoring window, against what the steps returned."""
    from ctflow.contract import monitoring as names
    from ctflow.ui import data
    from ctflow.ui import monitoring as view
    from tests.ui import state as ui_state

    built = built_ui_state
    spec = built.spec()
    sources = data.Sources(tracking_uri=built.tracking_uri, mlflow_ui="http://m:5000")
    client = sources.client()
    row = data.summary(spec, sources, client=client, airflow={})
    assert row["champion"]["version"] == ui_state.champion_version(built)
    assert row["champion"]["gate_reason"] == built.candidates[1]["gate"]["reason"]
    versions = data.versions_with_aliases(data_registry(spec, built))
    points = data.timeline(spec, client, versions, sources)
    assert [(p["as_of"], p["decision"], p["reason"], p["version"]) for p in points] == [
        (c["as_of"], c["gate"]["decision"], c["gate"]["reason"], c["register"].get("version")) for c in built.candidates]
    seen = view.summarize(client, spec, view.latest_run(client, spec.pipeline), with_columns=True)
    assert seen["status"] == "breach" and seen["run_id"] == built.monitoring_run_id
    assert seen["breaches"] == built.monitoring["breaches"]
    assert seen["breach_kinds"] == sorted({b["kind"] for b in built.monitoring["breaches"]})
    assert seen["drift_share"] == pytest.approx(built.data_drift["drifted_share"])
    assert {c["column"] for c in seen["columns"]} == {c["column"] for c in built.data_drift["columns"]}
    assert seen["report_path"] == names.REPORT_ARTIFACT and seen["champion_version"] == row["champion"]["version"]


def data_registry(spec, built):
    from ctflow.core.registry import ModelRegistry

    return ModelRegistry(spec.model_name, tracking_uri=built.tracking_uri)


# -- trigger form ---------------------------------------------------------------------------


def test_ct_params_explain_themselves(spec):
    from airflow.sdk.definitions.param import ParamsDict

    from ctflow.factory.params import ct_params

    params = ct_params(spec)
    schemas = {name: param.serialize()["schema"] for name, param in params.items()}
    assert all(schema.get("title") and schema.get("section") for schema in schemas.values())
    assert set(schemas["action"]["values_display"]) == {"train", "rollback"}
    assert schemas["window_days"]["minimum"] == spec.data.holdout.longest().days + 1
    assert "60d" in params["window_days"].description and "reason" in params["force_promotion"].description
    ParamsDict(params).validate()
    # A plain retrain needs no reason: the field is nullable and empty by default, so Airflow's
    # trigger form does not hold Trigger back until something is typed.
    assert params["reason"].value is None and schemas["reason"]["type"] == ["null", "string"]
    bad = ParamsDict(ct_params(spec))
    with pytest.raises(Exception, match="window_days"):
        bad["window_days"] = 3
        bad.validate()


# -- approval -------------------------------------------------------------------------------


def test_approval_body_compares_candidate_with_champion(spec):
    from ctflow.factory.approval import approval_task

    task = approval_task(spec)
    gate = {"decision": "promote", "reason": "beats champion v2", "metric": "roc_auc", "champion_version": "2",
            "candidate": {"roc_auc": 0.77, "recall": 0.4}, "champion": {"roc_auc": 0.75, "recall": 0.45}}
    ti = SimpleNamespace(xcom_pull=lambda task_ids: gate if task_ids == "training.evaluate" else {"version": "3"})
    text = jinja2.Environment().from_string(task.body).render(ti=ti, run_id="manual__1")
    assert "registered as **version 3**" in text and "champion (v2)" in text
    assert "| **roc_auc** (primary) | 0.7700 | 0.7500 | +0.0200 |" in text
    assert "| recall | 0.4000 | 0.4500 | -0.0500 |" in text and "beats champion v2" in text
    assert list(task.serialized_params) == ["note"]


@pytest.mark.integration
@pytest.mark.parametrize("choice,decision", [("Approve", "approved"), ("Reject", "rejected")])
def test_approval_records_the_decision(spec, choice, decision, tmp_path):
    """In the CT DAG of a manual-approval spec, so the task has promote downstream: on Reject, Airflow's
    operator skips it by raising DownstreamTasksSkipped, and the decision must be recorded (on the
    registered version and its run, in a real MLflow store) before that."""
    from datetime import UTC, datetime

    import mlflow
    from airflow.sdk.exceptions import DownstreamTasksSkipped
    from sklearn.linear_model import LogisticRegression

    from ctflow.contract import mlflow_tags, tasks
    from ctflow.core.registry import FileRegistryLock, ModelRegistry
    from ctflow.factory.build import build_ct_dag
    from ctflow.operators.approval import ApprovalOperator
    from tests.conftest import isolated_home

    manual = spec.model_copy(update={"registry": spec.registry.model_copy(update={"approval": "manual"})})
    task = build_ct_dag(manual).get_task(tasks.APPROVE)
    assert isinstance(task, ApprovalOperator) and task.downstream_task_ids == {tasks.PROMOTE}
    with isolated_home(tmp_path):
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), name="model",
                                            pip_requirements=["scikit-learn"], serialization_format="cloudpickle")
        registry = ModelRegistry(manual.model_name, lock=FileRegistryLock(tmp_path / "locks"))
        version = registry.register(info.model_uri, run_key="ct_test/manual", run_id=run.info.run_id).version
        pushed = {}  # what Airflow's skip() leaves for NotPreviouslySkippedDep (the execution API is not up here)
        registered = {"version": version, "run_id": run.info.run_id}
        ti = SimpleNamespace(map_index=-1, xcom_push=lambda key, value: pushed.update({key: value}),
                             xcom_pull=lambda task_ids: registered if task_ids == tasks.REGISTER else None)
        event = {"chosen_options": [choice], "params_input": {"note": " because "},
                 "responded_at": datetime(2026, 1, 1, tzinfo=UTC), "responded_by_user": {"id": "7", "name": "ana"}}
        if choice == "Reject":
            with pytest.raises(DownstreamTasksSkipped) as skipped:
                task.execute_complete({"task": task, "ti": ti}, event)
            assert tasks.PROMOTE in str(skipped.value.tasks) and tasks.PROMOTE in str(pushed)
        else:
            task.execute_complete({"task": task, "ti": ti}, event)
        expected = {mlflow_tags.APPROVAL: decision, mlflow_tags.APPROVAL_BY: "ana",
                    mlflow_tags.APPROVAL_AT: "2026-01-01 00:00:00+00:00", mlflow_tags.APPROVAL_NOTE: "because"}
        on_version = registry.get_version(version).tags
        on_run = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
    assert {k: on_version.get(k) for k in expected} == expected
    assert {k: on_run.get(k) for k in expected} == expected
