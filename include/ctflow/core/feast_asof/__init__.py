"""A Feast offline store whose point-in-time join is DuckDB's ``ASOF JOIN``.

Select it in ``feature_store.yaml``::

    offline_store:
        type: ctflow.core.feast_asof.store.AsofDuckDBOfflineStore

* :mod:`.plan` reads what a join needs from Feast's feature views (source file, keys, TTL,
  created-timestamp tie-break, field mapping, output names);
* :mod:`.query` writes the SQL: one narrow ``ASOF LEFT JOIN`` per view;
* :mod:`.job` runs them in DuckDB, sets the views beside the entity rows, and hands Arrow,
  pandas or a parquet file back to Feast;
* :mod:`.store` plugs it into Feast, and leaves everything else to Feast's DuckDB store.

Nothing is imported here: Feast imports ``.store`` by its path.
"""
