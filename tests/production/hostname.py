"""``[core] hostname_callable`` of the native harness's workers: the name each worker reports.

In Compose every worker container has its own host name, which Airflow records on the task
instances a worker runs (``hostname``). Natively, every worker runs on the same host, so the
harness gives each its own name through ``CTFLOW_WORKER_HOSTNAME`` (the same name as its Celery
node, ``--celery-hostname``); any other process falls back to Airflow's default.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    return os.environ.get("CTFLOW_WORKER_HOSTNAME") or socket.getfqdn()
