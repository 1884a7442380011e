# The one image of ctflow's production stack: every Airflow component, the init job and the
# MLflow server run it, each with its own command (docker-compose.yml, ctflow.deploy.topology).
#
#   GIT_COMMIT=$(git rev-parse HEAD) docker compose build   # or docker-compose build
#   docker build -t ctflow:0.1.0 --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
#   # no registry (air-gapped): the Python base from Debian's packages, `make images`
#   docker build -t ctflow:0.1.0 --build-arg PYTHON_IMAGE=ctflow-base/python:3.11 .
#
# One stage, so that the 1.4 GB environment is written once: a second stage's `COPY --from` of it
# took 176 s of a 630 s build on this machine's storage driver (fuse-overlayfs), and every
# instruction after it costs a commit of tens of seconds. uv is installed, used and removed within
# the one RUN that installs exactly uv.lock: the image holds no uv, no pip cache, no build tools.
# Works with the legacy builder and with BuildKit (no BuildKit-only syntax).
# Nothing secret is baked in: credentials arrive at run time through the environment (.env).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE}

# Everything that does not change with the code or the lock comes first.
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

# The environment: exactly uv.lock without the dev group, and ctflow installed editable (a path to
# /app/include), so the layer depends on pyproject.toml and uv.lock only, and a code or README
# change finds it cached. The package folder and the README (the metadata's long description)
# are placeholders here; the real ones arrive with the code below. uv comes from PyPI, pinned, in
# a virtualenv of its own (Debian's Python refuses a system-wide pip install, PEP 668), and leaves
# with the placeholders in the same RUN.
ARG UV_VERSION=0.13.9
COPY pyproject.toml uv.lock ./
RUN python3 -m venv /opt/uv \
 && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}" \
 && mkdir -p include/ctflow && touch include/ctflow/__init__.py README.md \
 && UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv \
    /opt/uv/bin/uv sync --frozen --no-dev \
 && rm -rf /opt/uv include README.md /root/.cache

# The code, read-only to the user that runs it (COPY writes as root whatever USER says).
COPY . /app
USER ctflow

# Last, as it changes with every commit: the code version every training records in MLflow
# (the image has no .git).
ARG GIT_COMMIT=unknown
ENV CTFLOW_CODE_VERSION=${GIT_COMMIT}
LABEL org.opencontainers.image.revision="${GIT_COMMIT}"
