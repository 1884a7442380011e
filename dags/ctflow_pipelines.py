"""Airflow DAGs of every valid ctflow spec in ``dags/specs/``: ``ct_<name>`` and ``monitor_<name>``.

Invalid specs are reported by ``ctflow_spec_errors.py`` instead, so that they never hide these.
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from ctflow.factory import build_folder

globals().update(build_folder(Path(__file__).parent / "specs", dag_id=get_parsing_context().dag_id))
