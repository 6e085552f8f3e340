# audiencesync: every target installs into .venv on first use.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help demo test lint format bench serve emulator clean lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "audiencesync needs Python 3.11 or newer"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) ## run the whole path on the local Snapchat emulator
	$(BIN)/audiencesync demo

test: $(STAMP) ## run every test (PostgreSQL/browser tests skip with a reason unless enabled)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check, ruff format --check, mypy --strict on src/
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

bench: $(STAMP) ## throughput and memory of a full and an incremental run (JSON)
	$(BIN)/audiencesync bench --profiles $${PROFILES:-1000000}

serve: $(STAMP) ## web UI, REST API, scheduler and a worker
	$(BIN)/audiencesync serve

emulator: $(STAMP) ## the local Snapchat Marketing API emulator
	$(BIN)/audiencesync emulator --auto-approve

lock: $(STAMP) ## re-pin constraints.txt from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable > constraints.txt

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
