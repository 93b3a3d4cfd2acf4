"""Stages forked from the warm process behave as kfp.local's plain stage processes.

Real lightweight components run through kfp.local's SubprocessRunner, once forked from the warm
process and once as plain processes; what a stage sees (arguments, environment, working directory,
standard input) and what the run sees of it (outputs, output lines, exit status) must be the same.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from kfp import dsl, local
from kfp.dsl import Artifact, Output
from kfp.local import subprocess_task_handler

from components.platform.warm_stages import stage_request, warm_stage_processes

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIABLE = "LIVING_PIPELINE_WARM_TEST"
# Enough for these components; the pipeline's own list imports TensorFlow and the TFX libraries.
LIGHT_IMPORTS = ("kfp.dsl.executor",)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def describe_process(text: str, report: Output[Artifact]):
    import os
    import sys

    print(f"stage says {text}")
    print("stage warns on stderr", file=sys.stderr)
    report.metadata.update({
        "text": text, "pid": os.getpid(), "parent": os.getppid(), "cwd": os.getcwd(),
        "variable": os.environ.get("LIVING_PIPELINE_WARM_TEST", "unset"),
        "runtime": os.environ.get("_KFP_RUNTIME", "unset"), "stdin": sys.stdin.read()})
    with open(report.path, "w") as sink:
        sink.write(text)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def exit_with(code: int):
    raise SystemExit(code)


def lightweight_command(component):
    """The command kfp.local's SubprocessRunner runs for `component`, before placeholders are filled."""
    container = component.component_spec.implementation.container
    return subprocess_task_handler.replace_python_executable(
        list(container.command) + list(container.args), sys.executable)


def test_recognizes_the_command_of_a_lightweight_component():
    request = stage_request(lightweight_command(describe_process))
    assert "def describe_process(" in request["source"]
    assert request["arguments"][:1] == ["--executor_input"]
    assert "--function_to_execute" in request["arguments"]


@dsl.component(base_image="python:3.11")
def installs_kfp_first():
    pass


def test_other_commands_run_as_plain_processes():
    command = lightweight_command(describe_process)
    with_install = lightweight_command(installs_kfp_first)
    other_python = subprocess_task_handler.replace_python_executable(
        list(describe_process.component_spec.implementation.container.command), "/opt/other/python")
    assert stage_request(with_install) is None
    assert stage_request(["python", "-m", "kfp.dsl.executor_main"]) is None
    assert stage_request(other_python + command[3:]) is None


@pytest.fixture
def local_runs(tmp_path, monkeypatch):
    """Runs a component with kfp.local, in tmp_path, with no standard input to read."""
    monkeypatch.chdir(tmp_path)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               raise_on_error=False)
    with open(os.devnull) as nothing:
        saved = os.dup(0)
        os.dup2(nothing.fileno(), 0)
        try:
            yield tmp_path
        finally:
            os.dup2(saved, 0)
            os.close(saved)


def test_a_forked_stage_sees_and_returns_what_a_plain_one_does(local_runs, capfd):
    plain = describe_process(text="héllo")
    plain_output = capfd.readouterr().out
    with warm_stage_processes(LIGHT_IMPORTS) as stages:
        forked = describe_process(text="héllo")
        forked_output = capfd.readouterr().out
        warm_pid = stages.process_id
    assert stages.used == 1
    plain_seen, forked_seen = plain.outputs["report"].metadata, forked.outputs["report"].metadata
    assert forked_seen["parent"] == warm_pid and plain_seen["parent"] != warm_pid
    for seen in (plain_seen, forked_seen):
        assert seen["text"] == "héllo" and seen["cwd"] == str(local_runs)
        assert seen["runtime"] == "true" and seen["variable"] == "unset" and seen["stdin"] == ""
    with open(forked.outputs["report"].path) as written:
        assert written.read() == "héllo"
    for output in (plain_output, forked_output):
        assert "stage says héllo" in output and "stage warns on stderr" in output
        assert "finished with status" in output and "SUCCESS" in output


def test_a_forked_stage_keeps_its_exit_status(local_runs, capfd):
    with warm_stage_processes(LIGHT_IMPORTS) as stages:
        exit_with(code=3)
        output = capfd.readouterr().out
    assert stages.used == 1
    assert "finished with status" in output and "FAILURE" in output


def test_runs_inside_an_active_warm_process_fork_from_it_and_leave_it_running(local_runs):
    """As demo-living's runs do: each run enters warm_stage_processes() again, inside the command's own."""
    with warm_stage_processes(LIGHT_IMPORTS) as command:
        pids = []
        for text in ("first run", "second run"):
            with warm_stage_processes(LIGHT_IMPORTS) as run:
                assert run is command
                pids.append(describe_process(text=text).outputs["report"].metadata["parent"])
            assert command.exit_status is None, "a run's end does not end the command's warm process"
        assert pids == [command.process_id] * 2
    assert command.used == 2
    assert command.exit_status == 0


def test_the_warm_process_ends_with_the_run_and_reports_success(local_runs):
    with warm_stage_processes(LIGHT_IMPORTS) as stages:
        describe_process(text="x")
        assert stages.exit_status is None
    assert stages.used == 1
    assert stages.exit_status == 0


def test_a_changed_environment_runs_the_stage_as_a_plain_process(local_runs, monkeypatch):
    with warm_stage_processes(LIGHT_IMPORTS) as stages:
        monkeypatch.setenv(VARIABLE, "set after the warm process started")
        task = describe_process(text="x")
    assert stages.used == 0
    seen = task.outputs["report"].metadata
    assert seen["variable"] == "set after the warm process started"
    assert seen["parent"] != stages.process_id


# Imported by the warm process in the next test: the first waits until the stage has been forked or is waiting on
# the warm process's socket (its file descriptor is the warm process's first argument), the second until the test
# says so. Either way the stage runs while the warm process is inside the second import.
STAGE_WAITING_MODULE = """
import os, select, sys, time

def forked_a_child():
    return any(open(f"/proc/self/task/{task}/children").read().split() for task in os.listdir("/proc/self/task"))

deadline = time.monotonic() + 60
while not forked_a_child() and not select.select([int(sys.argv[1])], [], [], 0.05)[0] and time.monotonic() < deadline:
    pass
"""
LONG_IMPORT_MODULE = """
import os, time
deadline = time.monotonic() + 60
while not os.path.exists(os.environ["LIVING_PIPELINE_IMPORT_MAY_END"]) and time.monotonic() < deadline:
    time.sleep(0.05)
"""


def test_a_stage_that_ends_during_a_long_import_is_reported_when_it_ends(local_runs, monkeypatch):
    """The warm process forks stages between imports, but TensorFlow's import alone takes seconds: the run must
    hear that a stage ended when it ends, not when the import the warm process is in has finished."""
    (local_runs / "stage_waiting.py").write_text(STAGE_WAITING_MODULE)
    (local_runs / "long_import.py").write_text(LONG_IMPORT_MODULE)
    import_may_end = local_runs / "import-may-end"
    monkeypatch.setenv("PYTHONPATH", str(local_runs))
    monkeypatch.setenv("LIVING_PIPELINE_IMPORT_MAY_END", str(import_may_end))
    with warm_stage_processes((*LIGHT_IMPORTS, "stage_waiting", "long_import")) as stages:
        started = time.monotonic()
        task = describe_process(text="reported")
        reported_after = time.monotonic() - started
        import_may_end.touch()
    assert stages.used == 1
    assert task.outputs["report"].metadata["parent"] == stages.process_id
    assert reported_after < 30, f"the stage was reported {reported_after:.1f} s after it started"
    assert stages.exit_status == 0


def test_a_run_that_ends_during_a_long_import_does_not_wait_for_it(local_runs, monkeypatch):
    """A run whose first stage fails ends while the warm process imports TensorFlow: the warm process ends at once
    instead of finishing the import (it used to keep the run waiting about 1.5 s)."""
    (local_runs / "long_import.py").write_text("open('import-started', 'w').close()\n" + LONG_IMPORT_MODULE)
    monkeypatch.setenv("PYTHONPATH", str(local_runs))
    monkeypatch.setenv("LIVING_PIPELINE_IMPORT_MAY_END", str(local_runs / "never"))
    with warm_stage_processes((*LIGHT_IMPORTS, "long_import")) as stages:
        deadline = time.monotonic() + 60
        while not (local_runs / "import-started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        closing = time.monotonic()
    waited = time.monotonic() - closing
    assert (local_runs / "import-started").exists()
    assert stages.exit_status == 0, "the warm process ended itself"
    assert waited < 5, f"the run waited {waited:.1f} s for the warm process"


def wait_until_ended(pid):
    while True:
        with open(f"/proc/{pid}/status") as status:
            if "State:\tZ" in status.read():
                return
        time.sleep(0.05)


def test_a_stage_runs_as_a_plain_process_when_the_warm_process_has_gone(local_runs):
    with warm_stage_processes(LIGHT_IMPORTS) as stages:
        os.kill(stages.process_id, signal.SIGKILL)
        wait_until_ended(stages.process_id)
        task = describe_process(text="still runs")
    assert stages.used == 0
    assert task.outputs["report"].metadata["text"] == "still runs"


# Imported by a standby in the next tests: it records which process imported it and, as absl's logging does on a
# library's first message, gives the root logger a handler.
STANDBY_MODULE = """
import logging, os
with open(os.environ["LIVING_PIPELINE_STANDBY_RECORD"], "a") as record:
    record.write(f"{os.getpid()}\\n")
if not logging.root.handlers:
    logging.basicConfig()
logging.getLogger("standby_module").warning("imported ahead of its stage")
"""
STANDBYS = {"describe_process": {"imports": ["standby_module"], "after": ["exit_with"]}}


@pytest.fixture
def standby_record(local_runs, monkeypatch):
    """The file where each import of the standby's module writes its process's id."""
    (local_runs / "standby_module.py").write_text(STANDBY_MODULE)
    record = local_runs / "standby-imports"
    monkeypatch.setenv("PYTHONPATH", str(local_runs))
    monkeypatch.setenv("LIVING_PIPELINE_STANDBY_RECORD", str(record))
    return record


def standby_pids(record, count):
    """The ids of the first `count` processes that imported the standby's module, once they have."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = record.read_text().split() if record.exists() else []
        if len(pids) >= count:
            return [int(pid) for pid in pids]
        time.sleep(0.05)
    raise AssertionError(f"{count} standby imports expected, {record} has {pids}")


def test_a_stage_with_a_standby_starts_in_it_with_its_imports_done(local_runs, standby_record, capfd):
    with warm_stage_processes(LIGHT_IMPORTS, STANDBYS) as stages:
        before = describe_process(text="no standby yet")
        assert not standby_record.exists(), "only a stage before it in `after` prepares a standby"
        exit_with(code=0)
        (standby,) = standby_pids(standby_record, 1)
        capfd.readouterr()
        task = describe_process(text="from the standby")
        output = capfd.readouterr().out
        exit_with(code=0)  # as the next run of demo-living starts: a new standby
        second_standby = standby_pids(standby_record, 2)[1]
    assert stages.used == 4 and stages.exit_status == 0
    seen = task.outputs["report"].metadata
    assert seen["pid"] == standby and seen["parent"] == stages.process_id
    assert before.outputs["report"].metadata["pid"] != standby
    assert seen["text"] == "from the standby" and seen["cwd"] == str(local_runs) and seen["stdin"] == ""
    # kfp's executor configures the stage's logging as in a plain process, though the import configured it first.
    assert "[KFP Executor" in output and "Looking for component `describe_process`" in output
    assert "stage says from the standby" in output and "imported ahead of its stage" not in output
    assert second_standby != standby and not os.path.exists(f"/proc/{second_standby}"), \
        "a standby no stage used ends with the warm process"


def test_a_stage_whose_standby_has_gone_is_forked(local_runs, standby_record):
    with warm_stage_processes(LIGHT_IMPORTS, STANDBYS) as stages:
        exit_with(code=0)
        (standby,) = standby_pids(standby_record, 1)
        os.kill(standby, signal.SIGKILL)
        wait_until_ended(standby)
        task = describe_process(text="forked instead")
    seen = task.outputs["report"].metadata
    assert seen["text"] == "forked instead" and seen["pid"] != standby and seen["parent"] == stages.process_id
    assert stages.used == 2 and stages.exit_status == 0


def comparable(value, roots):
    """`value` with each run's own folders named alike, so two runs' metadata compare."""
    if isinstance(value, dict):
        return {key: comparable(item, roots) for key, item in value.items()}
    if isinstance(value, list):
        return [comparable(item, roots) for item in value]
    if isinstance(value, str):
        for root, name in roots.items():
            value = value.replace(root, name)
        return re.sub(r"living-pipeline-\d{4}(-\d+)+", "living-pipeline-RUN", value)
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-4, abs=1e-6)
    return value


def run_files(pipeline_root):
    """The artifact files of the one run under `pipeline_root`, relative to the run's folder."""
    (run,) = [path for path in pipeline_root.iterdir() if path.is_dir() and path.name.startswith("living-pipeline-")]
    # TensorBoard names its event files after the time, the host and the process.
    return sorted(re.sub(r"tfevents\.[^/]*$", "tfevents.*", str(path.relative_to(run)))
                  for path in run.rglob("*") if path.is_file())


def test_the_demo_gives_the_same_outputs_with_warm_and_fresh_stage_processes(tmp_path, demo_run):
    """The warm run is conftest.py's `demo_run` (`--stage-processes warm`), which test_end_to_end.py reads too."""
    root = tmp_path / "fresh"
    (root / "temporary").mkdir(parents=True)
    fresh_run = subprocess.run(
        [sys.executable, "pipeline.py", "run", "--stage-processes", "fresh", "--pipeline-root",
         str(root / "pipeline"), "--serving-root", str(root / "serving"), "--statistics-root",
         str(root / "statistics"), "--summary-json", str(root / "summary.json")],
        cwd=REPO, capture_output=True, text=True, timeout=900, env={**os.environ, "TMPDIR": str(root / "temporary")})
    roots, summaries = {"fresh": root, "warm": demo_run[0]}, {}
    for processes, completed in (("fresh", fresh_run), ("warm", demo_run[1])):
        assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
        assert "Traceback" not in completed.stdout + completed.stderr
        summaries[processes] = json.loads((roots[processes] / "summary.json").read_text())
    fresh, warm = (comparable(summaries[p]["outputs"], {str(roots[p]): "ROOT"}) for p in ("fresh", "warm"))
    assert set(warm) == set(fresh) == {"anomalies", "train_metrics", "eval_metrics", "blessing", "pushed_model"}
    for name in fresh:
        assert warm[name] == fresh[name], name
    assert run_files(roots["warm"] / "pipeline") == run_files(roots["fresh"] / "pipeline")
    assert summaries["warm"]["outputs"]["pushed_model"]["pushed"]
    stage_names = set(summaries["fresh"]["stages"])
    assert set(summaries["warm"]["stages"]) == stage_names and len(stage_names) == 9
    assert all(stage["status"] == "SUCCESS" for stage in summaries["warm"]["stages"].values())
    # A plain stage process leaves only what kfp's own script wrote there: its copy of the component's source.
    assert {path.name for path in (root / "temporary").rglob("*") if path.is_file()} == {"ephemeral_component.py"}


def test_stages_leave_nothing_in_the_temporary_folder(demo_run):
    """TensorFlow's autograph sources, Beam's scratch folders, downloads: a stage removes what it and its libraries
    put in the temporary folder (TMPDIR), though it skips Python's clean-up at exit (components/errors.py)."""
    assert demo_run[1].returncode == 0, demo_run[1].stderr[-3000:]
    assert sorted(path.name for path in (demo_run[0] / "temporary").iterdir()) == []
