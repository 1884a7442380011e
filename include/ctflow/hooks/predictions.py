"""Where the predictions store is: the SQLAlchemy URL of the database the monitoring DAG scores into."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctflow.hooks.base import CtflowHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

#: Connection types whose fields (host, port, login, password, schema = database) are a PostgreSQL server.
_POSTGRES_TYPES = ("postgres", "postgresql", "ctflow_predictions")


class PredictionsStoreHook(CtflowHook):
    """
    Resolve the predictions store (:class:`ctflow.core.predictions.PredictionStore`).

    First found wins:

    1. the connection (default ``ctflow_predictions``): extra ``{"sqlalchemy_url": "..."}``; else,
       for a ``ctflow_predictions`` or ``postgres`` connection, PostgreSQL at its host, port,
       login, password and ``schema`` (the database); for a ``sqlite`` one, the file in ``host``;
       for any other type, the connection's URI;
    2. ``$CTFLOW_PREDICTIONS_URL``;
    3. SQLite ``predictions.db`` under ``$CTFLOW_HOME`` (the embedded default).

    :param predictions_conn_id: Airflow connection id.
    """

    conn_name_attr = "predictions_conn_id"
    default_conn_name = "ctflow_predictions"
    conn_type = "ctflow_predictions"
    hook_name = "ctflow predictions store"

    def __init__(self, predictions_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(predictions_conn_id, **kwargs)

    def url(self) -> str:
        """The store's SQLAlchemy URL (steps 1-3 above)."""
        from ctflow.core.predictions import default_url

        return self.connection_url() or default_url()

    def connection_url(self) -> str | None:
        """The store's SQLAlchemy URL from the connection (step 1); None when it is not defined."""
        conn = self.connection()
        return None if conn is None else _sqlalchemy_url(conn)


def _sqlalchemy_url(conn: Connection) -> str:
    extra = conn.extra_dejson or {}
    if extra.get("sqlalchemy_url"):
        return extra["sqlalchemy_url"]
    kind = (conn.conn_type or "").lower()
    if kind in _POSTGRES_TYPES:
        if not conn.host:
            raise ValueError(f"connection {conn.conn_id!r} has neither extra sqlalchemy_url nor a host")
        from sqlalchemy import URL

        return URL.create(
            "postgresql+psycopg2", username=conn.login or None, password=conn.password or None,
            host=conn.host or None, port=conn.port or None, database=conn.schema or None,
        ).render_as_string(hide_password=False)
    if kind == "sqlite":
        return f"sqlite:///{conn.host}"
    return conn.get_uri()
