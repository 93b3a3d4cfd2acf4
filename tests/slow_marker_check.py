"""Fails every test that does something slow without carrying the `slow` marker.

A test is slow when it, or a fixture set up for it, does one of these:
- runs a whole pipeline: starts `pipeline.py run` or `pipeline.py demo-living`, the benchmarks
  (`-m benchmarks.run`), a stage under kfp.local (`kfp.dsl.executor_main`) or the warm process that
  forks stages (`-m components.platform.warm_stages`); or, in its own process, trains or evaluates a model
  (`components.stage_logic.train.train_model`, `components.stage_logic.evaluate.evaluate_model`), which
  needs every stage before them;
- starts a server: SeaweedFS (`weed`), the GCS emulator (`gcp-storage-emulator`), PostgreSQL (`initdb`,
  `pg_ctl`, `postgres`), a Docker engine (`dockerd`) or Beam's job service;
- starts a browser (Chromium or Chrome);
- starts a publish in a process of its own (`publish_child.py`).

`make test-fast` (`pytest -m "not slow"`) runs the others. The check watches every process a test starts
(`subprocess.Popen`, which `subprocess.run` uses too) and every call of the two functions above while the
test is set up and while it runs, and turns an unmarked test that did one of those things into a failure
naming what it did and the marker to add. So a slow test without the marker fails in `make test-fast`
and in `make test` alike, instead of making the fast loop slow. Registered by `conftest.py`.
"""
import functools
import importlib.abc
import os
import shlex
import subprocess
import sys

import pytest

# A process whose command line holds one of these programs (by file name) is slow.
SLOW_PROGRAMS = {
    "weed": "SeaweedFS",
    "gcp-storage-emulator": "the GCS emulator",
    "initdb": "PostgreSQL",
    "pg_ctl": "PostgreSQL",
    "postgres": "PostgreSQL",
    "dockerd": "a Docker engine",
    "chromium": "a browser",
    "chromium-browser": "a browser",
    "chrome": "a browser",
    "google-chrome": "a browser",
    "publish_child.py": "a publish in a process of its own",
}
# Python modules run with `-m` that are slow.
SLOW_MODULES = {
    "benchmarks.run": "the benchmarks",
    "kfp.dsl.executor_main": "a pipeline stage (kfp.local)",
    "apache_beam.runners.portability.local_job_service_main": "Beam's job service",
    "components.platform.warm_stages": "the warm process that forks pipeline stages",
}
# `pipeline.py` subcommands that run a whole pipeline.
PIPELINE_RUNS = {"run", "demo-living"}
# Functions that train or evaluate a model in the test's own process, by module.
IN_PROCESS_STAGES = {
    "components.stage_logic.train": {"train_model": "model training in the test's process (train_model)"},
    "components.stage_logic.evaluate": {"evaluate_model": "model evaluation in the test's process (evaluate_model)"},
}

_ORIGINAL_POPEN_INIT = "_slow_marker_check_original_init"


def slow_process(command):
    """What is slow about starting `command` (a list or a shell string), or None when nothing is."""
    words = shlex.split(command) if isinstance(command, str) else [os.fspath(word) for word in command]
    names = [os.path.basename(str(word)) for word in words]
    for position, name in enumerate(names):
        if name in SLOW_PROGRAMS:
            return f"{SLOW_PROGRAMS[name]} ({name})"
        if name == "-m" and position + 1 < len(names) and names[position + 1] in SLOW_MODULES:
            return f"{SLOW_MODULES[names[position + 1]]} (-m {names[position + 1]})"
        if name == "pipeline.py" and position + 1 < len(names) and names[position + 1] in PIPELINE_RUNS:
            return f"a whole pipeline (pipeline.py {names[position + 1]})"
        if "job-server" in name or "job_server" in name:
            return f"Beam's job service ({name})"
    return None


class SlowWorkWatch:
    """Records the slow things each test did while it was set up and run."""

    def __init__(self):
        self.test = None
        self.done = {}

    def popen_started(self, command):
        self.did(slow_process(command))

    def did(self, what):
        if what and self.test is not None:
            self.done.setdefault(self.test.nodeid, []).append(what)


_watch = SlowWorkWatch()


def _watched(function, what):
    @functools.wraps(function)
    def call(*positional, **keywords):
        _watch.did(what)
        return function(*positional, **keywords)
    return call


class WatchStagesOnImport(importlib.abc.MetaPathFinder):
    """Wraps the functions of IN_PROCESS_STAGES as their module is first imported, before a test module
    takes them with `from ... import`; importing them here instead would load TensorFlow for every run."""

    def find_spec(self, name, path, target=None):
        if name not in IN_PROCESS_STAGES:
            return None
        spec = next((found for finder in sys.meta_path if finder is not self
                     for found in [getattr(finder, "find_spec", lambda *_: None)(name, path, target)] if found), None)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            for function, what in IN_PROCESS_STAGES[name].items():
                setattr(module, function, _watched(getattr(module, function), what))

        spec.loader.exec_module = exec_module
        return spec


_stage_watch = WatchStagesOnImport()


def pytest_configure(config):
    already = sorted(name for name in IN_PROCESS_STAGES if name in sys.modules)
    if already:
        raise pytest.UsageError(f"{', '.join(already)} imported before the slow marker check could watch it")
    original = subprocess.Popen.__init__

    def watched_init(popen, args, *positional, **keywords):
        _watch.popen_started(args)
        original(popen, args, *positional, **keywords)

    setattr(subprocess.Popen, _ORIGINAL_POPEN_INIT, original)
    subprocess.Popen.__init__ = watched_init
    sys.meta_path.insert(0, _stage_watch)


def pytest_unconfigure(config):
    original = getattr(subprocess.Popen, _ORIGINAL_POPEN_INIT, None)
    if original is not None:
        subprocess.Popen.__init__ = original
        delattr(subprocess.Popen, _ORIGINAL_POPEN_INIT)
    if _stage_watch in sys.meta_path:
        sys.meta_path.remove(_stage_watch)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    _watch.test = item
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    # Stopping a server is not starting one; only set-up and the test itself count.
    _watch.test = None
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    done = _watch.done.pop(item.nodeid, None) if call.when == "call" else None
    if done and item.get_closest_marker("slow") is None:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} is not marked slow but ran {', '.join(sorted(set(done)))}: "
                           f"mark it @pytest.mark.slow (or the whole file with pytestmark = pytest.mark.slow); "
                           f"see tests/slow_marker_check.py")
