"""The `slow` marker check (slow_marker_check.py): an unmarked test that starts a pipeline, a server or a
browser fails; a marked one, or one that starts something quick, passes."""
import os
import sys

import pytest

from slow_marker_check import slow_process

TESTS = '''
import subprocess
import sys

import pytest


def start(*command):
    """Starts the command as a test would; a program that is not installed here still counts as started."""
    try:
        subprocess.run(list(command), capture_output=True, timeout=30)
    except FileNotFoundError:
        pass


def test_unmarked_browser():
    start("/nonexistent/chromium", "--headless", "--dump-dom", "report.html")


@pytest.fixture
def object_store():
    start("/nonexistent/weed", "server")


def test_unmarked_object_store_through_a_fixture(object_store):
    pass


def test_unmarked_pipeline_run():
    start(sys.executable, "/nonexistent/pipeline.py", "run", "--data", "x.csv")


@pytest.mark.slow
def test_marked_pipeline_run():
    start(sys.executable, "/nonexistent/pipeline.py", "run", "--data", "x.csv")


def test_unmarked_quick_command():
    start(sys.executable, "-c", "pass")


def test_unmarked_training_in_process():
    from components.stage_logic.train import train_model
    with pytest.raises(Exception):
        train_model("/nonexistent/transformed", "/nonexistent/graph", "/nonexistent/module.py", "/nonexistent/model")
'''


def test_an_unmarked_slow_test_fails_and_names_what_it_ran(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(os.path.abspath(__file__)),
                                                      os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(test_inner=TESTS)
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    result = pytester.runpytest_subprocess("-p", "slow_marker_check", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2, failed=4)
    output = result.stdout.str()
    assert "test_marked_pipeline_run PASSED" in output and "test_unmarked_quick_command PASSED" in output
    assert "test_unmarked_browser is not marked slow but ran a browser (chromium)" in output
    assert ("test_unmarked_object_store_through_a_fixture is not marked slow but ran SeaweedFS (weed)"
            in output)
    assert "test_unmarked_pipeline_run is not marked slow but ran a whole pipeline (pipeline.py run)" in output
    assert ("test_unmarked_training_in_process is not marked slow but ran model training in the test's "
            "process (train_model)" in output)


@pytest.mark.parametrize("command,expected", [
    ([sys.executable, "pipeline.py", "demo-living", "--dir", "d"], "a whole pipeline (pipeline.py demo-living)"),
    ([sys.executable, "pipeline.py", "compile", "--output", "p.yaml"], None),
    ([sys.executable, "-m", "benchmarks.run", "--sizes", "10000"], "the benchmarks (-m benchmarks.run)"),
    ([sys.executable, "-m", "kfp.dsl.executor_main", "--executor_input", "{}"],
     "a pipeline stage (kfp.local) (-m kfp.dsl.executor_main)"),
    ([sys.executable, "-m", "components.platform.warm_stages", "3", "kfp.dsl.executor"],
     "the warm process that forks pipeline stages (-m components.platform.warm_stages)"),
    (["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "start"], "PostgreSQL (postgres)"),
    ("/usr/bin/gcp-storage-emulator start --port=1", "the GCS emulator (gcp-storage-emulator)"),
    ([sys.executable, "tests/publish_child.py", "publish"], "a publish in a process of its own (publish_child.py)"),
    (["shellcheck", "scripts/kind-up.sh"], None),
])
def test_slow_processes_are_told_from_quick_ones(command, expected):
    assert slow_process(command) == expected
