"""ctflow in the Airflow UI: the pipelines view, and links from ctflow tasks to MLflow.

* ``/ctflow`` — a FastAPI app in the api-server (``ctflow.ui.app``), shown in the navigation
  as *ctflow* and on every DAG's page as a *ctflow* tab;
* extra links on the tasks: ``train`` → its MLflow run, ``register`` → the model version,
  the monitoring ``report`` → its report (``ctflow.links``).

Airflow finds it through the ``airflow.plugins`` entry point of the installed package
(``pyproject.toml``), so ``pip install ctflow`` is enough: no file in the plugins folder. It is
not also listed under ``plugins`` in :mod:`ctflow.provider_info`: Airflow loads both sources and
reports the second plugin of the same name as an import error.

Every Airflow process loads the plugins (the scheduler, the dag-processor, each task's runner),
but only the api-server mounts the app: the view (FastAPI, Jinja, MLflow readers) is imported
when Airflow first reads ``fastapi_apps`` or ``external_views``, not when the plugin is loaded.
"""

from __future__ import annotations

import functools
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from ctflow.links import MlflowRunLink, ModelVersionLink, MonitoringReportLink


class CtflowPlugin(AirflowPlugin):
    """ctflow's view and extra links in the Airflow UI (see the module docs).

    Airflow reads the attributes of the plugin's instance, so the view's two lists are
    cached properties that import :mod:`ctflow.ui.app` on first use (see the module docs).
    """

    name = "ctflow"
    # AirflowPlugin declares these as plain class attributes; Airflow reads them, nobody mutates them.
    operator_extra_links = [MlflowRunLink(), ModelVersionLink(), MonitoringReportLink()]  # noqa: RUF012

    @functools.cached_property  # one list per plugin: Airflow removes what it refuses from it
    def fastapi_apps(self) -> list[dict[str, Any]]:
        from ctflow.ui.app import URL_PREFIX, app

        return [{"app": app, "url_prefix": URL_PREFIX, "name": "ctflow pipelines"}]

    @functools.cached_property  # one list per plugin: Airflow removes what it refuses from it
    def external_views(self) -> list[dict[str, Any]]:
        from ctflow.ui.app import view_href

        return [
            {"name": "ctflow", "href": view_href("/"), "url_route": "ctflow", "destination": "nav"},
            {"name": "ctflow", "href": view_href("/dag/{DAG_ID}"), "url_route": "ctflow-dag", "destination": "dag"},
        ]
