"""Who owns a version claim or a staged upload in the serving root, and whether that owner may still be running.

A publish writes an *owner record* (JSON) for its staged upload and for its version claim:

- `host`, `boot_id` and `pid_namespace`: together they say whether this process sees the owner's pid as the
  owner saw it (same machine, same boot, same pid namespace: not another container or another pod);
- `pid` and `started`, the process's start time in clock ticks since boot (`/proc/<pid>/stat`), so that a pid
  the system has since given to another process is not taken for the owner;
- `renewed`, the Unix time the owner last renewed its lease, and `lease`, the seconds the lease lasts.

An owner seen from the same machine and pid namespace is judged by its process: dead (no such pid, another
process started under it, or a zombie) means it is taken over at once; running means it is never taken over,
however slow its copy or long its lease lapsed. An owner seen from anywhere else (another pod, container or
machine, or a system without `/proc`) is live while its lease is: renewed within `lease` seconds.

The owner renews its lease every `RENEW_SECONDS` from a background thread (`Lease`) for as long as its publish
runs, and before it makes its version visible it checks that its records never went half a lease without a
renewal: a publish that could not renew (a store that stops answering, a process that was paused, even one
that renews again since) stops there rather than publish what another publish, judging by the lease, may be
removing. So a takeover by lease is safe as long as
the machines' clocks differ by less than half a lease.

Why these periods: a renewal is one small write, so every 15 s costs nothing worth counting; an owner gives
up only after three renewals in a row failed (half a lease, 60 s: a store's brief outage or a long garbage
collection is survived); a lease of 120 s is what a publish killed on another machine costs the publishes
after it (they wait at most two minutes, where a claim used to hold them ten); and the 60 s between the
owner's limit and the others' is the margin for clocks and for a pause between the owner's last check and its
final copy. Clocks kept by NTP, as on every cluster node, differ by milliseconds.
"""
import contextlib
import json
import os
import socket
import threading
import time

from components.errors import StageError

LEASE_SECONDS = 120
RENEW_SECONDS = 15
_PROC = "/proc"


def _read(path):
    with open(path) as source:
        return source.read().strip()


def _start_ticks(pid):
    """The process's start time in clock ticks since boot; None when /proc does not say."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        # Fields after the command name (which may hold spaces and parentheses): state is field 3, start 22.
        return int(_read(f"{_PROC}/{pid}/stat").rsplit(")", 1)[1].split()[19])
    return None


def _state(pid):
    with contextlib.suppress(OSError, IndexError):
        return _read(f"{_PROC}/{pid}/stat").rsplit(")", 1)[1].split()[0]
    return ""


def this_process():
    """This process's identity as an owner record holds it (the fields /proc cannot give are empty)."""
    identity = {"host": socket.gethostname(), "pid": os.getpid(), "boot_id": "", "pid_namespace": "",
                "started": _start_ticks(os.getpid())}
    with contextlib.suppress(OSError):
        identity["boot_id"] = _read(f"{_PROC}/sys/kernel/random/boot_id")
    with contextlib.suppress(OSError):
        identity["pid_namespace"] = os.readlink(f"{_PROC}/self/ns/pid")
    return identity


def owner_record():
    """This process's owner record, renewed now, as bytes to write."""
    return json.dumps({**this_process(), "renewed": time.time(), "lease": LEASE_SECONDS}, sort_keys=True).encode()


def read_record(data):
    """The owner record in `data`, or None when it is not one (an older publish wrote no lease)."""
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        record = json.loads(data)
        numbers = isinstance(record, dict) and all(isinstance(record.get(key, 0), (int, float))
                                                   for key in ("renewed", "lease"))
        if numbers and "renewed" in record:
            return record
    return None


def _sees_pids_of(record):
    """Whether this process shares the owner's machine, boot and pid namespace, so its pid means the same here."""
    here = this_process()
    return all(here[key] and record.get(key) == here[key] for key in ("host", "boot_id", "pid_namespace"))


def _process_runs(pid, started):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if _state(pid) in ("Z", "X"):
        return False
    ticks = _start_ticks(pid)
    # /proc may hide other users' processes (hidepid): a pid that exists but cannot be read counts as the owner.
    return ticks is None or started is None or ticks == started


def owner_status(record):
    """(live, description) of the owner in `record`: whether it may still be publishing, and who it is."""
    who = f"pid {record.get('pid')} on host {record.get('host')}"
    if _sees_pids_of(record) and isinstance(record.get("pid"), int):
        if _process_runs(record["pid"], record.get("started")):
            return True, f"{who}, running"
        return False, f"{who}, no longer running"
    age = time.time() - record["renewed"]
    lease = record.get("lease") or LEASE_SECONDS
    if age <= lease:
        return True, f"{who}, its lease renewed {max(age, 0):.0f} s ago"
    return False, f"{who}, its lease not renewed for {age:.0f} s (lease {lease:g} s)"


class LeaseLost(Exception):
    """The owner's records went half a lease without renewal: another publish may have taken them over."""


class Lease:
    """Renews this process's owner records every RENEW_SECONDS from a background thread, while in a `with`.

    `hold(write, what, made)` adds a record the caller made at `made` (time.monotonic()) and has written;
    `write(record_bytes)` rewrites it. Renewals start with the first record and end with the `with`.
    `check()` raises LeaseLost if the records ever went half a lease without renewal: the owner calls it before
    it makes its version visible. A record another publish removed, judging the lease lapsed, may be written
    again by a renewal after the lapse; the lapse is what `check()` finds, and the owner removes its records.
    """

    def __init__(self):
        self._renewals = {}
        self._renewing = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="owner-lease", daemon=True)
        self._renewed = None  # when the last renewed record was made
        self._longest_gap = 0.0
        self._failure = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def hold(self, write, what, made):
        """Renews the record `what` with `write` from now on."""
        with self._renewing:
            self._renewals[what] = write
        if self._renewed is None:
            self._renewed = made
            self._thread.start()

    def _run(self):
        while not self._stop.wait(RENEW_SECONDS):
            written = time.monotonic()
            record = owner_record()
            with self._renewing:
                try:
                    for write in self._renewals.values():
                        write(record)
                except (StageError, OSError) as error:  # judged by check(), in the owner's own thread
                    self._failure = str(error)
                    continue
            # Until this record landed, others saw the previous one: a gap that long may have looked lapsed,
            # even if renewals go on now (a process paused and resumed).
            self._longest_gap = max(self._longest_gap, time.monotonic() - self._renewed)
            self._renewed = written

    def check(self):
        """Raises LeaseLost if the records ever went half a lease without renewal."""
        if self._renewed is None:
            return
        gap = max(self._longest_gap, time.monotonic() - self._renewed)
        if gap >= LEASE_SECONDS / 2:
            failure = f" (the last failure: {self._failure})" if self._failure else ""
            raise LeaseLost(f"its lease went {gap:.0f} s without renewal{failure}, so another publish may have "
                            "taken it over")
