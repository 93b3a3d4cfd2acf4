"""The serving root: published models in TF Serving's layout, `<root>/<model-name>/<version>/`.

Versions are increasing integers written in ASCII digits, and a version counts as published once its
`saved_model.pb` is there. The root may be a local folder or a bucket (`gs://`, `s3://`). What holds:

- **Whole versions.** A model is first staged under a hidden name, `.incoming-<time>-<id>`, which TF
  Serving ignores (it only loads folders named by a number). Local: the staged folder is renamed into
  place under a file lock, so a version appears whole or not at all. Bucket (no rename): after the
  upload, the staged objects are copied inside the store into `<version>/`, `saved_model.pb` last, so
  by the time a version counts as published every other file of it is complete.
- **One publisher per version.** Local: the lock. Bucket: before copying, a publisher claims the version
  number by writing `.claims/<version>/<time>-<id>` and listing `.claims/<version>/`: it has the number only
  if its own claim is the only one there and the version has no files yet (claimants that see each other
  withdraw and try again after a random pause; see `_claim_version`). This needs only strongly consistent
  writes and listings, which S3, Google Cloud Storage, SeaweedFS and the GCS emulator have; the emulator
  ignores the conditional-create preconditions (`ifGenerationMatch=0`) that real GCS and S3 (`If-None-Match:
  *`) honour, so conditional creates alone could not be tested here.
- **No publish without a fair comparison.** `publish_model(..., compared_with=N)` publishes only while
  version N (0: none) is still the newest published version and no other publish after N is under
  way; otherwise it raises `BaselineChanged` and publishes nothing, and a rerun compares with the new
  version. Push passes the version evaluate compared the candidate with.
- **Debris from a publish that died** is removed by the next publish once it is old enough to be
  sure its publisher is gone: staging older than `ABANDONED_STAGING_SECONDS`; in a bucket, a claim
  older than `ABANDONED_CLAIM_SECONDS` whose version never got its `saved_model.pb`, with the files
  copied for it. A publisher that would exceed either age stops before its version becomes visible.
  A dead claim's number is not used again (its claim stays until a later version exists). Local
  roots never show a numbered folder that is not whole; in a bucket, a publish killed during the
  final copies (seconds for a large model) leaves a numbered prefix without `saved_model.pb` until
  its claim is abandoned and the next publish removes it; TF Serving may try to load it in between,
  and fails to.
"""
import contextlib
import fcntl
import json
import os
import random
import re
import shutil
import socket
import time
import uuid

from components.errors import StageError
from components.state.storage import Storage, is_remote, join

SAVED_MODEL_FILE = "saved_model.pb"
# Staged uploads older than this belong to a publish that died (a publish must upload within half of it).
ABANDONED_STAGING_SECONDS = 6 * 3600
# A bucket version claim older than this whose version is not published belongs to a publish that died.
ABANDONED_CLAIM_SECONDS = 10 * 60
_LOCK_FILE = ".publish.lock"
_STAGING_PREFIX = ".incoming-"
_CLAIMS_FOLDER = ".claims"
_WON_PREFIX = "won-"
_FLAG = "--serving-root"
_VERSION_NAME = re.compile(r"[0-9]+\Z")
_STAMPED_NAME = re.compile(r"([0-9]+)-[0-9a-f]+\Z")
# Bucket claims: how often a publisher tries, and how long it pauses (times the attempt) between tries.
_CLAIM_ATTEMPTS_COMPARED = 12
_CLAIM_ATTEMPTS_ANY = 100
_CLAIM_PAUSE_SECONDS = (0.05, 0.3)


class BaselineChanged(Exception):
    """The serving model is no longer the one the candidate was compared with; nothing was published."""


def is_version_name(name):
    """Whether a folder name is a version number (ASCII digits only: int() refuses "²", isdigit() does not)."""
    return bool(_VERSION_NAME.match(name))


def model_root(serving_root, model_name):
    return join(serving_root, model_name)


def published_versions(serving_root, model_name, storage=None):
    """The published versions of a model, oldest first."""
    storage = storage or Storage()
    names = storage.folders_holding(model_root(serving_root, model_name), SAVED_MODEL_FILE, _FLAG)
    return sorted(int(name) for name in names if is_version_name(name))


def published_model_names(serving_root, storage=None):
    """The names of the models with at least one published version in the serving root, sorted."""
    storage = storage or Storage()
    if is_remote(serving_root):
        prefix = serving_root.rstrip("/") + "/"
        paths = storage.match(join(serving_root, "*", "*", SAVED_MODEL_FILE), _FLAG)
        return sorted({path[len(prefix):].split("/")[0] for path in paths
                       if is_version_name(path[len(prefix):].split("/")[1])})
    if not os.path.isdir(serving_root):
        return []
    return sorted(name for name in os.listdir(serving_root) if published_versions(serving_root, name, storage))


def latest_published_model(serving_root, model_name, storage=None):
    """The path or URI of the newest published version, or None when nothing is published."""
    storage = storage or Storage()
    versions = published_versions(serving_root, model_name, storage)
    return join(model_root(serving_root, model_name), str(versions[-1])) if versions else None


@contextlib.contextmanager
def baseline_model(serving_root, model_name, storage=None):
    """(path or URI, local path, version) of the newest published version, or (None, None, 0); for evaluation."""
    storage = storage or Storage()
    versions = published_versions(serving_root, model_name, storage)
    if not versions:
        yield None, None, 0
        return
    latest = join(model_root(serving_root, model_name), str(versions[-1]))
    with storage.local_folder(latest, _FLAG) as local:
        yield latest, local, versions[-1]


def publish_model(model_dir, serving_root, model_name, compared_with=None, storage=None):
    """Publishes `model_dir` as the next version; returns (version, path or URI).

    With `compared_with` (the version the candidate was evaluated against, 0 for none), the model is
    published only if that version is still the newest published one and no other publish after it
    is under way; otherwise BaselineChanged says why and nothing is published.
    """
    storage = storage or Storage()
    if not os.path.isfile(os.path.join(model_dir, SAVED_MODEL_FILE)):
        raise StageError(f"The model {model_dir!r} has no {SAVED_MODEL_FILE}: only a SavedModel can be published.")
    root = model_root(serving_root, model_name)
    if is_remote(root):
        return _publish_to_bucket(model_dir, root, compared_with, storage)
    return _publish_locally(model_dir, root, compared_with)


def _stamp():
    """A name part that sorts by creation time and is unique: `<unix seconds>-<random hex>`."""
    return f"{int(time.time())}-{uuid.uuid4().hex}"


def _is_abandoned(stamped_name, age_seconds):
    found = _STAMPED_NAME.search(stamped_name)
    return bool(found) and int(found[1]) < time.time() - age_seconds


def _check_baseline(newest, compared_with, root):
    if compared_with is not None and newest != compared_with:
        raise BaselineChanged(
            f"version {newest} is now the newest published version at {root}; the candidate was compared "
            f"with {_described(compared_with)}: nothing was published; rerun to compare it with version {newest}")


def _described(version):
    return f"version {version}" if version else "no published model"


def _check_staging_age(started, root):
    if time.time() - started > ABANDONED_STAGING_SECONDS / 2:
        raise StageError(f"{_FLAG} {root!r}: uploading the model took longer than "
                         f"{ABANDONED_STAGING_SECONDS // 2} s, after which another publish may remove it: nothing "
                         "was published; publish from closer to the store.")


@contextlib.contextmanager
def _publish_lock(root):
    with open(os.path.join(root, _LOCK_FILE), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _publish_locally(model_dir, root, compared_with):
    os.makedirs(root, exist_ok=True)
    for name in os.listdir(root):
        if name.startswith(_STAGING_PREFIX) and _is_abandoned(name, ABANDONED_STAGING_SECONDS):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    started = time.time()
    staging = os.path.join(root, _STAGING_PREFIX + _stamp())
    try:
        shutil.copytree(model_dir, staging)
        with _publish_lock(root):
            _check_staging_age(started, root)
            numbered = [int(name) for name in os.listdir(root) if is_version_name(name)]
            published = [version for version in numbered
                         if os.path.isfile(os.path.join(root, str(version), SAVED_MODEL_FILE))]
            _check_baseline(max(published, default=0), compared_with, root)
            version = max(numbered, default=0) + 1
            path = os.path.join(root, str(version))
            os.rename(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version, path


class _BucketState:
    """One listing of a model's prefix in a bucket: versions, claims and staged uploads."""

    def __init__(self, root, storage):
        self.numbered, self.published, self.claims, self.staging = set(), set(), {}, {}
        for path, relative in storage.files_under(root, _FLAG):
            top, _, rest = relative.partition("/")
            if is_version_name(top):
                self.numbered.add(int(top))
                if rest == SAVED_MODEL_FILE:
                    self.published.add(int(top))
            elif top == _CLAIMS_FOLDER:
                version, _, claim = rest.partition("/")
                if is_version_name(version) and claim:
                    self.claims.setdefault(int(version), []).append(claim)
            elif top.startswith(_STAGING_PREFIX):
                self.staging.setdefault(top, []).append(path)
        self.newest = max(self.published, default=0)

    def _dead(self, version):
        return all(_is_abandoned(claim, ABANDONED_CLAIM_SECONDS) for claim in self.claims[version])

    def next_free(self):
        """The number after every version, finished or not, and every won or dead claim.

        A number that others contend for without a winner yet is not passed: it is tried again.
        """
        taken = {version for version, claims in self.claims.items()
                 if any(claim.startswith(_WON_PREFIX) for claim in claims) or self._dead(version)}
        return max(self.numbered | taken, default=0) + 1

    def live_claims_after(self, version):
        """Versions after `version`, not published, claimed by a publish that may still be running:
        (those with a winner, those only contended for)."""
        live = [number for number in self.claims
                if number > version and number not in self.published and not self._dead(number)]
        won = [number for number in live if any(claim.startswith(_WON_PREFIX) for claim in self.claims[number])]
        return sorted(won), sorted(set(live) - set(won))


def _remove_abandoned(root, state, storage):
    """Removes what publishes that died left: old staged uploads; for a dead claim, the files copied for a
    version never finished; and dead claims that no longer hold a number back (their version is published,
    or a later version exists)."""
    debris = [path for name, paths in state.staging.items() if _is_abandoned(name, ABANDONED_STAGING_SECONDS)
              for path in paths]
    highest = max(state.numbered, default=0)
    for version, claims in state.claims.items():
        if not state._dead(version):
            continue
        if version in state.numbered and version not in state.published:
            debris += [path for path, _ in storage.files_under(join(root, str(version)), _FLAG)]
        if version in state.published or version < highest:
            debris += [join(root, _CLAIMS_FOLDER, str(version), claim) for claim in claims]
    storage.delete(debris, _FLAG, root)


def _claim_version(root, compared_with, publisher, storage):
    """Claims the next version number in a bucket; returns (version, the URIs that hold the claim).

    A publisher writes `.claims/<version>/<its id>`, then lists `.claims/<version>/`: it holds the number
    if its claim is the only one there, and then says so with `won-<its id>`; otherwise it takes its
    claim back, pauses for a random moment and looks again. Two publishers cannot both hold a number:
    the later of the two to write its claim lists after the earlier one wrote, and sees its claim, or,
    once the earlier one has published and taken its claim back, the version's files.
    """
    attempts = _CLAIM_ATTEMPTS_ANY if compared_with is None else _CLAIM_ATTEMPTS_COMPARED
    for attempt in range(1, attempts + 1):
        state = _BucketState(root, storage)
        contended = []
        if compared_with is not None:
            _check_baseline(state.newest, compared_with, root)
            won, contended = state.live_claims_after(compared_with)
            if won:
                raise _publishing_elsewhere(won[0], root, compared_with)
        if not contended:
            version = state.next_free()
            folder = join(root, _CLAIMS_FOLDER, str(version))
            claim = join(folder, publisher)
            storage.write_bytes(claim, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode(),
                                _FLAG)
            alone = [name for _, name in storage.files_under(folder, _FLAG)] == [publisher]
            # A publisher that finished this number since the listing above has taken its claim back: its
            # version's files, copied before that, hold the number now.
            if alone and not any(True for _ in storage.files_under(join(root, str(version)), _FLAG)):
                won = join(folder, _WON_PREFIX + publisher)
                storage.write_bytes(won, b"won", _FLAG)
                return version, [claim, won]
            storage.delete([claim], _FLAG, claim)
        time.sleep(random.uniform(*_CLAIM_PAUSE_SECONDS) * min(attempt, 4))
    if compared_with is not None:
        raise _publishing_elsewhere(compared_with + 1, root, compared_with)
    raise StageError(f"{_FLAG} {root!r}: no version number could be claimed in {attempts} attempts, as other "
                     "publishers claimed them at the same time: nothing was published; run push again.")


def _publishing_elsewhere(version, root, compared_with):
    return BaselineChanged(
        f"another run is publishing version {version} at {root}, after {_described(compared_with)} that the "
        "candidate was compared with: nothing was published; rerun to compare it with the new version")


def _publish_to_bucket(model_dir, root, compared_with, storage):
    _remove_abandoned(root, _BucketState(root, storage), storage)
    started = time.time()
    publisher = _stamp()
    staged = storage.upload_folder(model_dir, join(root, _STAGING_PREFIX + publisher), _FLAG)
    try:
        _check_staging_age(started, root)
        version, claim = _claim_version(root, compared_with, publisher, storage)
        claimed = time.monotonic()
        path = join(root, str(version))
        last = [item for item in staged if item[1] == SAVED_MODEL_FILE]
        first = [item for item in staged if item[1] != SAVED_MODEL_FILE]
        copied = []
        try:
            for batch in filter(None, (first, last)):
                if batch is last and time.monotonic() - claimed > ABANDONED_CLAIM_SECONDS / 2:
                    raise StageError(f"{_FLAG} {root!r}: copying version {version} took longer than "
                                     f"{ABANDONED_CLAIM_SECONDS // 2} s, after which another publish may remove "
                                     "it: nothing was published; run push again.")
                targets = [join(path, relative) for _, relative in batch]
                storage.copy([source for source, _ in batch], targets, _FLAG, path)
                copied += targets
        except Exception:
            # A failure we see (not a kill): take back what was copied and the claim, so the number is free.
            storage.delete(copied, _FLAG, path)
            storage.delete(claim, _FLAG, root)
            raise
        # Published: the version itself now holds its number.
        storage.delete(claim, _FLAG, root)
    finally:
        storage.delete([source for source, _ in staged], _FLAG, root)
    return version, path
