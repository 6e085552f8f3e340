# audiencesync: every target installs into .venv on first use.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help demo try test test-storage soak fuzz lint format bench bench-unify serve emulator clean lock

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

# make test spreads the tests over the machine's cores (pytest-xdist; TEST_WORKERS=0 runs
# them in one process): a 2-core CI machine runs the suite in about half the time. A test
# file stays on one worker, in order (the browser walks build on the tests before them).
TEST_WORKERS ?= auto

test: $(STAMP) ## run every test (PostgreSQL/browser tests skip with a reason unless enabled)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-storage: $(STAMP) ## the whole sync suite on an S3-compatible bucket (moto), not only make test's share
	AUDIENCESYNC_TEST_S3_ALL=1 $(BIN)/python -m pytest tests/integration/sync -k sqlite-s3 $(PYTEST_ARGS)

soak: $(STAMP) ## long reliability suites (200+ runs, kills) and schemathesis (20,000+ requests); rewrites docs/reliability.md
	rm -rf .soak && mkdir -p .soak
	AUDIENCESYNC_SOAK_RUNS=$${SOAK_RUNS:-200} AUDIENCESYNC_SOAK_BURSTS=$${SOAK_BURSTS:-20} \
	AUDIENCESYNC_SCHEMATHESIS_REQUESTS=$${FUZZ_REQUESTS:-20000} \
	AUDIENCESYNC_RELIABILITY_REPORT_DIR=$(CURDIR)/.soak \
	$(BIN)/python -m pytest tests/reliability tests/security/test_schemathesis.py -o timeout=0 \
	  --junitxml=.soak/junit.xml $(PYTEST_ARGS); \
	status=$$?; \
	$(BIN)/python -m tests.reliability.report .soak docs/reliability.md; exit $$status

fuzz: $(STAMP) ## schemathesis alone (20,000+ requests); updates its section of docs/reliability.md
	rm -rf .fuzz && mkdir -p .fuzz
	AUDIENCESYNC_SCHEMATHESIS_REQUESTS=$${FUZZ_REQUESTS:-20000} \
	AUDIENCESYNC_RELIABILITY_REPORT_DIR=$(CURDIR)/.fuzz \
	$(BIN)/python -m pytest tests/security/test_schemathesis.py -o timeout=0 \
	  --junitxml=.fuzz/junit.xml $(PYTEST_ARGS); \
	status=$$?; \
	$(BIN)/python -m tests.reliability.report --merge .fuzz docs/reliability.md; exit $$status

lint: $(STAMP) ## ruff check, ruff format --check, mypy --strict on src/
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

bench: $(STAMP) ## throughput and memory of a full and an incremental run (JSON)
	$(BIN)/audiencesync bench --profiles $${PROFILES:-1000000}

bench-unify: $(STAMP) ## seconds and peak memory of unifying 3 sources of RECORDS each (JSON)
	$(BIN)/audiencesync profiles bench-unify --records $${RECORDS:-1000000}

try: $(STAMP) ## web UI + the local emulator on a sample home (.audiencesync-try): sign in and click through
	$(BIN)/audiencesync try

serve: $(STAMP) ## web UI, REST API, scheduler and a worker (as `make try` while no Snapchat app is set)
	@if [ -z "$$AUDIENCESYNC_SNAPCHAT_CLIENT_ID" ]; then \
	  echo "No Snapchat app configured (AUDIENCESYNC_SNAPCHAT_CLIENT_ID): serving on the local emulator, as make try."; \
	  $(BIN)/audiencesync try; \
	else $(BIN)/audiencesync serve; fi

emulator: $(STAMP) ## the local Snapchat Marketing API emulator
	$(BIN)/audiencesync emulator --auto-approve

lock: $(STAMP) ## re-pin constraints.txt from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable > constraints.txt

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
