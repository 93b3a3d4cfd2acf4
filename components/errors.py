"""Errors a user can act on, and how a stage reports its outcome.

A `StageError` carries a message that names the file, column, flag or URI at fault and what to do.
Inside a KFP component, `reported_stage()` turns every failure into that one message and a non-zero
exit: a `StageError` as it is; an error raised in the user module as the module's file, line and
function (`describe_user_error`); anything else as its type and message. The full
traceback goes to the stage's own log, between two marker lines, which the local CLI keeps out of the
terminal (in KFP and Vertex AI the stage's log is the pod's). The message travels as one JSON line, so a
value with a line break cannot cut it short.
Everything the stage prints, its traceback and its message pass through components.redaction first: known
secret values never reach its log.

When the stage's work succeeds, it prints the process's peak memory (the run summary and the benchmarks
read it). Either way the process then skips Python's slow clean-up at exit: once KFP's executor has
written the outputs, nothing is left to do, and tearing down TensorFlow, TFMA and Beam takes seconds
and prints noise from their finalizers. An uncaught error after that point (the executor writing its
outputs) still exits non-zero, as Python does.
"""
import atexit
import contextlib
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import traceback

from components.platform.beam_workers import workers_peak_mb
from components.redaction import redact, redacted_output

ERROR_PREFIX = "living-pipeline error: "
PEAK_MEMORY_PREFIX = "living-pipeline peak memory MB: "
TRACEBACK_BEGIN = "living-pipeline traceback begin"
TRACEBACK_END = "living-pipeline traceback end"


class StageError(Exception):
    """A problem with the pipeline's inputs or settings that the user can fix."""


def peak_memory_mb():
    """This process's peak resident memory so far (Beam's DirectRunner runs in it too), plus the peaks of the
    DirectRunner's worker processes it started, if any (components.platform.beam_workers).

    Linux's VmHWM: `ru_maxrss` would also count the peak of the process image this one was started from
    (a large parent, such as a test runner, before exec), and so would RUSAGE_CHILDREN for each worker."""
    return _own_peak_memory_mb() + workers_peak_mb()


def _own_peak_memory_mb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def error_line(message):
    """The one log line that carries a stage's error message (see `read_error_line`)."""
    return ERROR_PREFIX + json.dumps(message)


def read_error_line(line):
    """The message of an error line, or None when `line` is not one."""
    if ERROR_PREFIX not in line:
        return None
    text = line.split(ERROR_PREFIX, 1)[1]
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return text
    return message if isinstance(message, str) else text


# The files of the user modules this process imported (components.training.user_module registers them), and
# the --module value each came from: an error raised in one of them is reported as that file and line.
_USER_FILES = {}


# The folders of those files: a module's siblings (files it imports from its own folder) are user code too.
_USER_FOLDERS = {}


def register_user_file(path, module):
    """Reports errors raised in the file `path`, or in a file beside it, as the user module's, which
    `--module module` named."""
    _USER_FILES[path] = module
    _USER_FOLDERS.setdefault(os.path.dirname(os.path.abspath(path)), module)


def _user_module_of(filename):
    """The --module value whose code `filename` is (the module's file or a sibling), or None."""
    if filename in _USER_FILES:
        return _USER_FILES[filename]
    return _USER_FOLDERS.get(os.path.dirname(os.path.abspath(filename))) if filename.endswith(".py") else None


def _user_frame(error):
    """The innermost frame of `error`'s traceback (or of its causes) in a user module, or None."""
    while error is not None:
        frames = [frame for frame in traceback.extract_tb(error.__traceback__) if _user_module_of(frame.filename)]
        if frames:
            return frames[-1]
        error = error.__cause__ or error.__context__
    return None


def describe_user_error(error):
    """One line for an error raised in user module code (its file, line and function), or None.

    An error that TensorFlow raises from a traced function ("in user code:", then the traced frames) is told
    by its last line, the error itself, at the innermost traced frame in the module, if any."""
    if isinstance(error, SyntaxError) and _user_module_of(error.filename or ""):
        return (f"--module {_user_module_of(error.filename)!r}: syntax error in {error.filename}, line "
                f"{error.lineno}: {error.msg}: fix the module.")
    frame = _user_frame(error)
    if frame is None:
        return None
    text = redact(str(error))  # before it is shortened: a cut secret would no longer match
    if "in user code:" in text:
        traced = [(path, int(line), name) for path, line, name in _TRACED_FRAME.findall(text)
                  if _user_module_of(path)]
        if traced:
            frame = traceback.FrameSummary(traced[-1][0], traced[-1][1], traced[-1][2])
        text = [line for line in text.splitlines() if line.strip()][-1].strip()
        text = text[len(type(error).__name__) + 2:] if text.startswith(f"{type(error).__name__}: ") else text
    text = _SPARSE_REPR.sub("a SparseTensor", _TENSOR_REPR.sub("Tensor", " ".join(text.split()))) or "no message"
    return (f"--module {_user_module_of(frame.filename)!r}: {type(error).__name__}: {text[:300]} in "
            f"{frame.name} ({frame.filename}, line {frame.lineno}): fix the module.")


# How a graph tensor and a sparse tensor of them print, shortened in a one-line message.
_TENSOR_REPR = re.compile(r'Tensor\("[^"]*", shape=\([^)]*\), dtype=\w+(?:, device=[^)]*)?\)')
_SPARSE_REPR = re.compile(r'SparseTensor\(indices=Tensor, values=Tensor, dense_shape=Tensor\)')
# A frame in the message of an error raised inside a traced tf.function.
_TRACED_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\w+)', re.MULTILINE)


# A traceback inside an error's message: Beam's portable and Dataflow runners report a worker's failure so.
_EMBEDDED_TRACEBACK = "Traceback (most recent call last):"
_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b.*)$", re.MULTILINE)


def _without_embedded_traceback(text):
    """`text` up to an embedded traceback, then that traceback's own error line (the last one it names)."""
    if _EMBEDDED_TRACEBACK not in text:
        return text
    head, rest = text.split(_EMBEDDED_TRACEBACK, 1)
    named = _ERROR_LINE.findall(rest)
    return f"{head.strip()} {named[-1].strip() if named else ''}".strip()


def _unexpected_error_message(error):
    described = describe_user_error(error)
    if described:
        return described
    text = " ".join(_without_embedded_traceback(redact(str(error))).split())
    return (f"{type(error).__name__}: {text[:300] or 'no message'} (unexpected: the traceback is in the "
            "stage's log; please report it if the inputs look right)")


class _ExitWatch:
    """Ends the process with `code` and without Python's clean-up, unless an uncaught error follows."""

    def __init__(self, code):
        self.code = code
        self.failed = False
        self._original_hook = sys.excepthook

    def install(self):
        sys.excepthook = self._hook
        atexit.register(self._exit)

    def _hook(self, kind, value, trace):
        self.failed = True
        self._original_hook(kind, value, trace)

    def _exit(self):
        if self.failed:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(self.code)


@contextlib.contextmanager
def _own_temporary_folder():
    """The stage's temporary files in a folder of its own, removed when the stage ends.

    Python's `tempfile` and the processes the stage starts (TMPDIR) put them there: TensorFlow's autograph
    sources, Beam's scratch folders, downloads. TensorFlow removes its files only in Python's clean-up at exit,
    which a stage skips (see above), so without this every run would leave them in the system's folder.
    """
    folder = tempfile.mkdtemp(prefix="living-pipeline-stage-")
    previous_tempdir, previous_variable = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = folder
    try:
        yield
    finally:
        tempfile.tempdir = previous_tempdir
        if previous_variable is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous_variable
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def reported_stage():
    with _own_temporary_folder():
        try:
            with redacted_output():  # known secret values never reach the stage's log (components/redaction.py)
                yield
        except StageError as error:
            message = str(error)
        except Exception as error:  # every other failure still ends in one line, with the traceback in the log
            print(TRACEBACK_BEGIN, file=sys.stderr)
            print(redact(traceback.format_exc()), file=sys.stderr, end="")
            print(TRACEBACK_END, file=sys.stderr, flush=True)
            message = _unexpected_error_message(error)
        else:
            print(f"{PEAK_MEMORY_PREFIX}{peak_memory_mb():.0f}", flush=True)
            _ExitWatch(0).install()
            return
        print(error_line(redact(message)), file=sys.stderr, flush=True)
        _ExitWatch(1).install()
        raise SystemExit(1)
