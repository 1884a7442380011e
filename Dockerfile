# The one image of ctflow's production stack: every Airflow component, the init job and the
# MLflow server run it, each with its own command (docker-compose.yml, ctflow.deploy.topology).
#
#   GIT_COMMIT=$(git rev-parse HEAD) docker compose build   # or docker-compose build
#   docker build -t ctflow:0.1.0 --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
#   # no registry (air-gapped): the Python base from Debian's packages, `make images`
#   docker build -t ctflow:0.1.0 --build-arg PYTHON_IMAGE=ctflow-base/python:3.11 .
#
# Two stages: the builder installs uv (from PyPI, pinned) and exactly uv.lock into /app/.venv;
# the final image gets the environment and the code, no uv, no pip cache, no build tools.
# Works with the legacy builder and with BuildKit (no BuildKit-only syntax).
# Nothing secret is baked in: credentials arrive at run time through the environment (.env).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# uv from PyPI, pinned, in a virtualenv of its own (Debian's Python refuses a system-wide pip
# install, PEP 668), so that the build resolves nothing: it installs what uv.lock says.
RUN python3 -m venv /opt/uv \
 && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

WORKDIR /app

# 1. The locked dependencies only: this layer is rebuilt when pyproject.toml or uv.lock change,
#    not when the code does.
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project

# 2. The project: dags/, plugins/, feature_repo/, include/, deploy/ (.dockerignore keeps out
#    the rest, .env and local state included), then ctflow itself into the same environment.
#    (No bytecode compilation this time: it would rewrite every .pyc of the environment into
#    this layer; ctflow's own few modules are compiled in memory when imported.)
COPY . .
RUN UV_COMPILE_BYTECODE=0 /opt/uv/bin/uv sync --frozen --no-dev

FROM ${PYTHON_IMAGE}

# Everything that does not change with the code comes first: on a big image (and a slow
# storage driver) every instruction after the environment's layer costs seconds.
# The user everything runs as (uid/gid 50000, like Airflow's own image). It owns only the
# folders it writes (the mount points of the named volumes, which a new volume takes the
# ownership of, and Airflow's home); the code and the virtualenv stay root's, read-only to it.
RUN groupadd --system --gid 50000 ctflow \
 && useradd --system --uid 50000 --gid ctflow --create-home --home-dir /home/ctflow --shell /usr/sbin/nologin ctflow \
 && mkdir -p /app/airflow /app/feature_repo/data /var/lib/ctflow /var/lib/airflow/logs /var/lib/mlflow/artifacts \
 && chown ctflow:ctflow /app/airflow /app/feature_repo/data /var/lib/ctflow /var/lib/airflow/logs /var/lib/mlflow/artifacts

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CTFLOW_PROJECT=/app \
    AIRFLOW_HOME=/app/airflow
LABEL org.opencontainers.image.title="ctflow" \
      org.opencontainers.image.description="Continuous-training pipelines for scikit-learn from a YAML spec, on Airflow 3, Feast and MLflow" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /app
# api-server, MLflow, worker log server.
EXPOSE 8080 5000 8793
CMD ["airflow", "version"]
# COPY writes as root whatever USER says: the files stay read-only to ctflow.
USER ctflow

# The environment: its content depends on pyproject.toml and uv.lock only (ctflow is installed
# editable, pointing at /app/include), so a code change finds this layer cached.
COPY --from=builder /app/.venv /app/.venv
COPY . /app

# Last, as it changes with every commit: the code version every training records in MLflow
# (the image has no .git).
ARG GIT_COMMIT=unknown
ENV CTFLOW_CODE_VERSION=${GIT_COMMIT}
LABEL org.opencontainers.image.revision="${GIT_COMMIT}"
