# The two commands: `make run` (the whole platform, locally) and `make test` (every test).
# Both install what they need on first use (scripts/bootstrap: uv, .venv from uv.lock;
# the stack fetches the Kafka jars with Maven into .cache/kafka).
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: run stop status logs test test-fast bench clean help

help:
	@echo "make run     start Kafka, PostgreSQL, the five services and the gateway (prints 'ready')"
	@echo "make stop    stop everything started by make run"
	@echo "make status  one line per component"
	@echo "make test    run every test (starts its own Kafka and PostgreSQL on free ports)"
	@echo "make bench   event-path benchmark (outbox -> Kafka -> consumer)"

bootstrap:
	@scripts/bootstrap

run: bootstrap
	$(PY) -m pilar_devstack up

stop: bootstrap
	$(PY) -m pilar_devstack down

status: bootstrap
	$(PY) -m pilar_devstack status

logs: bootstrap
	$(PY) -m pilar_devstack logs $(NAME)

test: bootstrap
	$(PY) -m pytest $(ARGS)

test-fast: bootstrap
	$(PY) -m pytest -m "not stack" $(ARGS)

bench: bootstrap
	$(PY) bench/event_path.py

clean: stop
	rm -rf .run
