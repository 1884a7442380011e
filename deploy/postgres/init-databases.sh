#!/usr/bin/env bash
# Creates the stack's databases, owned by $POSTGRES_USER:
#   airflow  Airflow's metadata (and the FAB users/roles, and Celery's task results)
#   mlflow   MLflow's tracking store and model registry
#   ctflow   Feast's SQL registry (feature_repo/feature_store.production.yaml)
#
# The postgres image runs /docker-entrypoint-initdb.d/* once, when its data volume is empty.
# Idempotent all the same (a database that exists is left alone), so it may be run by hand:
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/init-databases.sh
set -euo pipefail

for database in airflow mlflow ctflow; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres --set db="$database" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', current_user)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
done
