#!/usr/bin/env bash
# The local services the production-path tests use, from Debian's packages: PostgreSQL on
# 127.0.0.1:5432 and Redis on 127.0.0.1:6379. Installs what is missing, starts what is stopped,
# waits until both answer, and creates the test role. Safe to run again: it changes nothing
# that already works. Run as root (`make services`, `.ci/run`).
#
#   PostgreSQL: role ctflow_test (password ctflow_test, CREATEDB), password auth on loopback,
#               the URL the tests read: CTFLOW_TEST_POSTGRES_URL
#               (default postgresql://ctflow_test:ctflow_test@127.0.0.1:5432/postgres)
#   Redis:      no password, loopback only, no persistence: CTFLOW_TEST_REDIS_URL
#               (default redis://127.0.0.1:6379)
set -euo pipefail

PG_PORT=5432
REDIS_PORT=6379
TEST_ROLE=ctflow_test
TEST_PASSWORD=ctflow_test

say() { printf '==> %s\n' "$*"; }
die() { printf 'services: %s\n' "$*" >&2; exit 1; }

ready() {
  PGPASSWORD=$TEST_PASSWORD psql -q -h 127.0.0.1 -p "$PG_PORT" -U "$TEST_ROLE" -d postgres -c 'SELECT 1' >/dev/null 2>&1 \
    && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1
}
if command -v psql >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && ready; then
  say "PostgreSQL on 127.0.0.1:$PG_PORT (role $TEST_ROLE) and Redis on 127.0.0.1:$REDIS_PORT: already up"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "PostgreSQL or Redis is not up, and installing or starting them needs root: sudo make services"

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian's packages"
  # No init system here: keep the packages' postinst from starting services; this script does.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
  trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- PostgreSQL -----------------------------------------------------------------------------
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
  say "creating PostgreSQL $version cluster main on port $PG_PORT"
  pg_createcluster --port "$PG_PORT" "$version" main >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 1; done
pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || die "PostgreSQL does not answer on 127.0.0.1:$PG_PORT (see /var/log/postgresql/)"

# The tests' role: may create (and so drop) its own throw-away databases, nothing more.
runuser -u postgres -- psql -q -p "$PG_PORT" -v ON_ERROR_STOP=1 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$TEST_ROLE') THEN
    CREATE ROLE $TEST_ROLE LOGIN CREATEDB PASSWORD '$TEST_PASSWORD';
  END IF;
END \$\$;
SQL
PGPASSWORD=$TEST_PASSWORD psql -q -h 127.0.0.1 -p "$PG_PORT" -U "$TEST_ROLE" -d postgres -c 'SELECT 1' >/dev/null \
  || die "role $TEST_ROLE cannot log in on 127.0.0.1:$PG_PORT with a password: check pg_hba.conf (host ... 127.0.0.1/32 scram-sha-256)"

# --- Redis ----------------------------------------------------------------------------------
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  say "starting Redis on 127.0.0.1:$REDIS_PORT"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ctflow-services.log
fi
for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 1; done
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 || die "Redis does not answer on 127.0.0.1:$REDIS_PORT (see /var/log/redis/ctflow-services.log)"

say "PostgreSQL $version on 127.0.0.1:$PG_PORT (role $TEST_ROLE), Redis on 127.0.0.1:$REDIS_PORT: up"
