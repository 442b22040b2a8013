# Entry points of the README's quick start. Everything else is `.venv/bin/hub ...`.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: up test faults mutate lint audit lock install services-down clean

# Exact versions with hashes from requirements.lock (`make lock` regenerates it), then the
# hub itself without resolving anything again. uv (itself pinned and hashed in the lock)
# installs them: in parallel and from its machine-wide cache, seconds on a clean clone
# where pip took minutes.
$(STAMP): pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	awk '/^uv==/ {p = 1; print; next} p && /^ / {print; next} {p = 0}' requirements.lock \
		> $(VENV)/uv-requirement.txt
	$(VENV)/bin/python -m pip install -q --require-hashes --no-deps -r $(VENV)/uv-requirement.txt
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python --require-hashes -r requirements.lock
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## Known vulnerabilities and packages below their latest release fail, unless
## scripts/audit_allowed.toml allows them with a reason (scripts/audit_deps.py).
audit: $(STAMP)
	$(VENV)/bin/python scripts/audit_deps.py

## Re-resolve requirements.lock from pyproject.toml (latest allowed versions, hashed).
lock:
	test -x $(VENV)/bin/uv || $(VENV)/bin/python -m pip install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --generate-hashes --universal \
		--python-version 3.11 -o requirements.lock

## The whole hub with demo traffic (starts local Kafka + FerretDB when none is reachable).
up: $(STAMP)
	$(VENV)/bin/hub up --demo

## The whole test suite against the real broker and store (provisioned on first use), in
## TEST_WORKERS processes (pytest-xdist; a test file stays in one; TEST_WORKERS=0: no workers).
TEST_WORKERS ?= 4
test: $(STAMP)
	scripts/system-packages.sh
	scripts/node-packages.sh
	$(VENV)/bin/hub services up
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## The fault tests alone (private brokers, stores and processes they kill; a few minutes).
faults: $(STAMP)
	scripts/system-packages.sh
	$(VENV)/bin/hub services up
	$(VENV)/bin/python -m pytest -m faults $(PYTEST_ARGS)

## Mutation testing of the pure core against the unit tests (scripts/mutate.py): every
## module of pyproject's [tool.mutmut] only_mutate, or those in MUTATE_ARGS; the report goes
## to .hub/mutate/, and a score below 80 % fails (docs/development.md, "Mutation testing").
mutate: $(STAMP)
	$(VENV)/bin/python scripts/mutate.py $(MUTATE_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

services-down: $(STAMP)
	$(VENV)/bin/hub services down

clean: services-down
	rm -rf .hub
