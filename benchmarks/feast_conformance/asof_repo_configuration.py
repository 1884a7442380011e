"""Feast's universal offline-store test harness pointed at ctflow's ASOF store, beside Feast's own DuckDB store.

Feast's integration tests read the stores to test from the module named by
``FULL_REPO_CONFIGS_MODULE`` (``feast.constants.FULL_REPO_CONFIGS_MODULE_ENV_NAME``): this is that
module. Both stores read the same parquet files written by Feast's ``FileDataSourceCreator``, so a
test that passes for ``DuckDB`` and fails for ``Asof`` is a difference in the join, nothing else.
"""

from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig

from ctflow.core.feast_asof.store import AsofDuckDBOfflineStoreConfig
from tests.universal.feature_repos.universal.data_sources.file import FileDataSourceCreator


class AsofDataSourceCreator(FileDataSourceCreator):
    def create_offline_store_config(self):
        return AsofDuckDBOfflineStoreConfig()


class DuckDBDataSourceCreator(FileDataSourceCreator):
    def create_offline_store_config(self):
        return DuckDBOfflineStoreConfig()


AVAILABLE_OFFLINE_STORES = [("local", AsofDataSourceCreator), ("local", DuckDBDataSourceCreator)]
AVAILABLE_ONLINE_STORES = {"sqlite": ({"type": "sqlite"}, None)}
