"""Beam pipeline options shared by every Beam stage.

Stages take Beam arguments as one string (`--runner=DataflowRunner --project=... --region=...`), so the
same compiled pipeline moves to Dataflow or Flink without a code change. Without a runner, Beam's
DirectRunner runs in this process: for the small and medium data of a local run, starting worker
processes costs more than it saves.
"""
import shlex

from apache_beam.options.pipeline_options import PipelineOptions

_LOCAL_DEFAULTS = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def beam_arg_list(beam_args):
    """Splits a Beam argument string; an empty string means the local defaults."""
    args = shlex.split(beam_args) if isinstance(beam_args, str) else list(beam_args or [])
    flags = {arg.split("=", 1)[0] for arg in args}
    defaults = [] if "--runner" in flags else [
        arg for arg in _LOCAL_DEFAULTS if arg.split("=", 1)[0] not in flags]
    return defaults + args


def pipeline_options(beam_args):
    return PipelineOptions(beam_arg_list(beam_args))
