"""Errors a user can act on, and how a stage reports them.

A `StageError` carries one line that names the file, column, flag or URI at fault and what to do.
Inside a KFP component, `report_stage_errors()` prints that line (prefixed so the CLI can find it in
the logs) and ends the process with a non-zero exit, instead of a long traceback.
"""
import contextlib
import sys

ERROR_PREFIX = "living-pipeline error: "


class StageError(Exception):
    """A problem with the pipeline's inputs or settings that the user can fix."""


@contextlib.contextmanager
def report_stage_errors():
    try:
        yield
    except StageError as error:
        print(f"{ERROR_PREFIX}{error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
