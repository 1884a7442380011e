"""ctflow's hooks resolve real Airflow connections (``AIRFLOW_CONN_*``, JSON form) the way the
operators use them: the new connection types, the older ones deployments already define
(``http``/``generic``/``postgres``, as docker-compose.yml and ctflow.deploy.topology write them),
and the fallbacks when no connection is defined."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ctflow import links, settings
from ctflow.hooks import FeastHook, MlflowHook, PredictionsStoreHook, WebhookHook, connection_or_none
from tests.postgres import postgres_unavailable, throwaway_databases


def define(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields) -> None:
    """Define connection ``conn_id`` the way deployments do: an ``AIRFLOW_CONN_*`` JSON variable."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


# -- base --------------------------------------------------------------------------------------


def test_an_undefined_connection_is_none_and_a_defined_one_is_read(monkeypatch):
    assert connection_or_none("ctflow_not_defined_anywhere") is None
    define(monkeypatch, "ctflow_some", conn_type="ctflow_feast", extra={"repo_path": "/x"})
    conn = connection_or_none("ctflow_some")
    assert conn is not None and conn.conn_type == "ctflow_feast" and conn.extra_dejson == {"repo_path": "/x"}


# -- MLflow ------------------------------------------------------------------------------------


def test_mlflow_server_connection_gives_the_tracking_uri_and_the_ui(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    define(monkeypatch, "ctflow_mlflow", conn_type="ctflow_mlflow", host="mlflow.internal", port=5443, schema="https",
           login="ct", password="pw")
    hook = MlflowHook()
    assert hook.tracking_uri() == "https://mlflow.internal:5443"
    import os

    # MLflow's client reads basic-auth credentials from the environment.
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("ct", "pw")
    assert hook.ui_url() == "https://mlflow.internal:5443"


def test_mlflow_tracking_uri_extra_wins_and_ui_url_is_its_own(monkeypatch, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    define(monkeypatch, "ctflow_mlflow_db", conn_type="ctflow_mlflow", extra={"tracking_uri": uri})
    assert MlflowHook(mlflow_conn_id="ctflow_mlflow_db").tracking_uri() == uri
    assert MlflowHook(mlflow_conn_id="ctflow_mlflow_db").ui_url() is None  # a database serves no UI
    define(monkeypatch, "ctflow_mlflow_db", conn_type="ctflow_mlflow",
           extra={"tracking_uri": uri, "ui_url": "https://mlflow.example.com"})
    assert MlflowHook(mlflow_conn_id="ctflow_mlflow_db").ui_url() == "https://mlflow.example.com"


def test_mlflow_connections_of_the_older_types_keep_working(monkeypatch, tmp_path):
    # docker-compose.yml / ctflow.deploy.topology: an http connection to the MLflow server.
    define(monkeypatch, "ctflow_mlflow", conn_type="http", host="mlflow", port=5000)
    assert MlflowHook().tracking_uri() == "http://mlflow:5000"
    assert MlflowHook().ui_url() == "http://mlflow:5000"
    # tests/production/test_docker_runner.py: a generic connection with a tracking URI.
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    define(monkeypatch, "ctflow_mlflow", conn_type="generic", extra={"tracking_uri": uri})
    assert MlflowHook().tracking_uri() == uri and MlflowHook().ui_url() is None


def test_mlflow_without_a_connection_is_the_embedded_default(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_CTFLOW_MLFLOW", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'embedded.db'}")
    assert MlflowHook().tracking_uri() == settings.mlflow_tracking_uri() == f"sqlite:///{tmp_path / 'embedded.db'}"
    assert MlflowHook().ui_url() is None


def test_the_links_find_the_mlflow_ui_through_the_hook(monkeypatch):
    monkeypatch.delenv(links.UI_URL_ENV, raising=False)
    monkeypatch.setattr(links, "_cached", {})
    define(monkeypatch, "ctflow_mlflow", conn_type="ctflow_mlflow", host="mlflow.internal", port=5000)
    assert links.mlflow_ui_url() == "http://mlflow.internal:5000"
    assert links.MlflowRunLink().url_for({"run_id": "r", "experiment_id": "1"}) == (
        "http://mlflow.internal:5000/#/experiments/1/runs/r")


# -- Feast -------------------------------------------------------------------------------------


def test_feast_repository_from_the_connection_or_the_default(monkeypatch, tmp_path):
    define(monkeypatch, "ctflow_feast", conn_type="ctflow_feast", extra={"repo_path": str(tmp_path / "repo")})
    assert FeastHook().repo_path() == tmp_path / "repo"
    # docker-compose.yml / ctflow.deploy.topology: a generic connection.
    define(monkeypatch, "ctflow_feast", conn_type="generic", extra={"repo_path": "/app/feature_repo"})
    assert FeastHook().repo_path() == Path("/app/feature_repo")
    monkeypatch.delenv("AIRFLOW_CONN_CTFLOW_FEAST")
    monkeypatch.setenv("CTFLOW_FEATURE_REPO", str(tmp_path / "env_repo"))
    assert FeastHook().repo_path() == (tmp_path / "env_repo").resolve() == settings.feature_repo()


# -- predictions store -------------------------------------------------------------------------

WINDOW_END = datetime(2013, 3, 5, 6, tzinfo=UTC)


def _write_and_count(url: str) -> int:
    """What the monitoring operators do with the URL: score a window into the store, read it back."""
    from ctflow.core.predictions import PredictionStore

    store = PredictionStore(url)
    window = dict(pipeline="hooks_test", window_start=WINDOW_END - timedelta(days=1), window_end=WINDOW_END)
    row = {"model_name": "m", "model_version": "1", "alias": "champion", "row": 0, "entity_key": "{}",
           "event_timestamp": WINDOW_END - timedelta(hours=1), "score": 0.5}
    store.replace_window(**window, rows=[row, {**row, "row": 1}])
    return store.count(**window)


def test_predictions_store_fallbacks_without_a_connection(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_CTFLOW_PREDICTIONS", raising=False)
    monkeypatch.setenv("CTFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CTFLOW_PREDICTIONS_URL", raising=False)
    hook = PredictionsStoreHook()
    assert hook.connection_url() is None
    assert hook.url() == f"sqlite:///{(tmp_path / 'home').resolve() / 'predictions.db'}"
    monkeypatch.setenv("CTFLOW_PREDICTIONS_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert hook.url() == f"sqlite:///{tmp_path / 'env.db'}"
    assert _write_and_count(hook.url()) == 2


def test_predictions_store_from_a_sqlalchemy_url_or_a_sqlite_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("CTFLOW_PREDICTIONS_URL", f"sqlite:///{tmp_path / 'not_this.db'}")
    url = f"sqlite:///{tmp_path / 'conn.db'}"
    define(monkeypatch, "ctflow_predictions", conn_type="ctflow_predictions", extra={"sqlalchemy_url": url})
    assert PredictionsStoreHook().url() == PredictionsStoreHook().connection_url() == url  # the connection wins
    assert _write_and_count(PredictionsStoreHook().url()) == 2
    define(monkeypatch, "ctflow_preds_file", conn_type="sqlite", host=str(tmp_path / "file.db"))
    assert PredictionsStoreHook(predictions_conn_id="ctflow_preds_file").url() == f"sqlite:///{tmp_path / 'file.db'}"


def test_a_predictions_connection_without_a_host_or_url_is_refused(monkeypatch):
    define(monkeypatch, "ctflow_predictions", conn_type="ctflow_predictions", schema="ctflow")
    with pytest.raises(ValueError, match="'ctflow_predictions' has neither extra sqlalchemy_url nor a host"):
        PredictionsStoreHook().url()


@pytest.mark.postgres
@pytest.mark.skipif(bool(postgres_unavailable()), reason=postgres_unavailable() or "")
@pytest.mark.parametrize("conn_type", ["ctflow_predictions", "postgres"])
def test_predictions_store_on_postgresql_from_the_connection_fields(monkeypatch, conn_type):
    from sqlalchemy import make_url

    from tests.postgres import POSTGRES_ADMIN_URL

    admin = make_url(POSTGRES_ADMIN_URL)
    with throwaway_databases("predictions") as names:
        define(monkeypatch, "ctflow_predictions", conn_type=conn_type, host=admin.host, port=admin.port,
               login=admin.username, password=admin.password, schema=names["predictions"])
        url = PredictionsStoreHook().url()
        assert url.startswith("postgresql+psycopg2://") and url.endswith(f"/{names['predictions']}")
        assert _write_and_count(url) == 2
        from ctflow.core.predictions import _engine

        _engine(url).dispose()  # let the database be dropped


# -- webhooks ----------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver_port():
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_webhook_connection_delivers_to_its_url_with_its_headers(monkeypatch, receiver_port):
    from ctflow.core.monitoring import deliver_webhook

    define(monkeypatch, "ctflow_alerts", conn_type="ctflow_webhook", host=f"http://127.0.0.1:{receiver_port}",
           extra={"path": "/hooks/ctflow", "headers": {"Authorization": "Bearer t0ken"}})
    url, headers = WebhookHook(webhook_conn_id="ctflow_alerts").endpoint()
    assert url == f"http://127.0.0.1:{receiver_port}/hooks/ctflow"
    assert deliver_webhook(url, {"text": "hi"}, attempts=1, timeout=5, headers=headers)["ok"]
    [request] = _Receiver.received
    assert request["path"] == "/hooks/ctflow" and request["headers"]["Authorization"] == "Bearer t0ken"


def test_webhook_connections_of_the_older_forms_keep_their_urls(monkeypatch):
    from ctflow.notifiers import webhook_url

    # tests/integration/test_monitor_dag.py: a URI; its path lands in ``schema``.
    monkeypatch.setenv("AIRFLOW_CONN_CTFLOW_URI_HOOK", "http://127.0.0.1:8080/alerts")
    assert webhook_url("ctflow_uri_hook") == ("http://127.0.0.1:8080/alerts", {})
    define(monkeypatch, "ctflow_https_hook", conn_type="https", host="hooks.example.com", extra={"endpoint": "x"})
    assert webhook_url("ctflow_https_hook") == ("https://hooks.example.com/x", {})
    define(monkeypatch, "ctflow_typed_hook", conn_type="ctflow_webhook", host="hooks.example.com", schema="https",
           port=8443)
    assert WebhookHook(webhook_conn_id="ctflow_typed_hook").endpoint() == ("https://hooks.example.com:8443", {})


def test_webhook_without_a_connection_or_a_host_raises(monkeypatch):
    with pytest.raises(Exception, match="ctflow_no_such_hook"):
        WebhookHook(webhook_conn_id="ctflow_no_such_hook").endpoint()
    define(monkeypatch, "ctflow_hostless", conn_type="ctflow_webhook", extra={"path": "x"})
    with pytest.raises(ValueError, match="'ctflow_hostless' has no host"):
        WebhookHook(webhook_conn_id="ctflow_hostless").endpoint()
