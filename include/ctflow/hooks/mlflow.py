"""MLflow tracking/registry location from an Airflow connection, with the embedded default."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook


class MlflowHook(BaseHook):
    """
    Resolve the MLflow tracking URI for ctflow tasks.

    The connection (default ``ctflow_mlflow``) may be an ``http``/``https`` connection to an
    MLflow server (host, port, optional login/password for basic auth), or any connection
    whose extra holds ``{"tracking_uri": "..."}`` (e.g. ``postgresql://...`` or ``sqlite:///...``).
    Without the connection, ctflow's embedded default is used (SQLite under ``$CTFLOW_HOME``).

    :param mlflow_conn_id: Airflow connection id.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "ctflow_mlflow"
    conn_type = "http"
    hook_name = "ctflow MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    def tracking_uri(self) -> str:
        from ctflow import settings

        conn = _connection_or_none(self, self.mlflow_conn_id)
        if conn is None:
            return settings.mlflow_tracking_uri()
        uri = (conn.extra_dejson or {}).get("tracking_uri")
        if uri:
            return uri
        scheme = conn.schema if conn.schema in ("http", "https") else "http"
        port = f":{conn.port}" if conn.port else ""
        if conn.login:
            import os

            # MLflow reads basic-auth credentials from the environment, not the URI.
            os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
            os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
        return f"{scheme}://{conn.host}{port}"


def _connection_or_none(hook: BaseHook, conn_id: str):
    """The connection, or None when it is not defined (the embedded default applies)."""
    try:
        return hook.get_connection(conn_id)
    except Exception as err:  # AirflowNotFoundException's import path differs between SDK versions
        if type(err).__name__ in ("AirflowNotFoundException", "ConnectionNotFound") or "isn't defined" in str(err):
            return None
        raise
