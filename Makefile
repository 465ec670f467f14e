# perflake: the two set-up commands are `make run` (main job) and `make test` (all tests).
# Both install what is missing first (virtual environment, Python packages, JVM jars).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
ARGS ?=

.PHONY: setup run lint test test-unit test-integration services-up services-down clean

setup: $(VENV)/.installed
	$(BIN)/perflake setup

# reinstalled when the declared dependencies change
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "perflake needs Python 3.11: set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "installing Python packages into $(VENV) (about 1.6 GB the first time) ..."
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: setup
	$(BIN)/perflake run $(ARGS)

lint: setup
	$(BIN)/flake8

test: lint
	$(BIN)/pytest tests/unit tests/integration $(PYTEST_ARGS)

test-unit: setup
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

services-up: setup
	$(BIN)/perflake services up --with-hdfs

services-down:
	$(BIN)/perflake services down

clean: services-down
	rm -rf state
