"""Beam pipeline options shared by every Beam stage.

Stages take Beam arguments as one string (`--runner=DataflowRunner --project=... --region=...`), so the
same compiled pipeline moves to Dataflow or Flink without a code change. Without a runner, Beam's
DirectRunner runs the pipeline, in this process or, for a large input on idle cores, in worker processes.

Beam reads a flag the way Python's argparse does, in every view of the options (`view_as`) and in
`get_all_options`: an unambiguous abbreviation of an option's name sets that option, in either `=` or
space form. `options_set_by` asks Beam's own parsers which options a flag sets, so a check on option
names (credentials are refused: components.state.storage) sees what Beam will do with the flag.

A Beam stage's pipeline (`stage_pipeline`) takes its options from `pipeline_options(beam_args, stage,
input_sizes)`: where --beam-args leave the DirectRunner's mode open, components.platform.beam_workers chooses
between the stage's process and worker processes from the size of the input, and the stage's log says which and
why. On the DirectRunner the pipeline pickles its DoFns with cloudpickle unless --beam-args name a pickle library,
and compresses them quickly while it is built and run (`quick_pickles`; components.platform.beam_compression).
"""
import argparse
import contextlib
import functools
import json

import apache_beam as beam

# Beam's own parser class (private in Beam 2.59, which constraints.txt pins): its abbreviation rules are Beam's.
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

from components.platform import beam_compression, beam_signatures, beam_workers
from components.platform.flags import split_flags

# Examples per Arrow record batch where transform and evaluate read tf.Examples. TFXIO's default grows
# batches from timings up to 1,000; fixed larger batches cut the per-batch cost of decoding and of running
# the graphs. Measured on 2 cores: transform on 300k wide rows 115 s -> 92 s (load 2); evaluate on 1M rows
# 82 s -> 45 s (wide) and 33 s -> 20 s (demo, with a baseline), with the same metrics and about the
# same peak memory.
RECORD_BATCH_SIZE = 4096
_LOCAL_DEFAULTS = ["--runner=DirectRunner"]
_DIRECT_RUNNERS = {"direct", "directrunner", "switchingdirectrunner"}
# What the workers log reaches the stage's log through Beam: their warnings and errors, without the notices
# each worker gives as it starts (no main session to load, which Beam's worker logs as `__main__` when it pickles
# with dill, as --beam-args may choose; the
# DirectRunner's options it does not know; no python-snappy, which the stage process has said once already).
_WORKER_LOGGING = ["--default_sdk_harness_log_level=WARNING", "--sdk_harness_log_level_overrides=" + json.dumps(
    {"__main__": "ERROR", "apache_beam.options.pipeline_options": "ERROR", "apache_beam.io.tfrecordio": "ERROR"})]
_WORKER_PLUGIN = "--beam_plugin=components.platform.beam_worker"
# What a stage's worker processes import after _WORKER_PLUGIN to compute as the stage process does.
_STAGE_WORKER_PLUGINS = {"statistics": ["--beam_plugin=components.platform.statistics_worker"]}
# The DirectRunner pickles every DoFn of a pipeline as it builds it and unpickles them to run it. Beam 2.59's
# default, dill, scans every loaded module for each dict it pickles; cloudpickle (Beam's own option, its default
# from Beam 2.65) gives the same artifacts sooner: on the demo, transform 5.5-5.8 s -> 4.9 s and evaluate
# 2.3-2.7 s -> 2.0 s. --beam-args that name a pickle library keep it; other runners keep Beam's default.
_DIRECT_PICKLER = "--pickle_library=cloudpickle"


def beam_arg_list(beam_args):
    """Splits a Beam argument string (or takes a list); none means the local defaults."""
    args = split_flags(beam_args)
    flags = {arg.split("=", 1)[0] for arg in args}
    defaults = [] if "--runner" in flags else [
        arg for arg in _LOCAL_DEFAULTS if arg.split("=", 1)[0] not in flags]
    return defaults + args


def pipeline_options(beam_args, stage="", input_sizes=None):
    """Beam's options from `beam_args`. For a stage's pipeline (`stage`; `input_sizes()`: for each pattern it
    reads, its files' byte sizes, or None; asked only when the choice needs them), the DirectRunner runs as
    --beam-args say or, where they leave it open, as components.platform.beam_workers chooses; the choice goes
    to the stage's log. Worker processes get the project's plugin (their peak memory, a quiet exit:
    components.platform.beam_worker), the stage's own (the statistics stage's histograms) and quieter logs."""
    beam_signatures.install()
    args = beam_arg_list(beam_args)
    if stage:
        args = _with_direct_mode(args, stage, input_sizes)
    settings = _options_read(args, "runner", "direct_running_mode", "pickle_library")  # None: Beam will say why
    if settings and _is_direct(settings[0]) and settings[2] is None:
        args = [*args, _DIRECT_PICKLER]
    if settings and settings[1] == "multi_processing":
        given = {arg.split("=", 1)[0] for arg in args}
        args = [*args, _WORKER_PLUGIN, *_STAGE_WORKER_PLUGINS.get(stage, []),
                *(arg for arg in _WORKER_LOGGING if arg.split("=", 1)[0] not in given)]
        if stage:
            beam_workers.worker_peaks_folder()  # named in the environment the workers inherit
    return PipelineOptions(args)


@contextlib.contextmanager
def stage_pipeline(beam_args, stage, input_sizes=None):
    """A stage's Beam pipeline, with `pipeline_options(beam_args, stage, input_sizes)`, run and waited for as the
    `with` ends (its result is then the pipeline's `result`), with its pickles compressed as `quick_pickles` says."""
    options = pipeline_options(beam_args, stage, input_sizes)
    with quick_pickles(options), beam.Pipeline(options=options) as pipeline:
        yield pipeline


def quick_pickles(options):
    """Around a stage's pipeline with `options`, from before it is built until it has run (a `with`): on the
    DirectRunner its pickles are compressed quickly (components.platform.beam_compression); on any other runner,
    and outside the `with`, as Beam compresses them."""
    return beam_compression.quickly_while(_is_direct(options.view_as(StandardOptions).runner))


def matched_files(patterns):
    """For each of `patterns`, the files it matches as (path, byte size), in name order (Beam's file systems); None
    if they cannot be listed."""
    from apache_beam.io.filesystem import BeamIOError
    from apache_beam.io.filesystems import FileSystems

    try:
        return [sorted((found.path, found.size_in_bytes) for found in result.metadata_list)
                for result in FileSystems.match(list(patterns))]
    except (BeamIOError, OSError, ValueError):  # the stage's own read names the problem
        return None


def file_sizes(patterns):
    """For each of `patterns`, the byte sizes of the files it matches; None if they cannot be listed."""
    matched = matched_files(patterns)
    return None if matched is None else [[size for _, size in files] for files in matched]


def _direct_settings(args):
    """(runner, running mode, workers) as Beam reads them from `args`, None where the args leave one unset;
    None if Beam cannot read the args (it says why when the pipeline starts)."""
    return _options_read(args, "runner", "direct_running_mode", "direct_num_workers")


def _options_read(args, *names):
    """The values Beam reads from `args` for the options `names` (dest names), None for each one they leave
    unset; None if Beam cannot read the args."""
    try:
        parsed, _ = _parsers(tuple(_subclasses(PipelineOptions)))[-1].parse_known_args(
            args, argparse.Namespace(**dict.fromkeys(names)))
    except _NotParsed:
        return None
    return tuple(getattr(parsed, name) for name in names)


def direct_mode_open(beam_args):
    """Whether `beam_args` leave the stage to choose how it runs: the DirectRunner (or no runner) with neither its
    running mode nor its number of workers set."""
    settings = _direct_settings(beam_arg_list(beam_args))
    if settings is None:
        return False
    runner, mode, workers = settings
    return _is_direct(runner) and mode is None and workers is None


def _with_direct_mode(args, stage, input_sizes):
    """`args` with the DirectRunner's mode that `stage` runs in; prints the choice (or what --beam-args chose)."""
    settings = _direct_settings(args)
    runner, mode, workers = settings or ("", None, None)
    if settings is None:
        choice = beam_workers.Choice(0, "as --beam-args set it")
    elif not _is_direct(runner):
        choice = beam_workers.Choice(0, f"the {runner} that --beam-args give")
    elif mode is not None or workers is not None:
        mode, workers = mode or "in_memory", 1 if workers is None else workers
        how = {"in_memory": "in process",
               "multi_threading": _count(workers, "thread", "threads") + " in process"}.get(
            mode, _count(workers, "worker process", "worker processes"))
        choice = beam_workers.Choice(0, f"{how}, as --beam-args set it")
    else:
        choice = beam_workers.choose(stage, input_sizes() if input_sizes else None, beam_workers.usable_cores(),
                                     beam_workers.idle_cores, beam_workers.free_memory)
        mode = "in_memory" if choice.workers == 1 else "multi_processing"
        args = [*args, f"--direct_running_mode={mode}", f"--direct_num_workers={choice.workers}"]
    print(choice.line(), flush=True)
    return args


def _is_direct(runner):
    """Whether `runner` (as --beam-args name it; None: unset) is Beam's DirectRunner."""
    return (runner or "DirectRunner").lower() in _DIRECT_RUNNERS


def _count(workers, one, many):
    """Beam's number of workers in words (0: one per core)."""
    return f"one {one} per core" if workers == 0 else f"{workers} {one if workers == 1 else many}"


class _NotParsed(Exception):
    """Raised by `_ProbeParser` where Beam's parser would print a usage message and exit."""


class _ProbeParser(_BeamArgumentParser):
    """Beam's parser (an ambiguous abbreviation is an unknown flag, as in Beam), raising instead of exiting."""

    def error(self, message):
        if not message.startswith("ambiguous option: "):  # Beam's parser ignores only that error
            self.exit(2, message)

    def exit(self, status=0, message=None):
        raise _NotParsed(message)

    def print_help(self, file=None):
        """`--help` would print Beam's help; it sets no option."""


def _subclasses(cls):
    found, pending = [], list(cls.__subclasses__())
    while pending:
        subclass = pending.pop(0)
        if subclass not in found:
            found.append(subclass)
            pending.extend(subclass.__subclasses__())
    return found


@functools.lru_cache(maxsize=4)
def _parsers(options_classes):
    """One parser per view Beam may build (`view_as(cls)`: the options of cls and the classes it derives
    from), and the parser of `get_all_options` (every direct subclass, the last of each name)."""
    parsers = []
    for view in options_classes:
        parser = _ProbeParser()
        for cls in view.mro():
            if cls is PipelineOptions:
                break
            if "_add_argparse_args" in cls.__dict__:
                cls._add_argparse_args(parser)
        parsers.append(parser)
    every = _ProbeParser()
    for cls in {str(cls): cls for cls in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(every)
    return [*parsers, every]


def options_set_by(flag):
    """The Beam options (dest names) that the flag named `flag` (e.g. `--s3_sec`, `-s3_sec`; no value) sets in
    some view of Beam's PipelineOptions, given a value. Leading dashes count as two: Beam keeps a flag it
    does not know under its name without dashes and passes it on as `--name` (to workers, to Dataflow), where
    it is read again."""
    name = "--" + flag.lstrip("-")
    probe = "living-pipeline-probe-value"
    found = set()
    for parser in _parsers(tuple(_subclasses(PipelineOptions))):
        try:
            parsed, _ = parser.parse_known_args([name, probe], argparse.Namespace())
        except _NotParsed:  # the option takes no such value (a number, a choice): not a string option
            continue
        found.update(dest for dest, value in vars(parsed).items() if value != parser.get_default(dest))
    return found
