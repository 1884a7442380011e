"""Where the Feast feature repository is, from an Airflow connection, with the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctflow.hooks.base import CtflowHook


class FeastHook(CtflowHook):
    """
    Resolve the Feast repository ctflow reads features from.

    The connection (default ``ctflow_feast``, type ``ctflow_feast``; a ``generic`` one is read
    the same way) holds ``{"repo_path": "/path/to/feature_repo"}`` in its extra. Without it, or
    without ``repo_path``: ``$CTFLOW_FEATURE_REPO``, else the project's ``feature_repo/``.

    :param feast_conn_id: Airflow connection id.
    """

    conn_name_attr = "feast_conn_id"
    default_conn_name = "ctflow_feast"
    conn_type = "ctflow_feast"
    hook_name = "ctflow Feast"

    def __init__(self, feast_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(feast_conn_id, **kwargs)

    def repo_path(self) -> Path:
        from ctflow import settings

        conn = self.connection()
        path = (conn.extra_dejson or {}).get("repo_path") if conn is not None else None
        return Path(path) if path else settings.feature_repo()
