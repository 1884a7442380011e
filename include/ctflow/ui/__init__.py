"""The ctflow view in the Airflow UI: a FastAPI app mounted by :mod:`ctflow.plugin`."""
