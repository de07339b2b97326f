# Paygate: `make run` starts the whole demo, `make test` runs the suite.
# Both use PostgreSQL and Redis when DATABASE_URL / CELERY_BROKER_URL are set, and an
# embedded default (SQLite, a filesystem broker) otherwise.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install migrate schema clean help

help:
	@echo "make run    install, migrate, seed the demo and start web, worker, beat and the sandbox gateways"
	@echo "make test   run the test suite (unit and integration)"

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

test: install
	@PAYGATE_DATA_DIR=$(CURDIR)/.data/test $(VPY) -m pytest $(PYTEST_ARGS)

schema: install
	@$(VPY) manage.py spectacular --validate --fail-on-warn --file /dev/null

clean:
	rm -rf .data
