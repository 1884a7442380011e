"""ctflow in the Airflow UI: the pipelines view, and links from ctflow tasks to MLflow.

* ``/ctflow`` — a FastAPI app in the api-server (``ctflow.ui.app``), shown in the navigation
  as *ctflow* and on every DAG's page as a *ctflow* tab;
* extra links on the tasks: ``train`` → its MLflow run, ``register`` → the model version,
  the monitoring ``report`` → its report (``ctflow.links``).

Airflow finds it through the ``airflow.plugins`` entry point of the installed package
(``pyproject.toml``), so ``pip install ctflow`` is enough: no file in the plugins folder. It is
not also listed under ``plugins`` in :mod:`ctflow.provider_info`: Airflow loads both sources and
reports the second plugin of the same name as an import error.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from ctflow.links import MlflowRunLink, ModelVersionLink, MonitoringReportLink
from ctflow.ui.app import URL_PREFIX, app, view_href


class CtflowPlugin(AirflowPlugin):
    """ctflow's view and extra links in the Airflow UI (see the module docs)."""

    name = "ctflow"
    # AirflowPlugin declares these as plain class attributes; Airflow reads them, nobody mutates them.
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "ctflow pipelines"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {"name": "ctflow", "href": view_href("/"), "url_route": "ctflow", "destination": "nav"},
        {"name": "ctflow", "href": view_href("/dag/{DAG_ID}"), "url_route": "ctflow-dag", "destination": "dag"},
    ]
    operator_extra_links = [MlflowRunLink(), ModelVersionLink(), MonitoringReportLink()]  # noqa: RUF012
