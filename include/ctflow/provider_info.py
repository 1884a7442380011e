"""ctflow as an Airflow provider: its connection types (with their forms), hooks, links and notifier.

Airflow calls :func:`get_provider_info` through the ``apache_airflow_provider`` entry point of the
installed package (``pyproject.toml``) and validates the answer against its
``provider_info.schema.json``. The connection forms are declared here (``conn-fields``,
``ui-field-behaviour``), not by hook methods: since Airflow 3.2 that is how the UI learns them
without importing the hooks (``get_ui_field_behaviour``/``get_connection_form_widgets`` are
deprecated). So this module imports nothing; ``tests/deploy/test_provider_registration.py``
checks that each entry agrees with its hook class.

Each system has a connection type of its own (``ctflow_mlflow``, ``ctflow_feast``,
``ctflow_predictions``, ``ctflow_webhook``) rather than ``http``/``generic``: ctflow must not
claim a type another provider owns, and each form then shows the fields ctflow reads (the
extras ``tracking_uri``, ``repo_path``, ``sqlalchemy_url``, ``headers``...). The hooks read the
fields, not the type, so connections of the older types (``http``, ``generic``, ``postgres``)
keep working.
"""

from __future__ import annotations

import copy
from typing import Any

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}


def _field(label: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {**_NULLABLE_STRING, **schema}}


_CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "connection-type": "ctflow_mlflow",
        "hook-class-name": "ctflow.hooks.mlflow.MlflowHook",
        "hook-name": "ctflow MLflow",
        "conn-fields": {
            "tracking_uri": _field(
                "Tracking URI", "A tracking URI used as is (e.g. postgresql://... or sqlite:///...); "
                "when set, host and port are not used for tracking."),
            "ui_url": _field("MLflow UI URL", "Where people open the MLflow UI, if not at host:port.", format="url"),
        },
        "ui-field-behaviour": {
            "hidden-fields": [],
            "relabeling": {"schema": "Scheme", "login": "Username (basic auth)"},
            "placeholders": {"host": "mlflow.example.com", "port": "5000", "schema": "http or https",
                             "tracking_uri": "postgresql://user@db/mlflow", "ui_url": "https://mlflow.example.com"},
        },
    },
    {
        "connection-type": "ctflow_feast",
        "hook-class-name": "ctflow.hooks.feast.FeastHook",
        "hook-name": "ctflow Feast",
        "conn-fields": {
            "repo_path": _field("Feature repository", "Path of the Feast repository (feature_store.yaml) "
                                "on the workers."),
        },
        "ui-field-behaviour": {
            "hidden-fields": ["host", "port", "login", "password", "schema"],
            "relabeling": {},
            "placeholders": {"repo_path": "/app/feature_repo"},
        },
    },
    {
        "connection-type": "ctflow_predictions",
        "hook-class-name": "ctflow.hooks.predictions.PredictionsStoreHook",
        "hook-name": "ctflow predictions store",
        "conn-fields": {
            "sqlalchemy_url": _field("SQLAlchemy URL", "The store's URL used as is; when set, the PostgreSQL "
                                     "fields are not used.", format="password"),
        },
        "ui-field-behaviour": {
            "hidden-fields": [],
            "relabeling": {"host": "PostgreSQL host", "schema": "Database"},
            "placeholders": {"port": "5432", "schema": "ctflow", "sqlalchemy_url": "sqlite:////data/predictions.db"},
        },
    },
    {
        "connection-type": "ctflow_webhook",
        "hook-class-name": "ctflow.hooks.webhook.WebhookHook",
        "hook-name": "ctflow alert webhook",
        "conn-fields": {
            "path": _field("Path", "Appended to the URL."),
            "headers": {"label": "Headers", "description": "Extra HTTP headers, e.g. a token; never logged.",
                        "schema": {"type": ["object", "null"]}},
        },
        "ui-field-behaviour": {
            "hidden-fields": ["login", "password"],
            "relabeling": {"host": "Host or URL", "schema": "Scheme (http/https) or path"},
            "placeholders": {"host": "https://hooks.example.com/services/x", "schema": "https",
                             "headers": '{"Authorization": "Bearer ..."}'},
        },
    },
]


def get_provider_info() -> dict[str, Any]:
    """ctflow's provider info (Airflow's runtime ``provider_info.schema.json``)."""
    from ctflow import __version__

    return {
        "package-name": "ctflow",
        "name": "ctflow",
        "description": "Continuous-training pipelines for scikit-learn models from a YAML spec: "
                       "Feast features, MLflow tracking and registry, monitoring.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "ctflow MLflow", "external-doc-url": "https://mlflow.org/docs/latest/",
             "tags": ["software"]},
            {"integration-name": "ctflow Feast", "external-doc-url": "https://docs.feast.dev/", "tags": ["software"]},
            {"integration-name": "ctflow predictions store", "tags": ["software"]},
            {"integration-name": "ctflow alert webhook", "tags": ["protocol"]},
        ],
        "hooks": [
            {"integration-name": "ctflow MLflow", "python-modules": ["ctflow.hooks.mlflow"]},
            {"integration-name": "ctflow Feast", "python-modules": ["ctflow.hooks.feast"]},
            {"integration-name": "ctflow predictions store", "python-modules": ["ctflow.hooks.predictions"]},
            {"integration-name": "ctflow alert webhook", "python-modules": ["ctflow.hooks.webhook"]},
        ],
        "connection-types": copy.deepcopy(_CONNECTION_TYPES),  # Airflow may annotate what it gets
        "extra-links": [
            "ctflow.links.MlflowRunLink",
            "ctflow.links.ModelVersionLink",
            "ctflow.links.MonitoringReportLink",
        ],
        "notifications": ["ctflow.notifiers.CtflowAlertNotifier"],
    }
