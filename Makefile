# payments_site — the two commands a newcomer needs are `make dev` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Parallel test processes (pytest-xdist): each has its own database, Redis database number,
# Stripe emulator and SMTP sink. 0 runs everything in one process.
TEST_WORKERS ?= 3
# Python keeps compiled modules, and pytest its assertion-rewritten test modules, between
# runs (in __pycache__/); an environment that turns that off makes every run, and every
# process a test starts, compile them all again.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: install dev test test-fast typecheck lint reliability bench bench-cluster browser-deps mutation clean

install: $(STAMP)  ## create .venv with the app and everything its tests need

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

dev: install  ## run the whole site offline and print the URL and demo logins
	$(BIN)/python -m payments_site.devtools.devstack

browser-deps:  ## Debian's Chromium for the browser tests (Playwright cannot download one here)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)); \
	  else \
	    echo "Chromium is missing: run 'sudo apt-get install -y chromium'"; exit 1; \
	  fi; \
	fi

STRICT_TYPED := payments_site/stripe_gateway.py payments_site/services payments_site/db.py \
	payments_site/jobs.py

# Blueprints are strict too, except that flask-login's decorators and Flask-WTF's FlaskForm
# ship no types.
typecheck: install  ## mypy on the package; --strict on the gateway, services, db, jobs, blueprints
	$(BIN)/mypy payments_site
	$(BIN)/mypy --strict --follow-imports=silent $(STRICT_TYPED)
	$(BIN)/mypy --strict --allow-untyped-decorators --allow-subclassing-any \
		--follow-imports=silent payments_site/blueprints

lint: install
	$(BIN)/ruff check .

test: install browser-deps typecheck  ## every test, browser tests included
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) -p no:cacheprovider $(PYTEST_ARGS)

test-fast: install  ## the suite without browser tests
	$(BIN)/python -m pytest -m "not slow and not browser" -n $(TEST_WORKERS) $(PYTEST_ARGS)

reliability: install browser-deps  ## the long fault and abuse suite, then the fault matrix
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: no slow tests collected
	$(BIN)/python -m tests.reliability.fault_matrix

bench: install  ## benchmarks against the floor; writes bench/results/
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.run

bench-cluster: install  ## two web nodes, two workers, PostgreSQL + Redis
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.cluster

# The money modules mutmut mutates (mutation/run.py names each one's tests); e.g.
# `make mutation MUTATION_MODULES=refunds,idempotency`. CPU-heavy: runs at the lowest priority.
MUTATION_MODULES ?= refunds,idempotency,payments,checkout,webhooks,receipts,money
MUTATION_ARGS ?=

mutation: install  ## mutation testing of the money modules; report in mutation/results/
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	nice -n 19 $(BIN)/python -m mutation.run --modules $(MUTATION_MODULES) $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-results
