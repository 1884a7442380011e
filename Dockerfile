# syntax=docker/dockerfile:1
# The one image of ctflow's production stack: every Airflow component, the init job and the
# MLflow server run it, each with its own command (docker-compose.yml, ctflow.deploy.topology).
#
#   GIT_COMMIT=$(git rev-parse HEAD) docker compose build   # or: docker build -t ctflow:0.1.0 --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
#
# Nothing secret is baked in: credentials arrive at run time through the environment (.env).
FROM python:3.11-slim

ARG UV_VERSION=0.13.9
ARG CTFLOW_VERSION=0.1.0
ARG GIT_COMMIT=unknown

LABEL org.opencontainers.image.title="ctflow" \
      org.opencontainers.image.description="Continuous-training pipelines for scikit-learn from a YAML spec, on Airflow 3, Feast and MLflow" \
      org.opencontainers.image.version="${CTFLOW_VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# uv from PyPI, pinned, so that the build resolves nothing: it installs what uv.lock says.
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

# The user everything runs as (uid/gid 50000, like Airflow's own image). It owns only the
# folders it writes; the code and the virtualenv stay root's, read-only to it.
RUN groupadd --system --gid 50000 ctflow \
 && useradd --system --uid 50000 --gid ctflow --create-home --home-dir /home/ctflow --shell /usr/sbin/nologin ctflow

WORKDIR /app

# 1. The locked dependencies only: this layer is rebuilt when pyproject.toml or uv.lock change,
#    not when the code does.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# 2. The project: dags/, plugins/, feature_repo/, include/, deploy/ (.dockerignore keeps out
#    the rest, .env and local state included), then ctflow itself into the same environment.
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# Mount points of the named volumes (a new volume takes this ownership) and Airflow's home.
RUN mkdir -p /app/airflow /app/feature_repo/data /var/lib/ctflow /var/lib/airflow/logs /var/lib/mlflow/artifacts \
 && chown ctflow:ctflow /app/airflow /app/feature_repo/data /var/lib/ctflow /var/lib/airflow/logs /var/lib/mlflow/artifacts

ENV PATH=/app/.venv/bin:$PATH \
    CTFLOW_PROJECT=/app \
    AIRFLOW_HOME=/app/airflow \
    CTFLOW_CODE_VERSION=${GIT_COMMIT}

USER ctflow

# api-server, MLflow, worker log server.
EXPOSE 8080 5000 8793

CMD ["airflow", "version"]
