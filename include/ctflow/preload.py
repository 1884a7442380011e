"""What ctflow's tasks import, imported once in the process that forks them.

Under Airflow 3 every task runs in a process forked (``os.fork``, no exec, on Linux) from its
executor's worker: a LocalExecutor worker, itself forked from the scheduler, or a Celery
worker's pool process. Each ctflow task then imports what its step needs (pandas,
scikit-learn, MLflow, Feast and the modules of the Feast store it opens), several seconds of
CPU per task on a small host, paid again by every task of every run. Imported once before the
fork, they are inherited by every task (copy-on-write pages).

Used by ``ctflow.executors.PreloadingLocalExecutor`` (in the scheduler, before the executor
forks its workers) and by the production Celery workers (``ctflow.deploy.topology``, before
the pool forks). Only modules are imported: no connection, file or thread is opened before the
fork. Airflow-free.
"""

from __future__ import annotations

import importlib
import logging
import os
import time

log = logging.getLogger(__name__)

#: What ctflow's steps import inside their functions (``ctflow.core`` keeps them off module
#: level so that parsing a DAG stays light), and what opening the Feast store imports: its
#: offline store (ctflow's ASOF store, on Feast's DuckDB/ibis store: ~3 s per task on a loaded
#: 2-core host), the file and SQL registries, the SQLite and Redis online stores. A module that
#: is not installed is skipped.
MODULES: tuple[str, ...] = (
    "numpy", "pandas", "pyarrow.parquet", "scipy.stats", "duckdb", "matplotlib.pyplot",
    "sklearn.pipeline", "sklearn.compose", "sklearn.impute", "sklearn.preprocessing", "sklearn.ensemble",
    "sklearn.linear_model", "sklearn.metrics", "sklearn.inspection",
    "mlflow", "mlflow.sklearn", "mlflow.tracking", "mlflow.tracking.request_header.registry",
    "feast", "feast.repo_operations", "feast.infra.registry.file", "feast.infra.registry.sql",
    "feast.infra.online_stores.sqlite", "feast.infra.online_stores.redis", "ctflow.core.feast_asof.store",
    "ctflow.operators", "ctflow.core.steps", "ctflow.core.features", "ctflow.core.training",
    "ctflow.core.evaluation", "ctflow.core.tracking", "ctflow.core.registry", "ctflow.core.monitoring",
    "ctflow.core.drift",
)  # fmt: skip


def preload(modules: tuple[str, ...] = MODULES) -> list[str]:
    """Import ``modules``; the ones that fail are returned and logged, not raised (a task
    imports them again and reports the real error)."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # pyplot without a display
    started = time.perf_counter()
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - a missing extra must not stop the scheduler or worker
            failed.append(name)
            log.warning("ctflow could not preload %s: %s: %s", name, type(err).__name__, err)
    log.info("ctflow preloaded %d modules in %.1f s (not available: %s)", len(modules) - len(failed),
             time.perf_counter() - started, ", ".join(failed) or "none")
    return failed
