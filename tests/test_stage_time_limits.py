"""Every stage's time limit: the flag, the compiled spec, and a stage stopped at its limit with one line and
nothing of it left running (its own process, Beam's workers, what the user module started)."""
import inspect
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from components.errors import StageError
from components.platform.submit import read_spec
from components.stage_table import STAGES
from helpers import REPO
from pipeline_cli import main

STAGE_NAMES = ["ingest", "statistics", "schema", "validate", "transform", "tune", "train", "evaluate", "push"]


def session_processes(session):
    """The processes of a session that still run (zombies have ended: only their exit status is left)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(f"{entry} {command[:200]}")
    return found


def session_processes_after_exit(session, wait_s=10):
    """The processes of a session still running `wait_s` after its leader ended: a process that exits closes its
    files (the pipes a test reads to their end) an instant before it has ended, longer on a busy machine."""
    deadline = time.monotonic() + wait_s
    while (left := session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_limit_that_cannot_be_one_is_refused_before_anything_runs(tmp_path, capsys):
    root = str(tmp_path / "root")
    for value, says in (("trasform=60", "no stage is called 'trasform': name one of ingest, statistics"),
                        ("transform=ten", "give whole seconds (e.g. 600), or minutes or hours"),
                        ("0", "more than 0 seconds and at most 7 days"),
                        ("train=200h", "more than 0 seconds and at most 7 days")):
        assert main(["run", "--pipeline-root", root, "--stage-timeout", value]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("Error: --stage-timeout") and says in error, error
        assert "\n" not in error and "please report" not in error
    assert not os.path.exists(root)  # nothing ran: not even the pipeline root was made
    assert main(["compile", "--output", str(tmp_path / "p.yaml"), "--stage-timeout", "push=-5"]) == 2
    assert "Error: --stage-timeout 'push=-5': a stage's time limit is more than 0 seconds" in capsys.readouterr().err


def test_every_stage_takes_the_limits_and_starts_its_watchdog_within_its_one_line_reporting():
    """A stage added later (its row in the stage table) must start its own watchdog, or nothing stops it."""
    for stage in STAGES:
        assert "stage_timeouts" in inspect.signature(stage.component).parameters, stage.name
        body = inspect.getsource(stage.component).split("with reported_stage():", 1)[1]
        first = body.lstrip().split("\n", 1)[0].removeprefix("time_limit = ")
        assert first == f'limit_stage_time("{stage.name}", stage_timeouts)', stage.name


@pytest.fixture(scope="module")
def kfp_spec(tmp_path_factory):
    """A spec for open-source KFP (its object store), compiled with a longer limit for train."""
    path = tmp_path_factory.mktemp("kfp") / "kfp.yaml"
    assert main(["compile", "--output", str(path), "--kfp-s3-endpoint", "http://minio:9000", "--stage-timeout",
                 "train=12h"]) == 0
    return path


def limits_of(spec):
    default = spec["root"]["inputDefinitions"]["parameters"]["stage_timeouts"]["defaultValue"]
    return {stage: int(seconds) for stage, seconds in (pair.split("=") for pair in default.split(","))}


def test_the_spec_carries_every_limit_and_kfp_pods_end_a_little_later(tmp_path, kfp_spec):
    portable = tmp_path / "portable.yaml"
    assert main(["compile", "--output", str(portable), "--stage-timeout", "2h", "--stage-timeout",
                 "transform=90m"]) == 0
    spec, platform = read_spec(str(portable))
    assert platform is None  # the portable spec holds no Kubernetes settings: Vertex AI takes it
    assert list(limits_of(spec)) == STAGE_NAMES
    assert limits_of(spec) == {**dict.fromkeys(STAGE_NAMES, 7200), "transform": 5400}
    tasks = spec["root"]["dag"]["tasks"]
    assert {name: task["inputs"]["parameters"]["stage_timeouts"] for name, task in tasks.items()} == {
        name: {"componentInputParameter": "stage_timeouts"} for name in STAGE_NAMES}

    spec, platform = read_spec(str(kfp_spec))
    limits = limits_of(spec)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    deadlines = {name.removeprefix("exec-"): int(config["activeDeadlineSeconds"])
                 for name, config in executors.items()}
    assert set(deadlines) == set(STAGE_NAMES)
    assert limits["train"] == 12 * 3600 and limits["schema"] == 1800  # the flag's, and the table's default
    for stage, seconds in limits.items():  # the stage's own line comes first, the platform's end soon after
        assert seconds < deadlines[stage] <= seconds + 600, stage


def test_submit_refuses_a_limit_past_the_pod_deadline_compiled_into_the_spec(kfp_spec, capsys):
    flags = ["submit", "--host", "http://127.0.0.1:9", "--spec", str(kfp_spec), "--param", "serving_root=s3://b/s"]
    assert main([*flags, "--param", "stage_timeouts=train=30h"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (f"Error: --param stage_timeouts: train=108000 runs past the pod deadline of 43500 s compiled "
                     f"into {kfp_spec}: compile the spec again with --stage-timeout train=108000, or give a shorter "
                     "limit.")
    assert main([*flags, "--param", "stage_timeouts=transform=soon"]) == 1
    assert "Error: --param stage_timeouts 'transform=soon': give whole seconds" in capsys.readouterr().err
    # A shorter limit passes the check (and then finds no KFP at that address).
    assert main([*flags, "--param", "stage_timeouts=transform=10m"]) == 1
    assert "stage_timeouts" not in capsys.readouterr().err


SLEEPING_MODULE = '''
"""The demo module, with a preprocessing_fn that starts a child process, notes both process ids and sleeps."""
import os
import subprocess
import time

from components.penguins import module as penguins

LABEL_KEY = penguins.LABEL_KEY
PROBLEM_TYPE = penguins.PROBLEM_TYPE
build_model = penguins.build_model


def preprocessing_fn(inputs):
    child = subprocess.Popen(["sleep", "600"])
    with open({pids!r}, "w") as sink:
        sink.write(f"{{os.getpid()}} {{child.pid}}")
    time.sleep(600)
'''


@pytest.mark.slow
def test_a_sleeping_preprocessing_fn_ends_transform_at_its_limit_with_one_line_and_nothing_left(tmp_path):
    pids = tmp_path / "pids"
    module = tmp_path / "sleeping_module.py"
    module.write_text(textwrap.dedent(SLEEPING_MODULE.format(pids=str(pids))))
    summary = tmp_path / "summary.json"
    started = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, "pipeline.py", "run", "--module", str(module), "--pipeline-root", str(tmp_path / "root"),
         "--serving-root", str(tmp_path / "serving"), "--statistics-root", "", "--stage-timeout", "transform=20",
         "--summary-json", str(summary)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 1, output[-3000:]
    assert time.monotonic() - started < 300
    result = json.loads(summary.read_text())
    assert result["stages"]["transform"]["status"] == "FAILURE"
    assert 20 <= result["stages"]["transform"]["seconds"] < 80
    assert [stage for stage, row in result["stages"].items() if row["status"] == "SUCCESS"] == [
        "ingest", "statistics", "schema", "validate"]
    expected = ("transform: the transform stage ran past its time limit of 20 s and was stopped, with every process "
                "it started: if it needs longer, raise the limit (--stage-timeout transform=SECONDS on run or "
                "compile; submit --param stage_timeouts=transform=SECONDS); otherwise its log shows where it was")
    assert [error.split(" (log: ")[0] for error in result["errors"]] == [expected]
    terminal = [line for line in output.splitlines() if "ran past its time limit" in line]
    assert [line.split(" (log: ")[0] for line in terminal] == [f"Error: {expected}"]
    assert "Traceback" not in output
    stage_pid, child_pid = (int(pid) for pid in pids.read_text().split())
    assert session_processes_after_exit(run.pid) == []  # the run, warm process, stages, watchdogs: all gone
    assert not running(stage_pid) and not running(child_pid)


BEAM_SCRIPT = '''
"""Starts a statistics stage's time limit, then a Beam pipeline whose two worker processes sleep."""
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from components.platform.time_limits import limit_stage_time


def sleep(value, folder):
    import os  # in Beam's worker process, where this module's globals are not
    import time

    open(os.path.join(folder, f"worker-{os.getpid()}"), "w").close()
    time.sleep(600)
    return value


if __name__ == "__main__":
    limit_stage_time("statistics", sys.argv[2])
    options = PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                               "--direct_num_workers=2"])
    with beam.Pipeline(options=options) as pipeline:
        _ = pipeline | beam.Create(list(range(4))) | beam.Reshuffle() | beam.Map(sleep, sys.argv[1])
'''


@pytest.mark.slow
def test_the_watchdog_ends_beams_worker_processes_too_and_goes_with_a_stage_that_ends_in_time(tmp_path):
    script = tmp_path / "beam_stage.py"
    script.write_text(BEAM_SCRIPT)
    workers = tmp_path / "workers"
    workers.mkdir()
    stage = subprocess.Popen([sys.executable, str(script), str(workers), "statistics=25"], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, errors = stage.communicate(timeout=300)
    assert stage.returncode == -9
    lines = [line for line in errors.splitlines() if line.startswith("living-pipeline error: ")]
    assert len(lines) == 1 and "the statistics stage ran past its time limit of 25 s" in lines[0]
    worker_pids = [int(name.removeprefix("worker-")) for name in os.listdir(workers)]
    assert len(worker_pids) >= 1 and worker_pids != [stage.pid]
    assert session_processes_after_exit(stage.pid) == []  # the workers were killed with the stage
    assert [pid for pid in worker_pids if running(pid)] == []

    quick = subprocess.Popen([sys.executable, "-c", "from components.platform.time_limits import limit_stage_time; "
                              "limit_stage_time('push', 'push=600')"], cwd=REPO, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    _, errors = quick.communicate(timeout=120)  # the watchdog holds standard error until it ends
    assert quick.returncode == 0 and errors == ""
    assert session_processes_after_exit(quick.pid) == []  # the watchdog went with the stage


def write_wide_csv(path, columns, rows=3, delimiter=","):
    with open(path, "w") as sink:
        sink.write(delimiter.join(f"c{i}" for i in range(columns)) + "\n")
        for row in range(rows):
            sink.write(delimiter.join(str(row + i) for i in range(columns)) + "\n")


def test_a_table_too_wide_to_get_through_in_time_is_refused_before_anything_runs(tmp_path, capsys):
    data = tmp_path / "wide.csv"
    write_wide_csv(data, 2000)
    root = tmp_path / "root"
    assert main(["run", "--data", str(data), "--pipeline-root", str(root), "--stage-timeout", "statistics=150"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"Error: --data {data} has 2,000 columns: at this width statistics will take about 3 min, "
                     "schema about 6 s and validate about 6 s before any row counts (2 splits, on a 2-core machine; "
                     "docs/safety.md#time-limits), and transform, train and evaluate grow with the columns too, most "
                     "with those the module uses: statistics would run past its time limit of 150 s; keep only the "
                     "columns the model needs "
                     "(a narrower file, or fewer columns in --query), or raise the limit with --stage-timeout "
                     "statistics=SECONDS.")
    assert not root.exists()
    # Three splits cost half as much again: past a limit that two splits stay within.
    assert main(["run", "--data", str(data), "--pipeline-root", str(root), "--split-ratios", "train:3,eval:1,test:1",
                 "--stage-timeout", "statistics=200"]) == 2
    assert "schema about 10 s and validate about 10 s before any row counts (3 splits" in capsys.readouterr().err


def test_a_wide_table_within_the_limits_is_told_its_cost_and_a_narrow_one_nothing():
    from components.data.table_width import check_ingested_width, width_notice
    from components.platform.time_limits import timeouts_text
    from components.stage_table import TIMEOUTS

    defaults = timeouts_text(TIMEOUTS)
    notice = width_notice(10_001, 2, defaults, "--data rows.csv")
    assert notice.startswith("Note: --data rows.csv has 10,001 columns: at this width statistics will take about "
                             "15 min, schema about 3 min and validate about 3 min before any row counts (2 splits")
    assert notice.endswith("keeping only the columns the model needs makes it faster, and Ctrl-C stops the run.")
    assert width_notice(9, 2, defaults, "--data penguins.csv") is None  # the demo: nothing to say
    assert width_notice(1000, 2, defaults, "--query") is None  # about 90 s: not worth a word
    # Schema's check grows with the square of the columns: at 40,000 it would run past its 30 minutes first.
    with pytest.raises(StageError, match=r"^--query has 40,000 columns: .*: schema would run past its time limit of "
                                         r"1800 s; .* --stage-timeout schema=SECONDS\.$"):
        check_ingested_width({"column_types": {f"c{i}": "float" for i in range(40_000)},
                              "split_names": ["train", "eval"]}, defaults, "--query")


def test_the_command_line_reads_the_width_of_local_csv_and_parquet_headers_only(tmp_path):
    import pyarrow
    import pyarrow.parquet

    from components.data.table_width import local_columns

    (tmp_path / "span-3").mkdir()
    with open(tmp_path / "span-3" / "rows.csv", "w") as sink:
        sink.write('a;"b;c";d\n1;2;3\n')
    assert local_columns(str(tmp_path / "span-{SPAN}" / "*.csv"), delimiter=";") == 3
    pyarrow.parquet.write_table(pyarrow.table({f"c{i}": [i] for i in range(40)}), tmp_path / "rows.parquet")
    assert local_columns(str(tmp_path / "*.parquet")) == 40
    assert local_columns(str(tmp_path / "nothing-*.csv")) is None
    assert local_columns("gs://bucket/rows.csv") is None  # ingest counts them as it reads
    assert local_columns(str(tmp_path / "span-3" / "rows.csv"), data_format="avro") is None
