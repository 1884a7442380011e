"""The extra links on what the real steps return (tests/ui/state.py), not on a dict written here."""

from __future__ import annotations

import pytest

from ctflow import links

pytestmark = pytest.mark.integration


def test_the_report_link_of_a_real_monitoring_run(built_ui_state, monkeypatch):
    """The report task's XCom (``MonitoringReportOperator`` returns the step's summary without its
    local ``report`` path) names its run as ``mlflow_run_id``/``mlflow_experiment_id``: the link must
    open that run's report, which the run really has."""
    from mlflow import MlflowClient

    from ctflow.contract import monitoring as names

    monkeypatch.setenv(links.UI_URL_ENV, "http://mlflow.test:5000")
    returned = built_ui_state.monitoring
    url = links.MonitoringReportLink().url_for(returned)
    assert url == links.artifact_url(returned["mlflow_experiment_id"], built_ui_state.monitoring_run_id,
                                     names.REPORT_ARTIFACT, base="http://mlflow.test:5000")
    client = MlflowClient(tracking_uri=built_ui_state.tracking_uri)
    logged = {f.path for f in client.list_artifacts(built_ui_state.monitoring_run_id, names.REPORT_FOLDER)}
    assert names.REPORT_ARTIFACT in logged
