# One entry point for people and CI. `make demo` runs the live pipeline on sample data;
# `make test` runs the whole suite (lint included). Both set everything up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= rtofs-demo

.PHONY: setup setup-test demo test lint format clean

# `setup`: Java and the platform's Python packages (what `make demo` needs);
# `setup-test`: also the services, browser and host tools the tests start.
setup: $(VENV)/.installed-demo

setup-test: $(VENV)/.installed-test

$(VENV)/.installed-demo: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV) demo
	touch $@

$(VENV)/.installed-test: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV) test
	touch $@ $(VENV)/.installed-demo

demo: setup
	$(VENV)/bin/rtofs demo --out $(DEMO_DIR)

lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
