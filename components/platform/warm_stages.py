"""Local stage processes forked from a warm process that has already imported the heavy libraries.

kfp.local's SubprocessRunner starts each stage as a new Python (`sh -ec '... python -m
kfp.dsl.executor_main ...'`) that imports TensorFlow, TFDV, TFT or TFMA again: 4-6 s a stage on this
kind of machine, most of a small run. Here the local run starts one warm process first; it imports
those libraries while the run compiles the spec and ingests the data, then forks one child per stage
(TFMA excepted: see `own_imports` in components/stage_table.py, and the standby below).
The child runs exactly what the stage's command would have run: kfp's executor on the component's
source, with the command's arguments, the caller's environment, working directory, standard input and
output, and returns the stage's exit status. The stage's semantics (inputs, outputs, logs, exit status)
are those of the plain process; only the imports are shared.

A stage that imports a library itself (`own_imports` in the stage table: TFMA, for evaluate) gets a standby:
when one of the three stages before it starts (and the warm process has imported its own list), the warm process
forks a child that imports the stage's own modules while those stages run, then waits. The stage's request
goes to that child instead of a new fork, so the stage starts with its library already imported, and the
warm process itself never holds it. A standby that is not used is ended with the warm process.

A stage runs as a plain process instead, as kfp.local would, when this cannot apply: a command of
another shape than a lightweight component's, an environment or working directory other than the ones
the warm process started with (import-time settings such as TF_CPP_MIN_LOG_LEVEL would differ), or a
warm process that has gone.

The warm process is `python -m components.platform.warm_stages`; the local run talks to it over a Unix socket
that it creates and hands over, so a stage can be sent before the warm process has finished importing.
"""
import contextlib
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from typing import NamedTuple

from components.errors import error_line

# Imported before and after the stages' own preloads (components/stage_table.py): kfp's executor and the
# error reporting every stage starts with; the reports and component module every stage ends with.
_FIRST_IMPORTS = ("kfp.dsl.executor", "components.errors")
_LAST_IMPORTS = ("components.reports", "components.stages")
WARM = "warm"
FRESH = "fresh"
KFP_RUNTIME = ("_KFP_RUNTIME", "true")
EXECUTOR_MODULE = "kfp.dsl.executor_main"
_LIGHTWEIGHT_SCRIPT = ('program_path=$(mktemp -d) printf "%s" "$0" > "$program_path/ephemeral_component.py" '
                       '_KFP_RUNTIME=true {python} -m kfp.dsl.executor_main --component_module_path '
                       '"$program_path/ephemeral_component.py" "$@"')


def stage_request(full_command, python=sys.executable):
    """{"source", "arguments"} of a lightweight component's command as kfp.local runs it, or None.

    The command is `sh -ec SCRIPT SOURCE ARGS...`, where SCRIPT writes SOURCE to a file and runs kfp's
    executor on it with ARGS; any other command is not one this module knows how to run.
    """
    if len(full_command) < 4 or full_command[:2] != ["sh", "-ec"]:
        return None
    if " ".join(full_command[2].split()) != _LIGHTWEIGHT_SCRIPT.format(python=python):
        return None
    return {"source": full_command[3], "arguments": list(full_command[4:])}


def stage_name(request):
    """The name of the component function a stage request runs (kfp's `--function_to_execute`), or None."""
    arguments = request["arguments"]
    for flag, value in zip(arguments, arguments[1:]):
        if flag == "--function_to_execute":
            return value
    return None


class WarmStages:
    """The run's side: starts the warm process and runs stage commands through it."""

    def __init__(self, imports, standbys=None):
        self.environment = dict(os.environ)
        self.cwd = os.getcwd()
        self._folder = tempfile.mkdtemp(prefix="living-pipeline-warm-")
        self.socket_path = os.path.join(self._folder, "stages.sock")
        self.log_path = os.path.join(self._folder, "warm.log")
        self.used = 0  # stages that ran forked
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        listener.listen(16)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(listener.fileno()), ",".join(imports), json.dumps(standbys or {})],
                pass_fds=[listener.fileno()], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                cwd=self.cwd,
                env={**self.environment, KFP_RUNTIME[0]: KFP_RUNTIME[1]})
        listener.close()

    @property
    def process_id(self):
        return self._process.pid

    @property
    def exit_status(self):
        """The warm process's exit status once it has ended, else None."""
        return self._process.poll()

    def applies(self, full_command):
        """The stage request for `full_command`, or None when it must run as a plain process."""
        if self._process.poll() is not None:
            return None
        if dict(os.environ) != self.environment or os.getcwd() != self.cwd:
            return None
        return stage_request(full_command)

    def run(self, full_command):
        """Runs the stage through the warm process, streaming its output as kfp.local does; returns its
        exit status, or None when the stage must run as a plain process instead (nothing has run)."""
        request = self.applies(full_command)
        if request is None:
            return None
        read_end, write_end = os.pipe()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                try:
                    connection.connect(self.socket_path)
                    socket.send_fds(connection, [b"stage"], [write_end, 0])  # the stage's output; this standard input
                    connection.sendall(json.dumps(request).encode())
                    connection.shutdown(socket.SHUT_WR)
                except OSError:
                    return None
                finally:
                    os.close(write_end)
                with os.fdopen(read_end, encoding="utf-8", errors="replace") as output:
                    read_end = None
                    for line in output:
                        print(line, end="")
                    print("\n")
                answer = _receive_all(connection).decode()
        finally:
            if read_end is not None:
                os.close(read_end)
        self.used += 1
        if not answer:  # the stage ran, but the warm process ended before it could report how
            print(error_line("the warm process that started this stage ended before reporting the stage's exit "
                             "status: run again, or with --stage-processes fresh"))
            return 1
        return int(answer)

    def close(self):
        """Ends the warm process (it sees its standard input close) and removes its socket."""
        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self._folder, ignore_errors=True)


def warm_imports(table=None):
    """What the stages of `table` (default: the stage table) import, in the order the stages run: between two
    of these the warm process starts any stage that is waiting, so the first stages need not wait for the
    last stages' libraries."""
    from components.stage_table import STAGES

    return (*_FIRST_IMPORTS, *(module for stage in table or STAGES for module in stage.preloads), *_LAST_IMPORTS)


# A standby is prepared when one of the stages this many places before its own starts: for evaluate, transform,
# whose Beam pipeline leaves the second core free for TFMA's import (about 1 s; imported during train, which uses
# both cores, it slowed train by about as much). A run that validate stops imports nothing for it.
STANDBY_LEAD = 3


def standby_stages(table=None):
    """{stage name: {"imports": its own imports, "after": the stages whose start prepares its standby}} for each
    stage of `table` (default: the stage table) that imports modules itself (`own_imports`)."""
    from components.stage_table import STAGES

    table = table or STAGES
    return {stage.name: {"imports": list(stage.own_imports),
                         "after": [earlier.name for earlier in table[max(index - STANDBY_LEAD, 0):index]]}
            for index, stage in enumerate(table) if stage.own_imports}


_ACTIVE = []  # the WarmStages of the warm_stage_processes() that is active, if one is


@contextlib.contextmanager
def warm_stage_processes(imports=None, standbys=None):
    """While active, kfp.local's SubprocessRunner starts stages from a warm process that has imported
    `imports`, with a standby for each stage of `standbys` (`standby_stages()`'s form; both default to the stage
    table's; see the module's docstring); a stage it cannot start that way runs as kfp.local's plain
    process. Yields the `WarmStages`. Inside an active one (a command that runs the pipeline several times,
    demo-living) it starts no other warm process: the runs' stages are forked from the one already warm."""
    from kfp.local import subprocess_task_handler

    if _ACTIVE:
        yield _ACTIVE[0]
        return
    if imports is None:
        imports, standbys = warm_imports(), standby_stages() if standbys is None else standbys
    stages = WarmStages(imports, standbys)
    plain_process = subprocess_task_handler.run_local_subprocess

    def run_stage(full_command):
        status = stages.run(full_command)
        return plain_process(full_command=full_command) if status is None else status

    # kfp.local has no way to plug in how a task's process starts: its handler calls this function.
    subprocess_task_handler.run_local_subprocess = run_stage
    _ACTIVE.append(stages)
    try:
        yield stages
    finally:
        _ACTIVE.clear()
        subprocess_task_handler.run_local_subprocess = plain_process
        stages.close()


def _receive_all(connection):
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# The warm process.

class _Standby(NamedTuple):
    """A child forked for one stage ahead of its request; it imports the stage's own modules, then waits on `channel`
    for the stage's request and file descriptors."""
    pid: int
    pidfd: int
    channel: socket.socket


class _WarmProcess:
    """Imports the stages' libraries and forks a child per stage request. A thread reports each child's exit status
    as soon as it ends: the main thread may be inside one import for seconds (TensorFlow's), and the run waits for
    that report before it starts the next stage."""

    def __init__(self, listener, imports, standby_plan=None):
        self.listener = listener
        self.imports = imports
        self.running = {}  # pidfd -> (pid, connection); changed only under `_changes`
        self.standby_plan = standby_plan or {}  # stage -> {"imports": [...], "after": [stages before it]}
        self.standbys = {}  # stage -> _Standby, prepared and not yet used
        self.standby_wanted = set()  # stages whose standby is to be prepared (once the imports are done)
        self._changes = threading.Lock()
        self._wake_read, self._wake_write = os.pipe()  # tells the reporting thread that `running` changed
        threading.Thread(target=self._report_exits, name="stage-exits", daemon=True).start()

    def serve(self):
        """Imports `imports`, starting waiting stages between imports, then starts stages until the reporting
        thread ends the process. Returns a request only in a forked child, which then runs it."""
        for module in self.imports:
            request = self._start_waiting_stages(timeout=0)
            if request is not None:
                return request
            _import(module)
        while True:
            request = self._prepare_standbys()
            if request is None:
                request = self._start_waiting_stages(timeout=None)
            if request is not None:
                return request

    def _start_waiting_stages(self, timeout):
        """Starts the stages waiting on the socket; a request in a child."""
        while True:
            readable, _, _ = select.select([self.listener], [], [], timeout)
            if not readable:
                return None
            request = self._start_stage()
            if request is not None:
                return request
            timeout = 0

    def _start_stage(self):
        """Accepts a stage request and hands it to the stage's standby, or forks a child for it; the request in a
        child."""
        connection, _ = self.listener.accept()
        _, fds, _, _ = socket.recv_fds(connection, 16, 2)
        request = json.loads(_receive_all(connection))
        output, stdin = fds
        name = stage_name(request)
        self.standby_wanted.update(stage for stage, plan in self.standby_plan.items()
                                   if name in plan["after"] and stage not in self.standbys)
        standby = self.standbys.pop(name, None)
        if standby is not None and self._hand_over(standby, request, output, stdin, connection):
            return None
        sys.stdout.flush()
        sys.stderr.flush()
        with self._changes:  # the child gets `running` whole, and the lock free
            pid = os.fork()
            if pid == 0:
                self._forget_siblings()
                connection.close()
                _take_stage_descriptors(output, stdin)
                return request
            self.running[os.pidfd_open(pid)] = (pid, connection)
        os.close(output)
        os.close(stdin)
        os.write(self._wake_write, b"+")
        return None

    def _forget_siblings(self):
        """In a child: closes what the warm process holds for the other children and for the run."""
        for held in [self.listener, *(connection for _, connection in self.running.values()),
                     *(standby.channel for standby in self.standbys.values())]:
            held.close()
        for fd in [self._wake_read, self._wake_write, *self.running, *(s.pidfd for s in self.standbys.values())]:
            os.close(fd)
        self.running, self.standbys = {}, {}

    def _prepare_standbys(self):
        """Forks the standbys wanted (the warm process's imports are done); the stage's request in a standby
        once the stage is asked for."""
        while self.standby_wanted:
            stage = self.standby_wanted.pop()
            channel, child_channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            sys.stdout.flush()
            sys.stderr.flush()
            with self._changes:
                pid = os.fork()
                if pid == 0:
                    channel.close()
                    self._forget_siblings()
                    return _stand_by(self.standby_plan[stage]["imports"], child_channel)
                self.standbys[stage] = _Standby(pid, os.pidfd_open(pid), channel)
            child_channel.close()
        return None

    def _hand_over(self, standby, request, output, stdin, connection):
        """Sends the stage's request and descriptors to its standby, which the reporting thread then watches;
        False (nothing sent, the standby ended) if the standby has gone."""
        try:
            socket.send_fds(standby.channel, [b"stage"], [output, stdin])
            standby.channel.sendall(json.dumps(request).encode())
        except OSError:
            self._end_standby(standby)
            return False
        finally:
            standby.channel.close()
        os.close(output)
        os.close(stdin)
        with self._changes:
            self.running[standby.pidfd] = (standby.pid, connection)
        os.write(self._wake_write, b"+")
        return True

    @staticmethod
    def _end_standby(standby):
        standby.channel.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(standby.pid, signal.SIGKILL)
        os.waitpid(standby.pid, 0)
        os.close(standby.pidfd)

    def _report_exits(self):
        """The reporting thread: waits for the running children and reports each one that ends; once the run has
        closed the warm process's standard input and every stage has been reported, ends the warm process, even
        while the main thread is inside an import (a run that failed in its first stage does not wait for
        TensorFlow's)."""
        closed = False
        while True:
            with self._changes:
                pidfds = list(self.running)
            watched = [self._wake_read, *pidfds] + ([] if closed else [sys.stdin.fileno()])
            readable, _, _ = select.select(watched, [], [])
            for ready in readable:
                if ready == self._wake_read:
                    os.read(self._wake_read, 4096)
                elif ready == sys.stdin.fileno():
                    closed = closed or not os.read(ready, 1024)
                else:
                    self._report_exit(ready)
            if closed:
                with self._changes:  # no stage is being forked meanwhile
                    if not self.running:
                        self._end()

    def _report_exit(self, pidfd):
        pid, connection = self.running[pidfd]  # only this thread removes entries
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):  # the run has gone: nobody to tell
            # As `sh -e` reports a child a signal ended: 128 + the signal's number.
            connection.sendall(str(code if code >= 0 else 128 - code).encode())
        with self._changes:
            del self.running[pidfd]
            connection.close()
            os.close(pidfd)

    def _end(self):
        """Ends without Python's clean-up (the warm process holds nothing to clean up, and Python's own after
        importing TensorFlow would keep the run waiting about two seconds for it), ending the unused standbys."""
        for standby in list(self.standbys.values()):  # it holds nothing: a stage's request never reached it
            self._end_standby(standby)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _import(module):
    try:
        __import__(module)
    except Exception as error:  # the stage that needs it imports it itself and reports the error
        print(f"warm process: could not import {module}: {error!r}", file=sys.stderr, flush=True)


def _take_stage_descriptors(output, stdin):
    """In the stage's process: the stage's standard input, and its output on standard output and error."""
    os.dup2(stdin, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(stdin)
    os.close(output)


def _stand_by(imports, channel):
    """In a standby: imports `imports`, then waits for its stage's request; returns it, with the stage's descriptors
    in place. Ends the process if the warm process hands nothing over.

    What the imports print goes to the warm process's log, as its own imports' output does. A library that logs
    as it is imported (TFMA, through absl) gives Python's root logger a handler first; it is taken off again, so that
    kfp's executor configures the stage's logging as in a plain process, where the stage imports the library after.
    """
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for module in imports:
        _import(module)
    for handler in [handler for handler in root.handlers if handler not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    try:
        _, fds, _, _ = socket.recv_fds(channel, 16, 2)
        request = _receive_all(channel)
    except OSError:
        fds, request = [], b""
    channel.close()
    if len(fds) != 2 or not request:
        os._exit(0)
    _take_stage_descriptors(*fds)
    return json.loads(request)


def _run_stage(request):
    """In the forked child: what the lightweight component's `sh -ec` script runs."""
    import runpy

    signal.signal(signal.SIGINT, signal.default_int_handler)
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    program_path = tempfile.mkdtemp()
    component_path = os.path.join(program_path, "ephemeral_component.py")
    with open(component_path, "w") as sink:
        sink.write(request["source"])
    sys.argv = [EXECUTOR_MODULE, "--component_module_path", component_path, *request["arguments"]]
    try:
        runpy.run_module(EXECUTOR_MODULE, run_name="__main__", alter_sys=True)
    finally:  # kfp's own script leaves its copy of the source behind; this one does not
        shutil.rmtree(program_path, ignore_errors=True)


def main(argv):
    listener = socket.socket(fileno=int(argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the run and each stage, not the warm process
    # What TFT sets as it is imported, here and in every stage that imports it (transform, train, evaluate):
    # `tf.keras` is Keras 2 (tf_keras). Set before TensorFlow is imported, TensorFlow loads Keras 2's optimizers
    # instead of Keras 3's, which no stage uses: 0.6-0.8 s less before the statistics stage can start, 35 MB less.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    request = _WarmProcess(listener, [name for name in argv[2].split(",") if name], json.loads(argv[3])).serve()
    _run_stage(request)


if __name__ == "__main__":
    main(sys.argv)
