# Entry points of the README's quick start. Everything else is `.venv/bin/hub ...`.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: up test faults lint install services-down clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## The whole hub with demo traffic (starts local Kafka + FerretDB when none is reachable).
up: $(STAMP)
	$(VENV)/bin/hub up --demo

## The whole test suite against the real broker and store (provisioned on first use).
test: $(STAMP)
	scripts/system-packages.sh
	scripts/node-packages.sh
	$(VENV)/bin/hub services up
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## The fault tests alone (private brokers, stores and processes they kill; a few minutes).
faults: $(STAMP)
	scripts/system-packages.sh
	$(VENV)/bin/hub services up
	$(VENV)/bin/python -m pytest -m faults $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

services-down: $(STAMP)
	$(VENV)/bin/hub services down

clean: services-down
	rm -rf .hub
