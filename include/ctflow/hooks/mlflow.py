"""Where MLflow is: the tracking/registry URI for ctflow's tasks and the MLflow UI's address."""

from __future__ import annotations

import os
from typing import Any

from ctflow.hooks.base import CtflowHook

#: Connection types whose host is an MLflow server (it serves its UI at the same address).
_SERVER_TYPES = ("ctflow_mlflow", "http", "https")


class MlflowHook(CtflowHook):
    """
    Resolve the MLflow tracking URI (and the MLflow UI's address) for ctflow tasks.

    The connection (default ``ctflow_mlflow``) may point at an MLflow server: ``host``, ``port``,
    ``schema`` ``http``/``https``, optional ``login``/``password`` for basic auth. Or its extra
    holds ``{"tracking_uri": "..."}`` (e.g. ``postgresql://...`` or ``sqlite:///...``), which wins.
    Its type is ``ctflow_mlflow``; connections of any other type (``http``, ``generic``) are read
    the same way. Without the connection, ctflow's embedded default is used (``$MLFLOW_TRACKING_URI``,
    else SQLite under ``$CTFLOW_HOME``).

    :param mlflow_conn_id: Airflow connection id.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "ctflow_mlflow"
    conn_type = "ctflow_mlflow"
    hook_name = "ctflow MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(mlflow_conn_id, **kwargs)

    def tracking_uri(self) -> str:
        """The tracking URI: extra ``tracking_uri``, else the server's URL, else the embedded default."""
        from ctflow import settings

        conn = self.connection()
        if conn is None:
            return settings.mlflow_tracking_uri()
        uri = (conn.extra_dejson or {}).get("tracking_uri")
        if uri:
            return uri
        scheme = conn.schema if conn.schema in ("http", "https") else "http"
        port = f":{conn.port}" if conn.port else ""
        if conn.login:
            # MLflow reads basic-auth credentials from the environment, not the URI.
            os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
            os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
        return f"{scheme}://{conn.host}{port}"

    def ui_url(self) -> str | None:
        """
        The MLflow UI's address from the connection, or None (the caller's fallback applies).

        Extra ``ui_url`` if set (a server behind a proxy, or a tracking URI that is a database);
        else the host and port of a connection that is an MLflow server (type ``ctflow_mlflow``,
        ``http`` or ``https``, or ``schema`` ``http``/``https``).
        """
        conn = self.connection()
        if conn is None:
            return None
        extra = conn.extra_dejson or {}
        if extra.get("ui_url"):
            return str(extra["ui_url"])
        if conn.host and ((conn.conn_type or "").lower() in _SERVER_TYPES or conn.schema in ("http", "https")):
            scheme = conn.schema if conn.schema in ("http", "https") else "http"
            host = conn.host if "://" in conn.host else f"{scheme}://{conn.host}"
            return f"{host}:{conn.port}" if conn.port else host
        return None

