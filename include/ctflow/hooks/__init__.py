"""Airflow hooks: where ctflow finds MLflow and Feast when it runs inside Airflow."""

from ctflow.hooks.feast import FeastHook
from ctflow.hooks.mlflow import MlflowHook

__all__ = ["FeastHook", "MlflowHook"]
