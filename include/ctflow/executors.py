"""A LocalExecutor whose task processes start with the ML stack already imported.

Under Airflow 3 every task runs in a process forked from a LocalExecutor worker, itself forked
from the scheduler. This executor imports :data:`ctflow.preload.MODULES` in the scheduler before
it forks its workers, so every task inherits them instead of importing them again.

    AIRFLOW__CORE__EXECUTOR=ctflow.executors.PreloadingLocalExecutor

``make up`` uses it. The price: the scheduler starts slower (once) and holds the modules
(~300 MB here, shared with the workers). With the ``spawn`` start method nothing is
inherited, so nothing is preloaded.
"""

from __future__ import annotations

from airflow.executors.local_executor import LocalExecutor

from ctflow.preload import preload


class PreloadingLocalExecutor(LocalExecutor):
    """:class:`LocalExecutor` that runs :func:`ctflow.preload.preload` before forking its workers."""

    def start(self) -> None:
        if self.is_mp_using_fork:
            preload()
        super().start()
