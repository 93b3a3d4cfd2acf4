"""A publisher (or statistics store writer) in a process of its own, for tests that run several at once
or kill one with SIGKILL at a chosen point.

    python tests/publish_child.py publish MODEL_DIR SERVING_ROOT MODEL_NAME [--compared-with N]
                                  [--barrier DIR] [--kill-at POINT] [--hold-at POINT --hold DIR]
                                  [--elsewhere] [--lease-seconds S]
    python tests/publish_child.py push MODEL_DIR SERVING_ROOT MODEL_NAME --compared-with N [--barrier DIR]
    python tests/publish_child.py store-statistics STATISTICS_DIR STATISTICS_ROOT SPAN [--kill-at POINT]

Prints the outcome as one JSON line: {"version": N, "path": ...}, {"refused": reason} or {"stored": span},
with "peak_mb", the process's peak resident memory, and "seconds" the publish took; `push` prints push's
result for a model blessed against version N (what the push stage records as its output).
`--barrier DIR`: after the imports and a first look at the store, writes DIR/ready-<pid> and waits
for DIR/go, so that concurrent publishers reach the store together. `--kill-at` makes the process
kill itself (SIGKILL: no cleanup, no finally) at one of the points in KILL_POINTS, by wrapping the
step it dies in, in this process only. `--hold-at` pauses it at one of HOLD_POINTS: it writes
DIR/held and waits for DIR/release, renewing its lease meanwhile as any slow publish does.
`--elsewhere` makes its owner records say it runs on another machine, so other publishers judge it by its
lease, which `--lease-seconds` shortens (renewed ten times a lease: a loaded test machine takes seconds to renew).
"""
import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

from components.stage_logic.push import push_model
from components.state import owners, serving_root, statistics_store
from components.state.serving_root import BaselineChanged, publish_model, published_versions
from components.state.storage import Storage


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _die_after(module, name, calls=1):
    """Dies right after the `calls`-th call of module.name returns."""
    original, made = getattr(module, name), []

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        made.append(name)
        if len(made) >= calls:
            _die()
        return result
    setattr(module, name, wrapper)


def _die_before(module, name):
    setattr(module, name, lambda *args, **kwargs: _die())


def _die_in_staging_copy():
    """Local: dies after copytree has copied one file of the model into the hidden staging folder."""
    original = shutil.copytree

    def copy_then_die(*args, **kwargs):
        shutil.copy2(*args, **kwargs)
        _die()

    def copytree(source, target, *args, **kwargs):
        if not args:  # the outer call; copytree's recursion passes the copy function on by position
            kwargs.setdefault("copy_function", copy_then_die)
        return original(source, target, *args, **kwargs)
    shutil.copytree = copytree


def _die_before_cleanup():
    """Bucket: dies once saved_model.pb is copied into the version, before staging and claim are removed."""
    original_copy, original_delete, copied = Storage.copy, Storage.delete, []

    def copy(self, sources, destinations, *args):
        original_copy(self, sources, destinations, *args)
        copied.extend(destinations)

    def delete(*args):
        if any(path.endswith("/" + serving_root.SAVED_MODEL_FILE) for path in copied):
            _die()
        original_delete(*args)
    Storage.copy, Storage.delete = copy, delete


def _die_after_writing(marker):
    """Dies right after writing a file whose path holds `marker` (e.g. a claim, before its won- marker)."""
    original = Storage.write_bytes

    def write_bytes(self, path, *args):
        original(self, path, *args)
        if marker in path:
            _die()
    Storage.write_bytes = write_bytes


KILL_POINTS = {
    # Local serving root.
    "local-staging": _die_in_staging_copy,
    "local-before-lock": lambda: _die_before(serving_root, "_publish_lock"),
    "local-before-rename": lambda: _die_before(os, "rename"),
    # Bucket serving root.
    "bucket-upload": lambda: _die_after(Storage, "upload_file"),
    "bucket-before-claim": lambda: _die_before(serving_root, "_claim_version"),
    "bucket-claim-written": lambda: _die_after_writing("/.claims/"),
    "bucket-after-claim": lambda: _die_after(serving_root, "_claim_version"),
    "bucket-copy": lambda: _die_after(Storage, "copy"),
    "bucket-before-cleanup": _die_before_cleanup,
    # Statistics store: after the first split's file is in place.
    "statistics-local-between-splits": lambda: _die_after(os, "replace"),
    "statistics-bucket-between-splits": lambda: _die_after(Storage, "write_bytes"),
}


def _hold(folder):
    open(os.path.join(folder, "held"), "w").close()
    while not os.path.exists(os.path.join(folder, "release")):
        time.sleep(0.05)


def _hold_in_staging_copy(folder):
    """Local: holds once copytree has copied one file of the model into the hidden staging folder."""
    original, held = shutil.copytree, []

    def copy_then_hold(*args, **kwargs):
        result = shutil.copy2(*args, **kwargs)
        if not held:
            held.append(True)
            _hold(folder)
        return result

    def copytree(source, target, *args, **kwargs):
        if not args:
            kwargs.setdefault("copy_function", copy_then_hold)
        return original(source, target, *args, **kwargs)
    shutil.copytree = copytree


def _hold_after_first_copy(folder):
    """Bucket: holds after the version's files but saved_model.pb are copied, before the last copy."""
    original = Storage.copy

    def copy(self, *args):
        original(self, *args)
        if Storage.copy is copy:
            Storage.copy = original
            _hold(folder)
    Storage.copy = copy


HOLD_POINTS = {"local-staging": _hold_in_staging_copy, "bucket-copy": _hold_after_first_copy}


def _elsewhere():
    """Owner records that say this process runs on another machine."""
    here = owners.this_process
    owners.this_process = lambda: {**here(), "host": "elsewhere", "boot_id": "another-machine"}


def write_fake_model(path, seed, big_asset_bytes=0):
    """A folder shaped like a SavedModel, its bytes unique to `seed`; returns {relative path: sha256}.

    With `big_asset_bytes`, it also holds a sparse asset file of that size (zeros, taking no disk here).
    """
    files = {"saved_model.pb": 3_000, "fingerprint.pb": 50, "variables/variables.index": 1_000,
             "variables/variables.data-00000-of-00001": 300_000, "assets/vocabulary.txt": 20_000}
    for relative, size in files.items():
        os.makedirs(os.path.dirname(os.path.join(path, relative)), exist_ok=True)
        with open(os.path.join(path, relative), "wb") as sink:
            sink.write(seed.encode() + os.urandom(size))
    if big_asset_bytes:
        with open(os.path.join(path, "assets", "big.bin"), "wb") as sink:
            sink.truncate(big_asset_bytes)
    return checksums(path)


def checksums(folder):
    """{relative path: sha256} of a local folder's files, read in pieces."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            digest = hashlib.sha256()
            with open(os.path.join(root, name), "rb") as source:
                for piece in iter(lambda: source.read(1 << 20), b""):
                    digest.update(piece)
            found[os.path.relpath(os.path.join(root, name), folder)] = digest.hexdigest()
    return found


def run_together(argument_lists, barrier, timeout=600):
    """Runs one child per argument list, lets them all start at once; returns their outputs (None: killed)."""
    os.makedirs(barrier, exist_ok=True)
    children = [subprocess.Popen([sys.executable, os.path.abspath(__file__), *arguments, "--barrier", barrier],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for arguments in argument_lists]
    deadline = time.monotonic() + timeout
    while len([n for n in os.listdir(barrier) if n.startswith("ready-")]) < len(children):
        if any(child.poll() is not None for child in children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    open(os.path.join(barrier, "go"), "w").close()
    return [outcome(child, timeout) for child in children]


def run_one(arguments, timeout=600):
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), *arguments],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return outcome(child, timeout)


def outcome(child, timeout):
    stdout, stderr = child.communicate(timeout=timeout)
    if child.returncode == -signal.SIGKILL:
        return None
    if child.returncode:
        raise RuntimeError(f"the child failed ({child.returncode}): {stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def _peak_mb():
    """This process's peak resident memory: VmHWM, not getrusage's ru_maxrss, which Linux carries over from
    the image before exec, i.e. the parent that forked this process (a test process holding TensorFlow)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["publish", "push", "store-statistics"])
    parser.add_argument("source")
    parser.add_argument("root")
    parser.add_argument("name")
    parser.add_argument("--compared-with", type=int, default=None)
    parser.add_argument("--barrier", default="")
    parser.add_argument("--kill-at", choices=sorted(KILL_POINTS), default="")
    parser.add_argument("--hold-at", choices=sorted(HOLD_POINTS), default="")
    parser.add_argument("--hold", default="")
    parser.add_argument("--elsewhere", action="store_true")
    parser.add_argument("--lease-seconds", type=float, default=0)
    args = parser.parse_args()
    if args.lease_seconds:
        owners.LEASE_SECONDS, owners.RENEW_SECONDS = args.lease_seconds, args.lease_seconds / 10
    if args.elsewhere:
        _elsewhere()
    if args.action == "store-statistics":
        statistics_store.stored_spans(args.root)
        if args.kill_at:
            KILL_POINTS[args.kill_at]()
        statistics_store.store_span_statistics(args.source, args.root, int(args.name), ["train", "eval"])
        print(json.dumps({"stored": int(args.name), "peak_mb": _peak_mb()}), flush=True)
        return
    published_versions(args.root, args.name)  # imports and checks the store before the start
    if args.barrier:
        open(os.path.join(args.barrier, f"ready-{os.getpid()}"), "w").close()
        while not os.path.exists(os.path.join(args.barrier, "go")):
            time.sleep(0.01)
    if args.kill_at:
        KILL_POINTS[args.kill_at]()
    if args.hold_at:
        HOLD_POINTS[args.hold_at](args.hold)
    started = time.monotonic()
    if args.action == "push":
        blessing = {"blessed": True, "reasons": ["passes"], "baseline_version": args.compared_with}
        print(json.dumps(push_model(args.source, blessing, args.root, args.name)), flush=True)
        return
    try:
        version, path = publish_model(args.source, args.root, args.name, compared_with=args.compared_with)
    except BaselineChanged as changed:
        print(json.dumps({"refused": str(changed), "peak_mb": _peak_mb(),
                          "seconds": time.monotonic() - started}), flush=True)
        return
    print(json.dumps({"version": version, "path": path, "peak_mb": _peak_mb(), "seconds": time.monotonic() - started}),
          flush=True)


if __name__ == "__main__":
    main()
