"""The ctflow view in the Airflow UI: a FastAPI app mounted by ``plugins/ctflow_plugin.py``."""
