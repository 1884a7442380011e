"""A LocalExecutor whose task processes start with the ML stack already imported.

Under Airflow 3 every task runs in a process forked (``os.fork``, no exec, on Linux) from a
LocalExecutor worker, itself forked from the scheduler. Each ctflow task then imports what its
step needs: pandas, scikit-learn, MLflow, Feast, several seconds per task on a small machine,
paid again by every task of every run. Importing them once in the scheduler, before the
executor forks its workers, hands them to every task for free (copy-on-write pages).

    AIRFLOW__CORE__EXECUTOR=ctflow.executors.PreloadingLocalExecutor

The price: the scheduler starts slower (once) and holds the modules (~300 MB here, shared
with the workers). Only modules are imported: no connection, file or thread is opened before
the fork. With the ``spawn`` start method nothing is inherited, so nothing is preloaded.
"""

from __future__ import annotations

import importlib
import logging
import time

from airflow.executors.local_executor import LocalExecutor

log = logging.getLogger(__name__)

#: What ctflow's steps import (``ctflow.core`` imports these inside its functions).
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.preprocessing",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.inspection",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.tracking",
    "feast",
    "duckdb",
    "ctflow.operators",
    "ctflow.core.steps",
    "ctflow.core.features",
    "ctflow.core.training",
    "ctflow.core.tracking",
    "ctflow.core.registry",
)


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``modules``; the ones that fail (not installed) are returned, not raised."""
    started = time.perf_counter()
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a task imports it again and reports the real error
            missing.append(name)
    log.info("ctflow preloaded %d modules in %.1f s (not available: %s)", len(modules) - len(missing),
             time.perf_counter() - started, ", ".join(missing) or "none")
    return missing


class PreloadingLocalExecutor(LocalExecutor):
    """:class:`LocalExecutor` that imports :data:`PRELOAD` before forking its workers."""

    def start(self) -> None:
        if self.is_mp_using_fork:
            preload()
        super().start()
