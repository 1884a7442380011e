"""Airflow hooks: where ctflow finds MLflow, Feast, the predictions store and alert webhooks.

One hook per external system, each owning one connection (``conn_name_attr``,
``default_conn_name``, ``conn_type``); :mod:`ctflow.hooks.base` is what they share. The
connection types and their forms in the Airflow UI are declared in :mod:`ctflow.provider_info`.
"""

from ctflow.hooks.base import CtflowHook, connection_or_none
from ctflow.hooks.feast import FeastHook
from ctflow.hooks.mlflow import MlflowHook
from ctflow.hooks.predictions import PredictionsStoreHook
from ctflow.hooks.webhook import WebhookHook

__all__ = ["CtflowHook", "FeastHook", "MlflowHook", "PredictionsStoreHook", "WebhookHook", "connection_or_none"]
