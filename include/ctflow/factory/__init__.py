"""Specs to DAGs. Light: importing this never imports pandas, scikit-learn, MLflow or Feast.

Names are resolved lazily so that ``ctflow validate`` (which needs only :mod:`discover`)
does not pay for importing Airflow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "breach_asset": "build",
    "build_ct_dag": "build",
    "build_dags": "build",
    "build_monitor_dag": "build",
    "promoted_asset": "build",
    "InvalidSpecsError": "discover",
    "LoadedSpec": "discover",
    "build_folder": "discover",
    "folder_errors": "discover",
    "load_folder": "discover",
    "raise_for_invalid_specs": "discover",
}

__all__ = [  # the names _EXPORTS loads lazily (a literal list, so tools read it)
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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ctflow.factory' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ctflow.factory.{_EXPORTS[name]}"), name)
