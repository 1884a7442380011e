"""Lists every invalid ctflow spec in ``dags/specs/`` as an Airflow import error of this file.

Airflow drops all DAGs of a file whose import raises (apache/airflow#53971), so the DAGs of
valid specs are built by ``ctflow_pipelines.py`` and only this file, which defines none, raises.
Named ``ctflow_spec_errors_<k>_of_<n>.py``, this file reports only the specs of shard k of n
(``python -m ctflow.factory.shards``, for thousands of specs).
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from ctflow.factory import raise_for_invalid_specs
from ctflow.factory.shards import shard_of

if get_parsing_context().dag_id is None:  # a running task needs its own DAG, not this check
    raise_for_invalid_specs(Path(__file__).parent / "specs", shard=shard_of(__file__))
