"""Beam pipeline options shared by every Beam stage.

Stages take Beam arguments as one string (`--runner=DataflowRunner --project=... --region=...`), so the
same compiled pipeline moves to Dataflow or Flink without a code change. Without a runner, Beam's
DirectRunner runs in this process: for the small and medium data of a local run, starting worker
processes costs more than it saves.

Beam reads a flag the way Python's argparse does, in every view of the options (`view_as`) and in
`get_all_options`: an unambiguous abbreviation of an option's name sets that option, in either `=` or
space form. `options_set_by` asks Beam's own parsers which options a flag sets, so a check on option
names (credentials are refused: components.state.storage) sees what Beam will do with the flag.
"""
import argparse
import functools

# Beam's own parser class (private in Beam 2.59, which constraints.txt pins): its abbreviation rules are Beam's.
from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from components.platform.flags import split_flags

# Examples per Arrow record batch where transform and evaluate read tf.Examples. TFXIO's default grows
# batches from timings up to 1,000; fixed larger batches cut the per-batch cost of decoding and of running
# the graphs. Measured on 2 cores: transform on 300k wide rows 115 s -> 92 s (load 2); evaluate on 1M rows
# 82 s -> 45 s (wide) and 33 s -> 20 s (demo, with a baseline), with the same metrics and about the
# same peak memory.
RECORD_BATCH_SIZE = 4096
_LOCAL_DEFAULTS = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def beam_arg_list(beam_args):
    """Splits a Beam argument string (or takes a list); none means the local defaults."""
    args = split_flags(beam_args)
    flags = {arg.split("=", 1)[0] for arg in args}
    defaults = [] if "--runner" in flags else [
        arg for arg in _LOCAL_DEFAULTS if arg.split("=", 1)[0] not in flags]
    return defaults + args


def pipeline_options(beam_args):
    return PipelineOptions(beam_arg_list(beam_args))


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
