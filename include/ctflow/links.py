"""Links from Airflow to MLflow: the MLflow UI's address, its page URLs, and operator extra links.

The extra links read the XCom a task returned: ``train`` returns ``run_id``/``experiment_id``,
``register`` returns ``name``/``version``, the monitoring ``report`` task returns its MLflow run
(and, if it has one, the report's artifact path or URL). A task that returned nothing (skipped,
failed) gets no link.

Where the MLflow UI is, first found wins:

1. ``$CTFLOW_MLFLOW_UI_URL``;
2. the Airflow Variable ``ctflow_mlflow_ui_url``;
3. the Airflow connection ``ctflow_mlflow`` (:meth:`ctflow.hooks.mlflow.MlflowHook.ui_url`): extra
   ``{"ui_url": ...}``, or its host and port when it is an MLflow server (an MLflow tracking
   server serves its UI at the same address);
4. ``http://127.0.0.1:5000`` (``mlflow ui``'s default).

Only ``airflow.sdk`` is imported at module level: workers, the dag-processor and the api-server
all import this module.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"
UI_URL_ENV = "CTFLOW_MLFLOW_UI_URL"
UI_URL_VARIABLE = "ctflow_mlflow_ui_url"
MLFLOW_CONN_ID = "ctflow_mlflow"

_CACHE_SECONDS = 30.0
#: (when read, url) of the last lookup; a dict so the function updates it without a global statement.
_cached: dict[str, tuple[float, str]] = {}


def mlflow_ui_url() -> str:
    """Base URL of the MLflow UI, without a trailing slash (see the module docstring)."""
    if env := os.environ.get(UI_URL_ENV, "").strip():
        return env.rstrip("/")
    now = time.monotonic()
    if (hit := _cached.get("url")) is not None and now - hit[0] < _CACHE_SECONDS:
        return hit[1]
    url = (_from_variable() or _from_connection() or DEFAULT_MLFLOW_UI_URL).rstrip("/")
    _cached["url"] = (now, url)
    return url


def experiment_url(experiment_id: str, base: str | None = None) -> str:
    return f"{base or mlflow_ui_url()}/#/experiments/{quote(str(experiment_id), safe='')}"


def run_url(experiment_id: str, run_id: str, base: str | None = None) -> str:
    return f"{experiment_url(experiment_id, base)}/runs/{quote(str(run_id), safe='')}"


def artifact_url(experiment_id: str, run_id: str, path: str, base: str | None = None) -> str:
    return f"{run_url(experiment_id, run_id, base)}/artifactPath/{quote(path.lstrip('/'), safe='/')}"


def model_url(name: str, base: str | None = None) -> str:
    return f"{base or mlflow_ui_url()}/#/models/{quote(name, safe='')}"


def model_version_url(name: str, version: str | int, base: str | None = None) -> str:
    return f"{model_url(name, base)}/versions/{quote(str(version), safe='')}"


class _ReturnValueLink(BaseOperatorLink):
    """A link built from the task's own return value (XCom ``return_value``)."""

    name = "MLflow"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        value = task_return_value(ti_key)
        if not isinstance(value, dict):
            return ""
        try:
            return self.url_for(value) or ""
        except (KeyError, TypeError, ValueError):
            return ""

    def url_for(self, value: dict[str, Any]) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError


class MlflowRunLink(_ReturnValueLink):
    """``train`` → its MLflow run (params, metrics, plots, the model)."""

    name = "MLflow run"

    def url_for(self, value: dict[str, Any]) -> str | None:
        if value.get("run_id") and value.get("experiment_id"):
            return run_url(value["experiment_id"], value["run_id"])
        return None


class ModelVersionLink(_ReturnValueLink):
    """``register`` → the registered model version's page in MLflow."""

    name = "MLflow model version"

    def url_for(self, value: dict[str, Any]) -> str | None:
        if value.get("name") and value.get("version") is not None:
            return model_version_url(value["name"], value["version"])
        return None


class MonitoringReportLink(_ReturnValueLink):
    """
    The monitoring ``report`` task → its report.

    Reads, in order: ``report_url`` (a full URL), ``report_path``/``report`` (an artifact path
    of the task's MLflow run ``run_id``/``mlflow_run_id`` in ``experiment_id``/``mlflow_experiment_id``),
    else the run itself.
    """

    name = "Monitoring report"

    @property
    def operators(self) -> list[type]:
        """Attached by the plugin to the monitoring report operator; resolved lazily (no import cycle)."""
        from ctflow.operators.monitoring import MonitoringReportOperator

        return [MonitoringReportOperator]

    def url_for(self, value: dict[str, Any]) -> str | None:
        if value.get("report_url"):
            return str(value["report_url"])
        # The report task returns its run as mlflow_run_id/mlflow_experiment_id (core.monitoring.report).
        run_id = value.get("run_id") or value.get("mlflow_run_id")
        experiment_id = value.get("experiment_id") or value.get("mlflow_experiment_id")
        if not (run_id and experiment_id):
            return None
        path = value.get("report_path") or value.get("report")
        if isinstance(path, str) and path and "://" not in path and not path.startswith("/"):
            return artifact_url(experiment_id, run_id, path)
        return run_url(experiment_id, run_id)


def task_return_value(ti_key: Any) -> Any:
    """The ``return_value`` XCom of a task instance, inside a running task or in the api-server."""
    if hasattr(ti_key, "xcom_pull"):  # a RuntimeTaskInstance: the task runner finalizing the task
        return ti_key.xcom_pull(task_ids=ti_key.task_id, key="return_value", map_indexes=ti_key.map_index)
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                key="return_value",
                run_id=ti_key.run_id,
                dag_ids=ti_key.dag_id,
                task_ids=ti_key.task_id,
                map_indexes=ti_key.map_index,
            )
        ).scalars().first()
        return XComModel.deserialize_value(row) if row is not None else None


def _from_variable() -> str | None:
    try:
        from airflow.sdk import Variable

        value = Variable.get(UI_URL_VARIABLE, default=None)
    except Exception:  # noqa: BLE001 - no Airflow context (a CLI), or the secrets backend is down: not fatal
        value = None
    return str(value).strip() or None if value else None


def _from_connection() -> str | None:
    try:
        from ctflow.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=MLFLOW_CONN_ID).ui_url()
    except Exception:  # noqa: BLE001 - no Airflow context, or the secrets backend is down: not fatal
        return None
