"""monitor_flight_delay end to end through real Airflow, Feast, MLflow and the SQL predictions store.

One story, in order: with a champion trained by ct_flight_delay (trained here unless an earlier
module of the session made one), a dry run scores the window, reports to MLflow and emits
nothing; then a spec whose performance floor cannot be met re-runs the same window through
``airflow dags test``: the window's predictions are replaced (not duplicated), the breach asset
event is in Airflow's DB, a live webhook got the alert and a dead one did not fail the run.
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from mlflow import MlflowClient

from tests.conftest import DAGS_FOLDER, TEST_ENV, asset_events, demo_spec, run_cli, task_states

pytestmark = pytest.mark.integration

TRAIN = datetime(2013, 3, 1, tzinfo=UTC)
MONITOR = datetime(2013, 3, 11, 6, tzinfo=UTC)  # the Monday 06:00 run: window [03-04 06:00, 03-11 06:00)
WINDOW = dict(pipeline="flight_delay", window_start=MONITOR - timedelta(days=7), window_end=MONITOR)
BREACH_URI = "ctflow://flight_delay/breach"
SPEC = demo_spec()
assert "  window: 7d\n" in SPEC
# An impossible floor: every window breaches on performance.
BREACHING = demo_spec(
    ("performance: {metric: roc_auc, min: 0.62}", "performance: {metric: roc_auc, min: 0.999}"),
    ("alerts: [log]", "alerts: [log, {webhook: ctflow_test_hook}, {webhook: ctflow_down_hook}]"),
)


@pytest.fixture(scope="module")
def champion(airflow_db, feature_repo_ready):
    from ctflow.core.registry import ModelRegistry

    registry = ModelRegistry("flight_delay")
    if registry.champion() is None:
        from airflow.dag_processing.dagbag import DagBag

        run = DagBag(dag_folder=str(DAGS_FOLDER)).get_dag("ct_flight_delay").test(logical_date=TRAIN)
        assert run.state == "success"
    return registry.champion()


@pytest.fixture(scope="module")
def dry_run(champion):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_FOLDER)).get_dag("monitor_flight_delay")
    return dag.test(logical_date=MONITOR, run_conf={"dry_run": True})


def _monitoring_runs() -> list:
    client = MlflowClient(TEST_ENV["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("ctflow/flight_delay")
    return client.search_runs([experiment.experiment_id], filter_string="tags.`ctflow.stage` = 'monitoring'",
                              order_by=["attributes.start_time ASC"])


def test_dry_run_scores_reports_and_emits_nothing(dry_run, champion):
    from ctflow import settings
    from ctflow.core.predictions import PredictionStore

    assert dry_run.state == "success"
    states = task_states(dry_run)
    assert {states[t] for t in ("score_batch", "data_drift", "prediction_drift", "performance", "report")} == {"success"}
    assert states["act_on_breach"] == "skipped"
    assert states["materialize_online"] == "skipped"  # a dry run leaves the online store alone

    run_dir = settings.runs_dir() / "monitor_flight_delay" / dry_run.run_id.replace(":", "_").replace("+", "_")
    scored = json.loads((run_dir / "score.json").read_text())
    assert scored["window_end"] == MONITOR.isoformat() and scored["champion"]["version"] == champion.version
    assert scored["rows"] > 4000  # a week of New York departures
    assert PredictionStore().count(**WINDOW) == scored["rows"]
    perf = json.loads((run_dir / "performance.json").read_text())
    # The demo's labels are known at each flight's arrival (label.available_at): the performance
    # window is the scoring window itself, judged on the flights that had landed by its end.
    assert perf["available"] and perf["window_end"] == MONITOR.isoformat()
    assert perf["champion"]["value"] > 0.6

    [run] = _monitoring_runs()
    assert run.data.tags["ctflow.window_end"] == MONITOR.isoformat()
    assert run.data.tags["ctflow.champion_version"] == champion.version
    assert run.data.tags["airflow.dag_id"] == "monitor_flight_delay"
    assert run.data.metrics["rows_scored"] == scored["rows"]
    assert {"scoring_seconds_per_1000_rows", "seconds.score_batch", "seconds.performance", "data_drift.share",
            "performance.champion.roc_auc", "prediction_drift.champion.statistic"} <= set(run.data.metrics)
    client = MlflowClient(TEST_ENV["MLFLOW_TRACKING_URI"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "report/plots")}
    assert "report/report.html" in artifacts and "summary.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report/plots/drift_by_feature.png", "report/plots/metric_over_time.png",
            "report/plots/score_distribution.png"} <= plots
    assert asset_events(BREACH_URI) == []  # a dry run never triggers retraining


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_breach_emits_the_asset_event_and_alerts(dry_run, dags_folder_with):
    from ctflow.core.predictions import PredictionStore

    rows_before = PredictionStore().count(**WINDOW)
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    try:
        folder = dags_folder_with({"flight_delay.yaml": BREACHING})
        result = run_cli(
            "airflow", "dags", "test", "monitor_flight_delay", MONITOR.isoformat(),
            env={"AIRFLOW__CORE__DAGS_FOLDER": str(folder),
                 "AIRFLOW_CONN_CTFLOW_TEST_HOOK": f"http://127.0.0.1:{server.server_address[1]}/alerts",
                 "AIRFLOW_CONN_CTFLOW_DOWN_HOOK": f"http://127.0.0.1:{dead_port}/alerts"},
            timeout=900,
        )
    finally:
        server.shutdown()
        server.server_close()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    events = asset_events(BREACH_URI)
    assert len(events) == 1, output[-4000:]
    assert events[0]["dag_id"] == "monitor_flight_delay" and events[0]["task_id"] == "act_on_breach"
    assert events[0]["extra"]["kinds"][-1] == "performance" and events[0]["extra"]["pipeline"] == "flight_delay"

    [alert] = _Receiver.received  # the live webhook got it; the dead one was retried and reported
    assert alert["pipeline"] == "flight_delay" and alert["window_end"] == MONITOR.isoformat()
    assert "performance" in {b["kind"] for b in alert["breaches"]} and "< min 0.999" in alert["text"]
    assert "ctflow_down_hook" in output

    assert PredictionStore().count(**WINDOW) == rows_before  # the same window again: replaced, not duplicated
    latest = _monitoring_runs()[-1]
    assert "performance" in latest.data.tags["ctflow.breach"]


def test_a_breach_within_the_retrain_cooldown_alerts_but_does_not_retrain(dry_run, dags_folder_with):
    """The same breaching window, with ``retrain_cooldown: 14d``: the champion was trained as of
    03-01, ten days before the window's end, so act_on_breach reads MLflow, alerts and emits nothing."""
    from ctflow.core import tracking

    cooling = BREACHING.replace("  retrain_on: [", "  retrain_cooldown: 14d\n  retrain_on: [", 1)
    assert "retrain_cooldown: 14d" in cooling
    last = tracking.latest_training_as_of(tracking.client(TEST_ENV["MLFLOW_TRACKING_URI"]), "flight_delay")
    assert last is not None and MONITOR - last < timedelta(days=14)
    before = asset_events(BREACH_URI)
    folder = dags_folder_with({"flight_delay.yaml": cooling.replace(
        "alerts: [log, {webhook: ctflow_test_hook}, {webhook: ctflow_down_hook}]", "alerts: [log]")})
    result = run_cli("airflow", "dags", "test", "monitor_flight_delay", MONITOR.isoformat(),
                     env={"AIRFLOW__CORE__DAGS_FOLDER": str(folder), "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"},
                     timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert asset_events(BREACH_URI) == before, output[-4000:]
    assert f"alerted, not retrained: the newest training is as of {last.isoformat()}" in output, output[-4000:]
    assert "schedule.retrain_cooldown is 14d" in output


def test_a_monitoring_promotion_is_announced_through_the_asset_alias():
    """Shadow/canary: ``performance`` emits ``ctflow://<p>/promoted`` only when it promoted (an alias
    outlet emits only what is added to it); strategy direct has no such outlet."""
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from airflow.sdk.execution_time.task_runner import _serialize_outlet_events

    from ctflow.factory.build import build_monitor_dag
    from ctflow.spec import parse_spec

    assert build_monitor_dag(parse_spec(SPEC)).get_task("performance").outlets == []
    task = build_monitor_dag(parse_spec(demo_spec(("strategy: direct", "strategy: shadow")))).get_task("performance")
    events = OutletEventAccessors()
    decision = {"action": "promote", "applied": True, "reason": "won 3 windows", "change": {"version": "2", "previous": "1"}}
    task._announce_promotion({"outlet_events": events}, decision)
    [event] = list(_serialize_outlet_events(events))
    assert event["source_alias_name"] == "flight_delay_monitor_promotion"
    assert event["dest_asset_key"] == {"name": "flight_delay_promoted", "uri": "ctflow://flight_delay/promoted"}
    assert event["extra"]["version"] == "2" and event["extra"]["by"] == "monitoring"


def test_a_window_without_rows_is_insufficient_data_not_healthy(champion):
    """A window after the data ends (as_of 2014-02-03: no flights) through real Airflow: every task
    runs, the report says insufficient_data (tag, metric, breach kind), and act_on_breach alerts
    (log) but emits nothing: insufficient data never retrains. Before: 'no drift', a healthy window."""
    from airflow.dag_processing.dagbag import DagBag

    from ctflow import settings

    before = asset_events(BREACH_URI)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).get_dag("monitor_flight_delay")
    run = dag.test(logical_date=datetime(2013, 12, 30, 6, tzinfo=UTC),
                   run_conf={"as_of": "2014-02-03T06:00:00+00:00"})
    states = task_states(run)
    assert run.state == "success", states
    assert {states[t] for t in ("score_batch", "data_drift", "prediction_drift", "report")} == {"success"}, states
    assert states["act_on_breach"] == "skipped"  # alerted, nothing emitted
    assert asset_events(BREACH_URI) == before

    run_dir = settings.runs_dir() / "monitor_flight_delay" / run.run_id.replace(":", "_").replace("+", "_")
    assert json.loads((run_dir / "score.json").read_text())["rows"] == 0
    report = json.loads((run_dir / "report.json").read_text())
    assert report["data_drift"]["state"] == "insufficient_data" and report["breach"]
    assert "insufficient_data" in {b["kind"] for b in report["breaches"]}
    latest = MlflowClient(TEST_ENV["MLFLOW_TRACKING_URI"]).get_run(report["mlflow_run_id"])
    assert latest.data.tags["ctflow.data_state"] == "insufficient_data"
    assert latest.data.metrics["insufficient_data"] == 1.0
    # The ctflow view reads the same run as "no verdict", never "ok", and shows no drift share.
    from ctflow.spec import load_spec
    from ctflow.ui.monitoring import summarize

    seen = summarize(MlflowClient(TEST_ENV["MLFLOW_TRACKING_URI"]), load_spec(str(DAGS_FOLDER / "specs" / "flight_delay.yaml")),
                     latest)
    assert seen["status"] == "insufficient_data" and seen["data_state"] == "insufficient_data"
    assert seen["drift_share"] is None and not seen["drift_breach"]
