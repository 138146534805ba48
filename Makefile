# The two commands a new engineer needs:
#   make demo   set up, generate a demo landing zone, build the warehouse
#   make test   set up, lint, type-check and run every test (incl. a dbt build)
# and, while working: make test-fast  (the tests that run no dbt, in under a minute)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# No telemetry, ever; profiles.yml lives in the repository.
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DBT_PROFILES_DIR := $(CURDIR)
export DBT_PROJECT_DIR := $(CURDIR)

DEMO_CUSTOMERS ?= 2000
DEMO_SEED ?= 42

.PHONY: help venv demo test test-fast lint typecheck sqllint pytest build generate clean lock chromium pack

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

venv: $(STAMP)  ## create the local virtual environment from the pinned requirements

demo: $(STAMP)  ## generate a demo landing zone and build the warehouse on it
	umask 077; $(BIN)/python -m cdp.cli demo --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED)

# The three static checks share nothing and use one core each: they run side by side (their
# output kept whole per check), then pytest, which spreads over every core itself (xdist).
test: $(STAMP) chromium  ## every check CI runs
	$(MAKE) --no-print-directory --output-sync=target -j3 lint typecheck sqllint
	$(MAKE) --no-print-directory pytest

lint: $(STAMP)  ## ruff on Python
	$(BIN)/ruff check src scripts pytests
	$(BIN)/ruff format --check src scripts pytests

typecheck: $(STAMP)  ## mypy --strict on the package, scripts and tests
	$(BIN)/mypy

sqllint: $(STAMP)  ## sqlfluff (dbt templater, lint target: no key, no database file)
	CDP_TARGET=lint $(BIN)/sqlfluff lint models macros tests analyses

chromium:  ## install Debian's chromium if missing (the auditor pack is opened in it by the tests)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "error: chromium is missing; run: sudo apt-get update && sudo apt-get install -y chromium"; exit 1; fi; }

PACK_DIR ?= data/pack
# After `make demo`, the demo key is used unless a key is configured.
DEMO_KEY_FILE := .secrets/master.key
pack: $(STAMP)  ## the auditor pack (docs, record of processing, notices, lineage, summary, privacy gate) into $(PACK_DIR)
	@if [ -z "$${CDP_MASTER_KEY:-}$${CDP_MASTER_KEY_FILE:-}" ] && [ -f $(DEMO_KEY_FILE) ]; then \
	  echo "make pack: using the demo key $(DEMO_KEY_FILE)"; export CDP_MASTER_KEY_FILE=$(DEMO_KEY_FILE); fi; \
	umask 077; $(BIN)/python -m cdp.pack --out $(PACK_DIR)

# pytest's own exit code is make's: 5 (no test collected) fails too. pyproject.toml runs it on
# one xdist worker per core (-n auto); test-fast runs in one process (-n 0): for its few
# seconds of tests, starting and feeding workers costs more than it saves.
pytest: $(STAMP)  ## every Python and dbt test (builds small generated landing zones), on every core
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## only the tests that run no dbt (pytest -m "not dbt"), in under a minute
	$(BIN)/python -m pytest -m "not dbt" -n 0

clean:  ## remove generated files (keeps the demo key)
	rm -rf target logs data .pytest_cache .mypy_cache .ruff_cache

lock:  ## re-pin requirements.txt from the current environment
	(echo "# Pinned, complete environment (pip freeze). Regenerate: make lock"; \
	 echo "# setuptools and wheel are pinned too: the editable install of src/cdp builds without network."; \
	 $(BIN)/pip freeze --all --exclude-editable | grep -v -e '^-e' -e '^pip==') > requirements.txt
