# Paygate: `make run` starts the whole demo, `make test` runs the suite.
# Both use PostgreSQL and Redis when DATABASE_URL / CELERY_BROKER_URL are set, and an
# embedded default (SQLite, a filesystem broker) otherwise.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The suite's own data folder (the embedded database and broker, metrics, logs).
TEST_DATA_DIR ?= $(CURDIR)/.data/test

.PHONY: run monitor dashboards test install schema bench simulate chaos apicheck lint typecheck clean help

help:
	@echo "make run    install, migrate, seed the demo and start web, worker, beat and the sandbox gateways"
	@echo "make monitor  Prometheus and Alertmanager beside 'make run' (installs them from Debian when missing)"
	@echo "make dashboards  regenerate the Grafana dashboards (ops/grafana/dashboards/) from ops/grafana/generate.py"
	@echo "make test   run the test suite (unit and integration)"
	@echo "make bench  benchmark the pipeline on PostgreSQL + Redis (BENCH_ARGS=--quick|--scaling)"
	@echo "make simulate  success-rate vs priority routing through drifting gateways (SIMULATE_ARGS=--quick)"
	@echo "make chaos  fault-injection run on PostgreSQL + a private Redis (CHAOS_ARGS=--short)"
	@echo "make apicheck  schemathesis, every check, against a live stack on PostgreSQL + a private Redis"

$(VPY):
	@echo "==> Creating the virtual environment in $(VENV)/"
	@$(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install --quiet --upgrade pip

$(STAMP): $(VPY) requirements.txt requirements-dev.txt
	@echo "==> Installing dependencies (requirements-dev.txt)"
	@$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

run: install
	@bin/run

monitor: install
	@bin/monitor

dashboards: install
	@$(VPY) -m ops.grafana.generate

test: install
	@PAYGATE_DATA_DIR=$(TEST_DATA_DIR) $(VPY) -m pytest $(PYTEST_ARGS)

bench: install
	@$(VPY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@$(VPY) -m bench.run $(BENCH_ARGS)

simulate: install
	@$(VPY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@$(VPY) -m bench.simulate $(SIMULATE_ARGS)

chaos: install
	@$(VPY) -m chaos.run $(CHAOS_ARGS)

apicheck: install
	@$(VPY) -m apicheck.run $(APICHECK_ARGS)

lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: install
	@DEBUG=True $(VENV)/bin/mypy

schema: install
	@DEBUG=$${DEBUG:-True} $(VPY) manage.py spectacular --validate --fail-on-warn --file /dev/null
	@DEBUG=True DJANGO_SETTINGS_MODULE=paygate.settings $(VPY) -m core.schemafile

clean:
	rm -rf .data
