# living-pipeline: `make help` lists the targets. CI runs the same targets a person types.
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
# Extra flags for `make run`, e.g. make run ARGS="--data 'data/span-{SPAN}/*.csv'"
ARGS ?=

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "living-pipeline needs Python 3.11; set PYTHON=/path/to/python3.11"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python setup.py constraints.txt
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[test]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[bench]'
	touch $@

.PHONY: help install run test bench compile clean
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv and install the package with the pinned stack

run: $(VENV)/.installed ## run the demo end to end on this machine (kfp.local), publishing to ./serving
	$(BIN)/python pipeline.py run $(ARGS)

test: $(VENV)/.installed-test ## install the test extras and run the test suite
	$(BIN)/python -m pytest tests

bench: $(VENV)/.installed-bench ## benchmark the local run at 10k, 100k and 1M rows (benchmarks/results/)
	$(BIN)/python -m benchmarks.run

compile: $(VENV)/.installed ## write pipeline.yaml, the spec KFP and Vertex AI run
	$(BIN)/python pipeline.py compile --output pipeline.yaml

clean: ## remove local run outputs, statistics and published demo models (keeps .venv)
	rm -rf local_outputs serving statistics living_demo pipeline.yaml
