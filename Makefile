# Transfer Learning Studio: `make help` lists the targets. CI runs `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help setup setup-dev run test test-fast lint format bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/activate  ## create .venv and install the app's requirements
	$(BIN)/pip install -q -r requirements.txt

setup-dev: $(BIN)/activate  ## create .venv and install the app's and the tests' requirements
	$(BIN)/pip install -q -r requirements-dev.txt

run: setup  ## set up, then start the dashboard
	$(BIN)/streamlit run streamlit_app.py

lint: setup-dev  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two workers, each taking whole files (module fixtures such as a browser test's dashboard
# stay in one process): most tests wait on one core (imports, subprocesses, a browser).
PYTEST_WORKERS ?= 2

test: setup-dev lint  ## set up, lint, then run every test (browser tests need Debian's chromium)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

test-fast: setup-dev  ## the tests that need neither real training nor a browser
	$(BIN)/python -m pytest -m "not slow and not browser"

format: setup-dev  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup-dev  ## the benchmarks in bench/ (not tests; prints their tables)
	$(BIN)/python -m bench.whole
	$(BIN)/python -m bench.run

clean:  ## remove caches (keeps runs/ and .venv)
	rm -rf .pytest_cache .ruff_cache test-artifacts
