#!/usr/bin/env bash
# Feast's own offline-store integration tests (sdk/python/tests/integration/offline_store), run
# against ctflow's ASOF store and, as the reference, Feast's DuckDB store, through Feast's data-source
# test harness. Usage: benchmarks/feast_conformance/run.sh FEAST_CHECKOUT [pytest args...]
# FEAST_CHECKOUT is a checkout of github.com/feast-dev/feast (the tests are not in the wheel or the
# sdist), ideally at the installed version's tag. Results: benchmarks/feast_conformance/results.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="$(cd "$here/../.." && pwd)"
checkout="$(cd "${1:?usage: run.sh FEAST_CHECKOUT [pytest args]}" && pwd)"
shift
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The harness imports `tests.…` from the checkout's sdk/python and our module from its own package.
mkdir -p "$work/ctflow_conformance"
touch "$work/ctflow_conformance/__init__.py"
cp "$here/asof_repo_configuration.py" "$here/count_plugin.py" "$work/ctflow_conformance/"
cd "$checkout"
# Feast's test extras that its conftest imports (testcontainers, keycloak, minio, xdist's worker_id),
# layered over the project's locked environment for this run only.
PYTHONPATH="$checkout:$checkout/sdk/python:$work" FEAST_IS_LOCAL_TEST=True IS_TEST=True \
FULL_REPO_CONFIGS_MODULE=ctflow_conformance.asof_repo_configuration \
  uv run --project "$project" --frozen --with testcontainers --with pytest-asyncio --with pytest-env \
  --with pytest-mock --with python-keycloak==4.2.2 --with minio==7.2.11 --with pytest-benchmark --with pytest-xdist \
  python -m pytest -c sdk/python/pytest.ini --integration -p no:cacheprovider -p ctflow_conformance.count_plugin -rA -q \
  --ignore=sdk/python/tests/integration/offline_store/test_dqm_validation.py \
  "${@:-sdk/python/tests/integration/offline_store}"
