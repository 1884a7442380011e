"""feature_repo/bootstrap.py with the production Feast config (SQL registry, Redis online store).

The init service runs it at every start. The feature data may be current (it is shared with the
embedded config) while the SQL registry is new, emptied or restored from an old backup: then
the definitions must be applied anyway, and only then is there nothing to do.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ctflow.deploy import topology

PROJECT = Path(__file__).resolve().parents[2]
BOOTSTRAP = PROJECT / "feature_repo" / "bootstrap.py"

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def production_feast_env(feature_repo_ready):
    from tests.postgres import POSTGRES_ADMIN_URL, throwaway_databases
    from tests.production.native import REDIS_URL, base_environment, require, throwaway_redis_dbs

    require("postgres", "redis")
    pg, redis = urlparse(POSTGRES_ADMIN_URL), urlparse(REDIS_URL)
    with throwaway_databases("feast") as names, throwaway_redis_dbs(1) as (feast_db,):
        registry_uri = topology.postgres_uri(user=pg.username or "postgres", password=pg.password or "",
                                             host=pg.hostname or "127.0.0.1", port=pg.port or 5432,
                                             database=names["feast"])
        yield {
            **base_environment(),
            "FEAST_FS_YAML_FILE_PATH": str(feature_repo_ready / topology.FEAST_PRODUCTION_YAML),
            "CTFLOW_FEAST_REGISTRY_URI": registry_uri,
            "CTFLOW_FEAST_REDIS": topology.feast_redis_connection_string(
                host=redis.hostname or "127.0.0.1", port=redis.port or 6379, db=feast_db, password=redis.password),
        }


def _bootstrap(env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, str(BOOTSTRAP)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_applies_to_an_empty_sql_registry_even_when_the_data_is_current(production_feast_env, feature_repo_ready):
    import sqlalchemy

    dev_registry = feature_repo_ready / "data" / "registry.db"
    dev_before = dev_registry.stat().st_mtime_ns

    first = _bootstrap(production_feast_env)
    assert "feast apply (feature_store.production.yaml)" in first and "flight_delay_v1" in first, first
    assert "building feature repo" not in first, "the data was current: only the registry needed applying"
    assert "is up to date" in _bootstrap(production_feast_env)

    # The database behind the registry loses its content (a new server, a restore of an old dump).
    engine = sqlalchemy.create_engine(production_feast_env["CTFLOW_FEAST_REGISTRY_URI"])
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
            conn.execute(sqlalchemy.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    again = _bootstrap(production_feast_env)
    assert "lacks" in again and "feast apply (feature_store.production.yaml)" in again, again

    # The embedded config's registry and stamp were left alone.
    assert dev_registry.stat().st_mtime_ns == dev_before
    assert (feature_repo_ready / "data" / "bootstrap.feature_store.production.stamp.json").exists()
