#!/bin/sh
# Entrypoint of every Pilar component image (deploy/docker/service.Dockerfile).
#
# Without arguments: migrate, create the component's Kafka topics, then serve.
#   1. python -m pilar_kernel.prestart  waits for PostgreSQL and runs `alembic upgrade head`
#      (from the component's folder, where its alembic.ini is); a failure stops the container.
#   2. ensure_topics.py                 creates the topics of the component's events
#      (the broker does not auto-create topics); Kafka being down only warns.
#   3. uvicorn <package>.app:create_app --factory --timeout-keep-alive 65, as PID 1 so it gets SIGTERM directly.
# With arguments: run them instead (for example `docker compose run --rm registry pilar-dlt --help`).
set -eu

if [ "$#" -gt 0 ]; then
    exec "$@"
fi

: "${SERVICE_PACKAGE:?SERVICE_PACKAGE is not set (image built without --build-arg PACKAGE?)}"
: "${SERVICE_PORT:=8000}"

python -m pilar_kernel.prestart
python /opt/pilar/ensure_topics.py "$SERVICE_PACKAGE"
# Idle keep-alive connections stay open 65 s, well past our clients' 30 s idle expiry
# (pilar_kernel.http), so a client never reuses a connection the server is closing.
exec uvicorn "${SERVICE_PACKAGE}.app:create_app" --factory --host 0.0.0.0 --port "$SERVICE_PORT" \
    --timeout-keep-alive "${SERVICE_KEEP_ALIVE_S:-65}"
