"""The watchdog that stops a stage at its time limit, with every process the stage started.

A stage calls `watch(seconds, message)` once it knows its limit (components/platform/time_limits.py). That
starts `python -m components.platform.stage_watchdog`, a small process of its own that waits for the stage
process to end (a pidfd) for at most `seconds`. If the stage is still running then, the watchdog stops the
stage and everything below it (Beam's worker processes, anything the user module started), kills them, and
prints the stage's one error line (components/errors.py) on the stage's own standard error, which the local
run and KFP read as the stage's log. Being a separate process, it fires even while the stage is stuck in
native code that holds Python's GIL; it ends by itself as soon as the stage ends. Linux only (pidfd, /proc).
"""
import os
import select
import signal
import sys
import time

# A process stopped with SIGSTOP can no longer start children: the tree is stopped from the top down, and
# listed again until no new process appears, before anything is killed.
_SETTLE_S = 0.05


def watch(seconds, message):
    """Starts the watchdog of this process: after `seconds`, it ends this process and its descendants with
    `message` as the stage's error line."""
    # Spawned, not a subprocess.Popen: the stage never waits for it, and Python would warn of a Popen left running.
    os.posix_spawn(sys.executable, [sys.executable, "-m", __name__, str(os.getpid()), str(seconds), message],
                   os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                             (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])


def _parents():
    """{pid: parent pid} of every process this one can see."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        parents[int(entry)] = int(fields[1])
    return parents


def stop_process_tree(root):
    """Stops (SIGSTOP) `root` and all its descendants, but not this process; returns their pids."""
    stopped = []
    while True:
        found = [root] if not stopped else []
        parents = _parents()
        found += [pid for pid, parent in parents.items() if parent in stopped and pid not in stopped]
        found = [pid for pid in found if pid != os.getpid()]
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            stopped.append(pid)
        time.sleep(_SETTLE_S)
        if root not in stopped:
            break  # the stage had already ended
    return stopped


def kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main(argv):
    from components.errors import error_line

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C ends the stage; the watchdog then ends with it
    stage, seconds, message = int(argv[1]), float(argv[2]), argv[3]
    try:
        ended = os.pidfd_open(stage)
    except ProcessLookupError:
        return
    ready, _, _ = select.select([ended], [], [], seconds)
    if ready:
        return
    stopped = stop_process_tree(stage)
    # Printed while the stage is stopped: nothing of it follows the line, and on a cluster the line is out before
    # the stage's end ends the container.
    print(error_line(message), file=sys.stderr, flush=True)
    kill(stopped)


if __name__ == "__main__":
    main(sys.argv)
