"""Specs to DAGs. Light: importing this never imports pandas, scikit-learn, MLflow or Feast."""

from ctflow.factory.build import breach_asset, build_ct_dag, build_dags, build_monitor_dag, promoted_asset
from ctflow.factory.discover import (
    InvalidSpecsError,
    LoadedSpec,
    build_folder,
    folder_errors,
    load_folder,
    raise_for_invalid_specs,
)

__all__ = [
    "InvalidSpecsError",
    "LoadedSpec",
    "breach_asset",
    "build_ct_dag",
    "build_dags",
    "build_folder",
    "build_monitor_dag",
    "folder_errors",
    "load_folder",
    "promoted_asset",
    "raise_for_invalid_specs",
]
