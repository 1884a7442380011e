"""Feast repository location from an Airflow connection, with the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from ctflow.hooks.mlflow import _connection_or_none


class FeastHook(BaseHook):
    """
    Resolve the Feast repository ctflow reads features from.

    The connection (default ``ctflow_feast``) holds ``{"repo_path": "/path/to/feature_repo"}``
    in its extra. Without it, ``$CTFLOW_FEATURE_REPO`` or the project's ``feature_repo/``.

    :param feast_conn_id: Airflow connection id.
    """

    conn_name_attr = "feast_conn_id"
    default_conn_name = "ctflow_feast"
    conn_type = "generic"
    hook_name = "ctflow Feast"

    def __init__(self, feast_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.feast_conn_id = feast_conn_id

    def repo_path(self) -> Path:
        from ctflow import settings

        conn = _connection_or_none(self, self.feast_conn_id)
        path = (conn.extra_dejson or {}).get("repo_path") if conn is not None else None
        return Path(path) if path else settings.feature_repo()
