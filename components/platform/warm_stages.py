"""Local stage processes forked from a warm process that has already imported the heavy libraries.

kfp.local's SubprocessRunner starts each stage as a new Python (`sh -ec '... python -m
kfp.dsl.executor_main ...'`) that imports TensorFlow, TFDV, TFT or TFMA again: 4-6 s a stage on this
kind of machine, most of a small run. Here the local run starts one warm process first; it imports
those libraries while the run compiles the spec and ingests the data, then forks one child per stage
(TFMA excepted: evaluate imports it itself, see `own_imports` in components/stage_table.py).
The child runs exactly what the stage's command would have run: kfp's executor on the component's
source, with the command's arguments, the caller's environment, working directory, standard input and
output, and returns the stage's exit status. The stage's semantics (inputs, outputs, logs, exit status)
are those of the plain process; only the imports are shared.

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


class WarmStages:
    """The run's side: starts the warm process and runs stage commands through it."""

    def __init__(self, imports):
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
                [sys.executable, "-m", __name__, str(listener.fileno()), ",".join(imports)],
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


_ACTIVE = []  # the WarmStages of the warm_stage_processes() that is active, if one is


@contextlib.contextmanager
def warm_stage_processes(imports=None):
    """While active, kfp.local's SubprocessRunner starts stages from a warm process that has imported
    `imports` (see the module's docstring); a stage it cannot start that way runs as kfp.local's plain
    process. Yields the `WarmStages`. Inside an active one (a command that runs the pipeline several times,
    demo-living) it starts no other warm process: the runs' stages are forked from the one already warm."""
    from kfp.local import subprocess_task_handler

    if _ACTIVE:
        yield _ACTIVE[0]
        return
    stages = WarmStages(imports or warm_imports())
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

class _WarmProcess:
    """Imports the stages' libraries and forks a child per stage request. A thread reports each child's exit status
    as soon as it ends: the main thread may be inside one import for seconds (TensorFlow's), and the run waits for
    that report before it starts the next stage."""

    def __init__(self, listener, imports):
        self.listener = listener
        self.imports = imports
        self.running = {}  # pidfd -> (pid, connection); changed only under `_changes`
        self._changes = threading.Condition()
        self._wake_read, self._wake_write = os.pipe()  # tells the reporting thread that `running` changed
        threading.Thread(target=self._report_exits, name="stage-exits", daemon=True).start()

    def serve(self):
        """Imports `imports`, starting waiting stages between imports, then starts stages until its
        standard input closes. Returns a request only in a forked child, which then runs it."""
        for module in self.imports:
            request = self._start_waiting_stages(timeout=0)
            if request is not None:
                return request
            try:
                __import__(module)
            except Exception as error:  # the stage that needs it imports it itself and reports the error
                print(f"warm process: could not import {module}: {error!r}", file=sys.stderr, flush=True)
        while True:
            request = self._start_waiting_stages(timeout=None)
            if request is not None:
                return request

    def _start_waiting_stages(self, timeout):
        """Starts the stages waiting on the socket; a request in a child."""
        while True:
            readable, _, _ = select.select([self.listener, sys.stdin], [], [], timeout)
            if not readable:
                return None
            for ready in readable:
                if ready is sys.stdin:
                    if not os.read(sys.stdin.fileno(), 1024):
                        self._end()
                else:
                    request = self._fork_stage()
                    if request is not None:
                        return request
            timeout = 0

    def _fork_stage(self):
        connection, _ = self.listener.accept()
        _, fds, _, _ = socket.recv_fds(connection, 16, 2)
        request = json.loads(_receive_all(connection))
        output, stdin = fds
        sys.stdout.flush()
        sys.stderr.flush()
        with self._changes:  # the child gets `running` whole, and the lock free
            pid = os.fork()
            if pid == 0:
                for fd in [self.listener.fileno(), self._wake_read, self._wake_write, *self.running,
                           *(c.fileno() for _, c in self.running.values())]:
                    os.close(fd)
                self.running = {}
                connection.close()
                os.dup2(stdin, 0)
                os.dup2(output, 1)
                os.dup2(output, 2)
                os.close(stdin)
                os.close(output)
                return request
            self.running[os.pidfd_open(pid)] = (pid, connection)
        os.close(output)
        os.close(stdin)
        os.write(self._wake_write, b"+")
        return None

    def _report_exits(self):
        """The reporting thread: waits for the running children and reports each one that ends."""
        while True:
            with self._changes:
                pidfds = list(self.running)
            readable, _, _ = select.select([self._wake_read, *pidfds], [], [])
            for ready in readable:
                if ready == self._wake_read:
                    os.read(self._wake_read, 4096)
                else:
                    self._report_exit(ready)

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
            self._changes.notify_all()

    def _end(self):
        """Once every started stage has been reported: ends without Python's clean-up (the warm process holds
        nothing to clean up, and Python's own after importing TensorFlow would keep the run waiting about two
        seconds for it)."""
        with self._changes:
            self._changes.wait_for(lambda: not self.running)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


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
    request = _WarmProcess(listener, [name for name in argv[2].split(",") if name]).serve()
    _run_stage(request)


if __name__ == "__main__":
    main(sys.argv)
