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

import importlib
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from ctflow.links import MlflowRunLink, ModelVersionLink, MonitoringReportLink


class _UiAttribute:
    """A plugin attribute computed from :mod:`ctflow.ui.app` when first read.

    Every task process loads every plugin (for macros) but reads only ``macros`` and the
    links; importing the UI (FastAPI, Starlette, Jinja) there cost each task start ~1 s here.
    """

    def __init__(self, make):
        self.make = make

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type) -> list[dict[str, Any]]:
        value = self.make(importlib.import_module("ctflow.ui.app"))
        setattr(owner, self.name, value)  # computed once
        return value


class CtflowPlugin(AirflowPlugin):
    """ctflow's view and extra links in the Airflow UI (see the module docs)."""

    name = "ctflow"
    fastapi_apps = _UiAttribute(lambda ui: [{"app": ui.app, "url_prefix": ui.URL_PREFIX, "name": "ctflow pipelines"}])
    external_views = _UiAttribute(lambda ui: [
        {"name": "ctflow", "href": ui.view_href("/"), "url_route": "ctflow", "destination": "nav"},
        {"name": "ctflow", "href": ui.view_href("/dag/{DAG_ID}"), "url_route": "ctflow-dag", "destination": "dag"},
    ])
    operator_extra_links = [MlflowRunLink(), ModelVersionLink(), MonitoringReportLink()]  # noqa: RUF012
