"""Errors a user can act on, and how a stage reports its outcome.

A `StageError` carries one line that names the file, column, flag or URI at fault and what to do.
Inside a KFP component, `reported_stage()` prints that line (prefixed so the CLI can find it in the
logs) and ends the process with a non-zero exit, instead of a long traceback; when the stage's work
succeeds it prints the process's peak memory, which the run summary and the benchmarks read.
"""
import contextlib
import resource
import sys

ERROR_PREFIX = "living-pipeline error: "
PEAK_MEMORY_PREFIX = "living-pipeline peak memory MB: "


class StageError(Exception):
    """A problem with the pipeline's inputs or settings that the user can fix."""


def peak_memory_mb():
    """This process's peak resident memory so far (Beam's DirectRunner runs in it too)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def reported_stage():
    try:
        yield
    except StageError as error:
        print(f"{ERROR_PREFIX}{error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    print(f"{PEAK_MEMORY_PREFIX}{peak_memory_mb():.0f}", flush=True)
