"""Running a compiled pipeline spec on this machine with kfp.local, and what the user sees of it.

The stages run one after another, each in its own process (kfp.local's SubprocessRunner) in this
Python environment, or each in a container of the project image (kfp.local's DockerRunner). The
DockerRunner mounts the pipeline root into each container at the same path, and nothing else: so
`container_arguments` checks that local paths the stages use are under it (copying in the schema and
module files), and the pipeline root is made writable for the image's non-root user. `StageLog` passes
their output through to the terminal while noting each stage's start, end, peak memory and error line;
after the run, the run report is written and a summary is printed from the pipeline's outputs.
kfp.local puts its interpreter in place of `python3` only in the command's shell scripts here
(`python_in_scripts_only`), so every argument reaches the stage as given.
"""
import contextlib
import os
import re
import shutil
import sys
import time
import warnings

from kfp import local
from kfp.components import load_component_from_file
from kfp.local import pipeline_orchestrator, subprocess_task_handler

from components.errors import PEAK_MEMORY_PREFIX, TRACEBACK_BEGIN, TRACEBACK_END, read_error_line
from components.evaluation.blessing import undefined_line
from components.platform.beam_workers import BEAM_LINE_PREFIX
from components.platform.run_report import write_run_report
from components.redaction import Redactor
from components.stage_logic.push import BASELINE_CHANGED, NOT_BLESSED, PUBLISHED


class StageLog:
    """Passes the run's output through, noting when each stage starts and ends and any stage error.

    Each stage's output is also kept, whole, for its log file (`stage.log` in the stage's folder of the
    run). Tracebacks go only there: the terminal shows the one-line error of a failed stage instead. Known
    secret values (components.redaction) are redacted from every line first, so neither shows one.
    """

    _ANSI = re.compile(r"\x1b\[[0-9;]*m")
    _STARTED = re.compile(r"Executing task '?([\w-]+)'?")
    _ENDED = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")
    _FOREIGN_TRACEBACK = ("Traceback (most recent call last):", "Exception ignored in:")
    _CHAINED = ("During handling of the above exception", "The above exception was the direct cause")

    def __init__(self, stream):
        self._stream = stream
        self._redactor = Redactor.from_environment()  # the stages' environment: known secrets never shown or kept
        self._partial = ""
        self._current = None
        self._hiding = None  # None, "marked", or the indentation of a traceback kfp did not mark
        self.stages = {}  # name -> {"started": t, "seconds": s, "status": str, "peak_mb": m, "beam": how Beam ran}
        self.logs = {}  # name -> the stage's output lines
        self.stage_errors = {}  # name -> its error message
        self.errors = []  # "stage: message" lines, once the run has ended (see `finish`)

    def write(self, text):
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in map(self._redactor.redact, lines):
            if self._note(line):
                self._stream.write(line + "\n")
        return len(text)

    def flush(self):
        self._stream.flush()

    def _hidden(self, raw, line):
        """True for the lines of a traceback: they go to the stage's log only."""
        if line == TRACEBACK_BEGIN:
            self._hiding = "marked"
        if self._hiding == "marked":
            if line == TRACEBACK_END:
                self._hiding = None
            return True
        indentation = len(raw) - len(raw.lstrip())
        if self._hiding is None and line.startswith(self._FOREIGN_TRACEBACK):
            self._hiding = indentation
            return True
        if self._hiding is not None:
            if (not line or indentation > self._hiding or line.startswith(self._CHAINED)
                    or line.startswith(self._FOREIGN_TRACEBACK)):
                return True
            self._hiding = None  # the exception's own line ends the traceback
            return True
        return False

    def _note(self, raw):
        """Notes what a line says; returns whether the terminal shows it."""
        raw = self._ANSI.sub("", raw)
        line = raw.strip()
        if started := self._STARTED.search(line):
            self._current = started[1]
            self.stages[started[1]] = {"started": time.monotonic(), "seconds": None, "status": "RUNNING"}
        elif ended := self._ENDED.search(line):
            stage = self.stages.setdefault(ended[1], {"started": time.monotonic()})
            stage.update(seconds=time.monotonic() - stage["started"], status=ended[2])
        if self._current:
            self.logs.setdefault(self._current, []).append(raw)
        if PEAK_MEMORY_PREFIX in line and self._current:
            self.stages[self._current]["peak_mb"] = float(line.split(PEAK_MEMORY_PREFIX, 1)[1])
        if BEAM_LINE_PREFIX in line and self._current:
            stage = self.stages[self._current]
            stage["beam"] = "; ".join(filter(None, (stage.get("beam"), line.split(BEAM_LINE_PREFIX, 1)[1])))
        message = read_error_line(line)
        if message is not None:
            self.stage_errors[self._current or "run"] = message
            return False
        return not self._hidden(raw, line)

    def finish(self, run_dir):
        """Writes each stage's log into the run's folder and lists the errors, each with its stage and log."""
        log_paths = {}
        for name, lines in self.logs.items():
            if run_dir:
                os.makedirs(os.path.join(run_dir, name), exist_ok=True)
                log_paths[name] = os.path.join(run_dir, name, STAGE_LOG)
                with open(log_paths[name], "w") as sink:
                    sink.write("\n".join(lines) + "\n")
        for name, stage in self.stages.items():
            if stage.get("status") == "FAILURE" and name not in self.stage_errors:
                self.stage_errors[name] = "the stage failed without an error message"
        self.errors = []
        for name, message in self.stage_errors.items():
            first, *rest = message.split("\n")
            log = f" (log: {log_paths[name]})" if name in log_paths else ""
            introduces = ":" if rest and first.endswith(":") else ""
            self.errors.append("\n".join([f"{name}: {first.removesuffix(introduces)}{log}{introduces}", *rest]))
        return log_paths


class LocalRunError(Exception):
    """A local run that cannot start; the message is one line naming the flag and what to do."""


# The pipeline arguments that are local paths the stages read or write, and the `run` flag of each.
_DIRECTORY_ARGUMENTS = {"serving_root": "--serving-root", "statistics_root": "--statistics-root",
                        "data_pattern": "--data", "serving_data": "--serving-data"}
_FILE_ARGUMENTS = {"schema_path": "--schema", "module": "--module"}
CONTAINER_INPUTS = "inputs"
STAGE_LOG = "stage.log"


def container_arguments(arguments, pipeline_root):
    """The arguments for stages in containers that see only `pipeline_root` (kfp.local's DockerRunner).

    Data, serving data, the serving root and the statistics store must be under the pipeline root (they
    are folders the user owns: nothing is copied behind their back); a schema file or module file from
    elsewhere is copied into <pipeline root>/inputs/. An empty value stays empty (the demo data inside
    the image; no statistics store).
    """
    root = os.path.join(os.path.abspath(pipeline_root), "")
    adapted = dict(arguments)
    for name, flag in _DIRECTORY_ARGUMENTS.items():
        path = arguments.get(name, "")
        if path and "://" not in path and not os.path.abspath(path).startswith(root):
            raise LocalRunError(f"{flag} {path} is outside the pipeline root {root.rstrip('/')}: the docker "
                                "runner mounts only the pipeline root into the stages' containers; put it "
                                "under the pipeline root")
    for name, flag in _FILE_ARGUMENTS.items():
        path = arguments.get(name, "")
        if not path or "://" in path or not os.path.isabs(path) or path.startswith(root):
            continue  # empty, remote, an import path, or already visible in the containers
        if not os.path.isfile(path):
            raise LocalRunError(f"{flag} {path} does not exist: pass an existing file")
        inputs = os.path.join(root, CONTAINER_INPUTS)
        os.makedirs(inputs, exist_ok=True)
        adapted[name] = shutil.copy(path, os.path.join(inputs, os.path.basename(path)))
    return adapted


def check_docker(image):
    """Raises a LocalRunError unless a Docker engine answers and has `image` (kfp.local would try to pull it)."""
    try:
        import docker
    except ImportError as error:
        raise LocalRunError("--runner docker needs the Docker SDK: pip install -c constraints.txt -e '.[cluster]'") \
            from error
    try:
        client = docker.from_env()
    except docker.errors.DockerException as error:
        raise LocalRunError(f"--runner docker: no Docker engine answers ({error}): start dockerd, or point "
                            "DOCKER_HOST at one") from error
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound as error:
        raise LocalRunError(f"--runner docker: image {image} is not in the Docker engine: build it with "
                            "`make image` (scripts/build-image.sh), or pass --image") from error
    finally:
        client.close()


def _runner(runner, pipeline_root):
    if runner == "subprocess":
        return local.SubprocessRunner(use_venv=False)
    if runner == "docker":
        # The image runs as a non-root user: it writes the run's outputs under the pipeline root.
        os.chmod(pipeline_root, 0o1777)
        return local.DockerRunner()
    raise LocalRunError(f"--runner {runner}: use subprocess or docker")


def python_in_scripts_only(full_command, executable):
    """A task's command with `executable` in place of `python3` in the shell scripts it runs (`sh -c SCRIPT`,
    `sh -ec SCRIPT`), and nothing else changed.

    kfp.local's SubprocessRunner replaces `python3` everywhere in the command, the component's source and its
    arguments included: a data folder `/data/python3.11/`, a module, a root, a query or Beam arguments holding
    `python3` reached the stage mangled (`/data//path/to/bin/python.11/`). Only the scripts name the interpreter.
    """
    return [element.replace("python3", executable)
            if index >= 2 and full_command[index - 2] == "sh" and full_command[index - 1] in ("-c", "-ec")
            else element for index, element in enumerate(full_command)]


@contextlib.contextmanager
def _python_only_in_scripts():
    # kfp.local has no setting for this: its task handler calls this module-level function.
    replace_everywhere = subprocess_task_handler.replace_python_executable
    subprocess_task_handler.replace_python_executable = python_in_scripts_only
    try:
        yield
    finally:
        subprocess_task_handler.replace_python_executable = replace_everywhere


def run_compiled_spec(spec_path, arguments, pipeline_root, stage_order, runner="subprocess"):
    """Runs the compiled spec at `spec_path` with kfp.local under `pipeline_root`, with the runner named
    `runner` (subprocess or docker).

    Returns (outputs, stage log, path of the run report).
    """
    earlier_runs = set(os.listdir(pipeline_root))
    pipeline_spec = load_component_from_file(spec_path).pipeline_spec
    local.init(runner=_runner(runner, pipeline_root), pipeline_root=pipeline_root, raise_on_error=False)
    terminal = sys.stdout
    stage_log = StageLog(terminal)
    sys.stdout = stage_log
    try:
        with _python_only_in_scripts():
            outputs = pipeline_orchestrator.run_local_pipeline(pipeline_spec=pipeline_spec, arguments=arguments)
    finally:
        sys.stdout = terminal
    # kfp.local names a run's folder after the pipeline; other new folders (a serving root or statistics
    # store under the pipeline root, as the docker runner needs) are not runs.
    run_prefix = pipeline_spec.pipeline_info.name + "-"
    new_runs = sorted(name for name in set(os.listdir(pipeline_root)) - earlier_runs
                      if name.startswith(run_prefix) and os.path.isdir(os.path.join(pipeline_root, name)))
    run_dir = os.path.join(pipeline_root, new_runs[-1]) if new_runs else ""
    stage_log.finish(run_dir)
    report = None
    if run_dir:
        report = write_run_report(run_dir, stage_order, stage_log.stages, stage_log.errors, outputs)
    return outputs, stage_log, report


def _feature_distance(row):
    distance, threshold = row["distance"], row["threshold"]
    if row["outcome"] != "ok":
        return f"{row['feature']} {distance:.3f} > {threshold:g}"
    if threshold is not None and distance > threshold:  # over it, but two samples of these sizes differ so by chance
        chance = f" (p={row['p_value']:.2g})" if row.get("p_value") is not None else ""
        return f"{row['feature']} {distance:.3f} > {threshold:g} but within chance{chance}"
    return f"{row['feature']} {distance:.3f} <= {threshold:g}"


def _feature_distances(rows):
    """Each feature's distance and threshold, the ones above their threshold first; the ones not judged by name."""
    judged = sorted((row for row in rows if row["distance"] is not None and row.get("judged", True)),
                    key=lambda row: (row["outcome"] == "ok", -row["distance"]))
    parts = [_feature_distance(row) for row in judged]
    unchecked = [row["feature"] for row in rows if row not in judged]
    if unchecked:
        parts.append(f"not checked: {', '.join(unchecked)}")
    return parts


def validation_lines(validation):
    """The summary's account of validation: the schema used, drift and skew of every feature, warnings."""
    lines = []
    if validation.get("schema"):
        lines.append(f"Schema: {validation['schema']}")
    for check in ("drift", "skew"):
        lines.append(f"{check.capitalize()}: {validation['checks'][check]}")
        parts = _feature_distances(validation.get(check) or [])
        if parts:
            lines.append("  " + "; ".join(parts))
    if validation.get("warnings"):
        lines.append(f"Warnings (--warn-on-anomalies): {int(validation['anomaly_count'])} anomalies did not stop "
                     "the run")
        lines.extend(f"  {line.strip()}" for line in validation["warnings"])
    return lines


def summary(outputs, stage_log, total_seconds, report):
    lines = ["", "Summary", "======="]
    for name, stage in stage_log.stages.items():
        seconds = f"{stage['seconds']:6.1f} s" if stage.get("seconds") is not None else "      -"
        memory = f"{stage['peak_mb']:7.0f} MB" if stage.get("peak_mb") else ""
        lines.append(f"  {name:<11} {stage.get('status', '?'):<8} {seconds} {memory}".rstrip())
    lines.append(f"  {'total':<11} {'':<8} {total_seconds:6.1f} s")
    for error in stage_log.errors:
        first, *rest = error.split("\n")
        lines.append(f"Error: {first}")
        lines.extend(f"  {line.strip()}" for line in rest)
    if report:
        lines.append(f"Run report: {report}")
    if not outputs:
        lines.append("The run failed: nothing was published.")
        return "\n".join(lines)
    lines.extend(validation_lines(outputs["anomalies"].metadata))
    train = outputs["train_metrics"].metadata
    lines.append("Training: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(train.items())))
    evaluation = outputs["eval_metrics"].metadata
    lines.append("Evaluation (eval split): " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(evaluation.items())))
    blessing = outputs["blessing"].metadata
    if blessing.get("undefined"):  # None in the metadata, left out of KFP's metrics: here with the reason
        lines.append("Undefined metrics:")
        lines.extend(f"  - {undefined_line(item)}" for item in blessing["undefined"])
    lines.append(f"Blessing: {'BLESSED' if blessing['blessed'] else 'NOT BLESSED'}")
    lines.extend(f"  - {reason}" for reason in blessing["reasons"])
    pushed = outputs["pushed_model"].metadata
    outcome, status = run_outcome(outputs)
    if outcome == PUBLISHED:
        lines.append(f"Published: version {int(pushed['version'])} at {pushed['path']}")
    elif outcome == NOT_BLESSED:
        lines.append("Published: nothing (the model was not blessed)")
    else:
        why = pushed["reason"].removeprefix("blessed, but ")
        lines.append(f"Published: nothing, though the model was blessed ({why})")
        lines.append(f"Exit status {status}: rerun to evaluate the candidate against the newer version.")
    return "\n".join(lines)


# `run`'s exit status for each way a local run can end (docs/safety.md, "Exit statuses").
FAILED = "failed"
EXIT_STATUSES = {PUBLISHED: 0, NOT_BLESSED: 0, FAILED: 1, BASELINE_CHANGED: 3}


def run_outcome(outputs):
    """(outcome, exit status) of a local run: published, not-blessed, baseline-changed (blessed, but a newer
    version was published or was being published meanwhile, so nothing was) or failed (a stage failed)."""
    if not outputs:
        return FAILED, EXIT_STATUSES[FAILED]
    pushed = outputs["pushed_model"].metadata
    outcome = pushed.get("outcome") or (PUBLISHED if pushed["pushed"] else
                                        NOT_BLESSED if not outputs["blessing"].metadata["blessed"] else
                                        BASELINE_CHANGED)
    return outcome, EXIT_STATUSES[outcome]


def summary_record(outputs, stage_log, report):
    """The run's summary as JSON (`run --summary-json`): the outcome and exit status, stages, errors, outputs."""
    outcome, status = run_outcome(outputs)
    return {
        "succeeded": bool(outputs),
        "outcome": outcome,
        "exit_status": status,
        "run_report": report,
        "stages": {name: {"status": s.get("status"), "seconds": s.get("seconds"), "peak_mb": s.get("peak_mb"),
                          **({"beam": s["beam"]} if s.get("beam") else {})}
                   for name, s in stage_log.stages.items()},
        "errors": stage_log.errors,
        "outputs": {name: artifact.metadata for name, artifact in outputs.items()},
    }


def quiet_stage_logs():
    # TensorFlow's C++ start-up notices and Google client libraries' Python-version notices say
    # nothing about the run.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PYTHONWARNINGS", "ignore:You are using a Python version:FutureWarning")
    warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)  # this one
    # kfp.local warns that the (not yet built) project image may not be a Python image; locally the
    # stages run in this Python, so the warning does not apply.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
