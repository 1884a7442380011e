"""The local PostgreSQL service for tests: is it usable, and throw-away databases on it."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

from ctflow.core.registry_lock import redact_password

POSTGRES_ADMIN_URL = os.environ.get("CTFLOW_TEST_POSTGRES_URL", "postgresql://ctflow_test:ctflow_test@127.0.0.1:5432/postgres")


def postgres_unavailable(url: str = POSTGRES_ADMIN_URL) -> str | None:
    """Why the local PostgreSQL cannot be used (None: it can)."""
    try:
        import psycopg2

        with contextlib.closing(psycopg2.connect(url, connect_timeout=3)) as conn, conn.cursor() as cur:
            cur.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
            if not cur.fetchone()[0]:
                return f"the PostgreSQL user of {redact_password(url)} may not create databases"
    except Exception as err:  # noqa: BLE001 - any reason is a reason to skip
        return f"no PostgreSQL at {redact_password(url)} ({type(err).__name__}: {str(err).strip().splitlines()[0]})"
    return None


@contextlib.contextmanager
def throwaway_databases(*purposes: str, admin_url: str = POSTGRES_ADMIN_URL) -> Iterator[dict[str, str]]:
    """Create ``ctflow_test_<random>_<purpose>`` databases; drop them afterwards."""
    import psycopg2
    from psycopg2 import sql

    prefix = f"ctflow_test_{secrets.token_hex(4)}"
    names = {purpose: f"{prefix}_{purpose}" for purpose in purposes}
    conn = psycopg2.connect(admin_url, connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name in names.values():
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield names
    finally:
        with conn.cursor() as cur:
            for name in names.values():
                # FORCE: a connection a killed process left behind must not keep the database alive.
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.close()
