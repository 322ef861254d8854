# syntax=docker/dockerfile:1
#
# The one image recipe for every Pilar component (the five services and the gateway).
# docker-compose.yml builds each component from this file with its own build arguments;
# by hand, from the repository root (the build needs libs/ and uv.lock):
#
#   docker build -f deploy/docker/service.Dockerfile \
#     --build-arg SERVICE_DIR=services/registry --build-arg PACKAGE=registry \
#     --build-arg DIST=pilar-registry --build-arg PORT=8001 -t pilar/registry .
#
# Stages: `manifests` keeps only pyproject.toml files and uv.lock (so the dependency layer
# is rebuilt only when they change), `builder` installs uv and syncs the component's
# locked dependencies into /app/.venv, `runtime` is python:3.11-slim with that virtual
# environment, the kernel's and the component's sources, a non-root user and a health check.

ARG PYTHON_IMAGE=python:3.11-slim

# --------------------------------------------------------------------------- manifests
FROM ${PYTHON_IMAGE} AS manifests
COPY . /src
RUN find /src -type f ! -name pyproject.toml ! -name uv.lock -delete \
 && find /src -depth -type d -empty -delete

# --------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE_DIR
ARG DIST
RUN test -n "${SERVICE_DIR}" && test -n "${DIST}" \
    || { echo "build arguments SERVICE_DIR and DIST are required" >&2; exit 1; }
RUN pip install --no-cache-dir --root-user-action=ignore uv==0.13.8
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /app
# Every workspace member's pyproject.toml is needed for uv to read the workspace; only the
# component's own dependencies are installed (--package).
COPY --from=manifests /src/ /app/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "${DIST}"
# The kernel and the component, installed in editable mode: the app finds its Alembic
# migrations beside its source (<service dir>/src/<package>/ next to <service dir>/migrations).
COPY libs/pilar-kernel /app/libs/pilar-kernel
COPY libs/pilar-contracts /app/libs/pilar-contracts
COPY ${SERVICE_DIR} /app/${SERVICE_DIR}
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package "${DIST}" \
 && /app/.venv/bin/python -m compileall -q /app/libs/pilar-kernel/src /app/libs/pilar-contracts/src "/app/${SERVICE_DIR}/src" "/app/${SERVICE_DIR}/migrations"

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE_DIR
ARG PACKAGE
ARG PORT=8000
RUN test -n "${PACKAGE}" || { echo "build argument PACKAGE is required" >&2; exit 1; } \
 && groupadd --system --gid 10001 pilar \
 && useradd --system --uid 10001 --gid pilar --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin pilar
# Code and virtual environment stay owned by root: the service cannot rewrite itself.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/libs/pilar-kernel /app/libs/pilar-kernel
COPY --from=builder /app/libs/pilar-contracts /app/libs/pilar-contracts
COPY --from=builder /app/${SERVICE_DIR} /app/${SERVICE_DIR}
COPY --chmod=0755 deploy/docker/entrypoint.sh deploy/docker/healthcheck.py deploy/docker/ensure_topics.py /opt/pilar/
ENV PATH=/app/.venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PILAR_ENV=production \
    SERVICE_PACKAGE=${PACKAGE} \
    SERVICE_PORT=${PORT}
WORKDIR /app/${SERVICE_DIR}
USER pilar:pilar
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/pilar/healthcheck.py", "/health"]
# Prestart (wait for the database, alembic upgrade head), the component's Kafka topics,
# then: uvicorn <package>.app:create_app --factory --host 0.0.0.0 --port <port> --timeout-keep-alive 65.
ENTRYPOINT ["/opt/pilar/entrypoint.sh"]
