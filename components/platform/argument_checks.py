"""The pipeline's arguments and the command line's flags, checked before anything runs.

`run` checks its flags, `submit` its `--param` values, with the same `check_arguments`; each bad value
is one line (a StageError) naming the flag or parameter and what to give instead. Where a stage checks a
value too (a spec run from a dashboard takes any value), this uses the stage's own check, so a value
passes here exactly when the stage would take it. The local checks (`check_folder`, `check_file`,
`check_output_file`) look at paths on this machine before a run writes there, so a serving root that is
a file fails now, not after training; bucket URIs are checked by the stages that use them.

Imports no Beam, TensorFlow or KFP: the command line answers in about a second.
"""
import argparse
import glob
import os
import re

from components.data import cell_limits, layout
from components.data.csv_dialect import delimiter_name
from components.data.database import MAX_QUERY_TIMEOUT_SECONDS
from components.data.formats import FORMATS
from components.data.query_check import check_query
from components.errors import StageError
from components.evaluation.blessing import check_thresholds
from components.json_values import parse_object
from components.state.model_names import check_model_name
from components.state.storage import is_remote
from components.validation.column_settings import check_threshold, parse_thresholds_text

# Counts (steps, spans, workers) must fit the 32-bit integers of the platforms' APIs.
MAX_COUNT = 2 ** 31 - 1
# Kubernetes object names (a PersistentVolumeClaim, a Secret): DNS-1123 subdomains.
_KUBERNETES_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")
_SPEC_TOKENS = re.compile(r"\{SPAN\}|\{VERSION\}|\{SPLIT\}")

# run's flag for each pipeline parameter whose flag is not the parameter's name with dashes.
RUN_FLAGS = {"data_pattern": "--data", "schema_path": "--schema", "drift_column_thresholds": "--drift-threshold",
             "skew_column_thresholds": "--skew-threshold", "block_on_anomalies": "--warn-on-anomalies"}


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad flag told in one line (the flag, the value, what to give) instead of the usage."""

    _HINTS = {"invalid int value": "give a whole number in ASCII digits",
              "invalid float value": "give a number, e.g. 0.5",
              "expected one argument": "give it a value (one that starts with '-' is written --flag=VALUE)",
              "invalid choice": "give one of the choices listed"}

    def error(self, message):
        hint = next((hint for text, hint in self._HINTS.items() if text in message), "")
        self.exit(2, f"Error: {message}" + (f": {hint}" if hint else "") + f" (see {self.prog} --help).\n")


def run_flag(name):
    """The `run` flag that sets the pipeline parameter `name`."""
    return RUN_FLAGS.get(name, "--" + name.replace("_", "-"))


def param_flag(name):
    """How `submit` names the pipeline parameter `name`."""
    return f"--param {name}"


def check_count(value, flag, low, high=MAX_COUNT, meaning=""):
    """`value` when it is a whole number from `low` to `high`; else one line naming `flag`."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StageError(f"{flag} {value!r}: give a whole number from {low} to {high}" + (f" ({meaning})" if meaning
                                                                                          else "") + ".")
    return value


def _data_format(value, flag):
    if value:
        if value not in FORMATS:
            raise StageError(f"{flag} {value!r}: give one of {', '.join(FORMATS)}, or nothing to take the format "
                             "from the files' extension.")


def check_arguments(arguments, flag_for):
    """Checks the pipeline arguments in `arguments` ({parameter: value}, those given); `flag_for(name)` says how
    the user set parameter `name` (a flag of `run`, a `--param` of `submit`). Raises StageError."""
    def given(name):
        return name in arguments

    if given("serving_root") and not str(arguments["serving_root"]).strip():
        raise StageError(f"{flag_for('serving_root')} is empty: give the folder or bucket URI where blessed "
                         "models are published.")
    if given("module") and not str(arguments["module"]).strip():
        raise StageError(f"{flag_for('module')} is empty: give the user module's import path or .py file.")
    if given("span"):
        check_count(arguments["span"], flag_for("span"), 0, meaning="0 for the latest span")
    if given("query_partitions"):
        check_count(arguments["query_partitions"], flag_for("query_partitions"), 1)
    if given("query_timeout"):
        check_count(arguments["query_timeout"], flag_for("query_timeout"), 1, MAX_QUERY_TIMEOUT_SECONDS, "seconds")
    if arguments.get("query"):  # PostgreSQL's grammar, before anything connects (ingest checks it again)
        check_query(arguments["query"], flag_for("query"))
    if given("split_ratios"):
        layout.parse_split_ratios(arguments["split_ratios"], flag_for("split_ratios"))
    if arguments.get("split_cutoff") and not arguments.get("split_column"):
        raise StageError(f"{flag_for('split_cutoff')} {arguments['split_cutoff']!r} needs "
                         f"{flag_for('split_column')}: name the column to cut.")
    if given("train_steps"):
        check_count(arguments["train_steps"], flag_for("train_steps"), 1)
    if given("min_slice_examples"):
        check_count(arguments["min_slice_examples"], flag_for("min_slice_examples"), 0)
    if given("max_cell_bytes"):
        cell_limits.check_max_cell_bytes(arguments["max_cell_bytes"], flag_for("max_cell_bytes"))
    try:
        check_thresholds(None, arguments.get("threshold", -1.0), arguments.get("slice_threshold", 0.0),
                         tolerance=arguments.get("tolerance", 0.0))
    except StageError as error:  # the message names run's flags: name the parameter as the user gave it
        raise StageError(_renamed(str(error), flag_for)) from None
    for name in ("drift_threshold", "skew_threshold"):
        if given(name):
            check_threshold(arguments[name], flag_for(name))
    for name in ("drift_column_thresholds", "skew_column_thresholds"):
        if given(name):
            parse_thresholds_text(arguments[name], flag_for(name))
    if arguments.get("model_name"):  # empty: the module's model name
        check_model_name(arguments["model_name"], flag_for("model_name"))
    for name in ("hyperparameters", "custom_config"):
        if given(name):
            parse_object(arguments[name], flag_for(name))
    if given("data_format"):
        _data_format(arguments["data_format"], flag_for("data_format"))
    if given("csv_delimiter"):
        delimiter_name(arguments["csv_delimiter"], flag_for("csv_delimiter"))


def _renamed(message, flag_for):
    """`message` with run's threshold flags named as `flag_for` names them."""
    for name in ("slice_threshold", "threshold", "tolerance"):
        message = re.sub(rf"--{name.replace('_', '-')}\b(?!-)", flag_for(name), message)
    return message


def _nearest_existing(path):
    """The path itself or its nearest ancestor that exists."""
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_folder(path, flag, purpose):
    """A local folder a run writes into (`purpose` says what for): it may not exist yet, but it must not be a
    file, nor lie below one, and it (or the folder it will be made in) must be writable. URIs pass."""
    if not path or is_remote(path):
        return
    absolute = os.path.abspath(path)
    existing = _nearest_existing(absolute)
    if not os.path.isdir(existing):
        what = "is a file" if existing == absolute else f"lies below {existing}, which is a file"
        raise StageError(f"{flag} {path!r} {what}: give a folder for {purpose}.")
    needed = os.W_OK | os.X_OK | (os.R_OK if existing == absolute else 0)
    if not os.access(existing, needed):
        where = "it" if existing == absolute else f"{existing}, where it would be made,"
        raise StageError(f"{flag} {path!r}: {where} is not readable and writable by this user: give a folder "
                         f"you can write for {purpose}, or change its permissions.")


def check_file(path, flag, what):
    """A local file a run reads (`what` it should be): it must exist, be a file and be readable. URIs pass."""
    if not path or is_remote(path):
        return
    if os.path.isdir(path):
        raise StageError(f"{flag} {path!r} is a folder: give the path of {what}.")
    if not os.path.isfile(path):
        raise StageError(f"{flag} {path!r} does not exist: give the path of {what}.")
    if not os.access(path, os.R_OK):
        raise StageError(f"{flag} {path!r} is not readable by this user: change its permissions.")


def check_output_file(path, flag, what):
    """A local file a command writes: not a folder, and in a folder that is writable or can be made (its
    missing folders are made when it is written)."""
    if not path or is_remote(path):
        return
    if os.path.isdir(path):
        raise StageError(f"{flag} {path!r} is a folder: give the path of the file to write {what} to.")
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise StageError(f"{flag} {path!r}: {folder} is a file, not a folder: write {what} elsewhere.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StageError(f"{flag} {path!r}: the folder {folder} is not writable by this user: write {what} "
                         "elsewhere.")


def check_pattern(pattern, flag):
    """A local file pattern a run reads ({SPAN}, {VERSION} and {SPLIT} stand for any name): something must
    match it now. URIs pass (the stage lists the bucket)."""
    if not pattern or is_remote(pattern):
        return
    if not glob.glob(_SPEC_TOKENS.sub("*", pattern)):
        prefix = re.split(r"[*?\[]", _SPEC_TOKENS.sub("*", pattern))[0]
        folder = prefix if prefix.endswith(os.sep) else os.path.dirname(prefix)
        folder = _nearest_existing(os.path.abspath(folder or "."))
        unreadable = os.path.isdir(folder) and not os.access(folder, os.R_OK | os.X_OK)
        raise StageError(f"No file matches {flag} {pattern!r}" + (
            f": {folder} is not readable by this user; change its permissions." if unreadable else
            ": check the path."))


def check_run_paths(arguments):
    """`run`'s local paths, from the pipeline arguments it built: the folders it writes (serving root,
    statistics store) and the files it reads (data, serving sample, schema, a module's .py file)."""
    check_folder(arguments.get("serving_root"), run_flag("serving_root"), "the published models")
    check_folder(arguments.get("statistics_root"), run_flag("statistics_root"), "the statistics store")
    check_pattern(arguments.get("data_pattern"), run_flag("data_pattern"))
    check_pattern(arguments.get("serving_data"), run_flag("serving_data"))
    check_file(arguments.get("schema_path"), run_flag("schema_path"), "a schema in text format (schema.pbtxt)")
    module = arguments.get("module", "")
    if module.endswith(".py"):
        check_file(module, run_flag("module"), "the user module's .py file")


def check_command_flags(args):
    """The flags of a command that are not pipeline arguments (`args` from the parser: only those the command
    has are looked at). Raises StageError naming the flag."""
    flags = vars(args)
    command = flags.get("command")
    if flags.get("output") is not None:  # compile
        if not flags["output"].endswith(".yaml"):
            raise StageError(f"--output {flags['output']!r}: give a path ending in .yaml (KFP reads the spec by its "
                             "extension).")
        check_output_file(flags["output"], "--output", "the pipeline spec")
    if "image" in flags and not str(flags["image"]).strip():
        raise StageError("--image is empty: give the image every stage runs, e.g. REGISTRY/living-pipeline:TAG.")
    check_kubernetes_name(flags.get("kfp_volume"), "--kfp-volume", "PersistentVolumeClaim")
    check_url(flags.get("kfp_s3_endpoint"), "--kfp-s3-endpoint", "http://minio-service.kubeflow:9000")
    if flags.get("kfp_s3_endpoint"):
        check_kubernetes_name(flags.get("kfp_s3_secret"), "--kfp-s3-secret", "Secret")
    check_url(flags.get("host"), "--host", "http://localhost:8888")
    for name, low in (("timeout", 1), ("max_concurrency", 1), ("dataflow_max_workers", 0)):
        if name in flags:
            check_count(flags[name], "--" + name.replace("_", "-"), low)
    if "experiment" in flags and not str(flags["experiment"]).strip():
        raise StageError("--experiment is empty: give the KFP experiment's name, or leave the flag out.")
    if len(flags.get("version_name") or "") > 100:
        raise StageError(f"--version-name has {len(flags['version_name'])} characters: give at most 100.")
    if command in ("run", "demo-data", "demo-living"):
        check_folder(flags.get("pipeline_root"), "--pipeline-root", "the run's artifacts")
        check_folder(flags.get("dir"), "--dir", "the demo's files")
    check_output_file(flags.get("summary_json"), "--summary-json", "the summary")
    if command == "models":
        root = flags.get("serving_root")
        if root and not is_remote(root) and os.path.exists(root) and not os.path.isdir(root):
            raise StageError(f"--serving-root {root!r} is a file: give the serving root's folder.")


def check_kubernetes_name(name, flag, kind):
    """A Kubernetes object name (a PersistentVolumeClaim, a Secret): lowercase letters, digits, '-' and '.'."""
    if name and not _KUBERNETES_NAME.match(name):
        raise StageError(f"{flag} {name!r} is not a Kubernetes {kind} name: lowercase letters, digits, '-' and '.', "
                         "starting and ending with a letter or digit, at most 253 characters.")


def check_url(url, flag, example):
    """An http:// or https:// URL with a host. The message leaves out what comes before an '@' (a password)."""
    if url and not re.match(r"https?://[^/\s]+", url):
        shown = url.rsplit("@", 1)[-1]
        raise StageError(f"{flag} {shown!r} is not an http:// or https:// URL: give one, e.g. {example}.")
