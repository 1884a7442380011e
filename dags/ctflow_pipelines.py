"""Airflow DAGs of every valid ctflow spec in ``dags/specs/``: ``ct_<name>`` and ``monitor_<name>``.

Invalid specs are reported by ``ctflow_spec_errors.py`` instead, so that they never hide these.
Named ``ctflow_pipelines_<k>_of_<n>.py``, this file builds only shard k of n of the specs
(``python -m ctflow.factory.shards``, for thousands of specs).
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from ctflow.factory import build_folder
from ctflow.factory.shards import shard_of

globals().update(
    build_folder(Path(__file__).parent / "specs", dag_id=get_parsing_context().dag_id, shard=shard_of(__file__))
)
