"""Where the Feast feature repository is, from an Airflow connection, with the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.hooks.base import CtflowHook

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec


class FeastHook(CtflowHook):
    """
    Resolve the Feast repository ctflow reads features from.

    A spec that names its repository (``data.feature_repo``) is read from it, whatever the
    connection says: two teams' pipelines each keep their own repository.
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

    def repo_path(self, spec: PipelineSpec | None = None) -> Path:
        """The repository of ``spec``'s pipeline (its ``data.feature_repo``), else the connection's."""
        from ctflow import settings

        if spec is not None and spec.data.feature_repo is not None:
            from ctflow.core.features import pipeline_repo

            return pipeline_repo(spec)
        conn = self.connection()
        path = (conn.extra_dejson or {}).get("repo_path") if conn is not None else None
        return Path(path) if path else settings.feature_repo()
