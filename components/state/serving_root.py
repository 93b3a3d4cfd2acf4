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
  way; otherwise it raises `BaselineChanged` (with the newer version) and publishes nothing, and a rerun
  compares with the new version. Push passes the version evaluate compared the candidate with.
- **Owners, leases and takeovers** (`components.state.owners`). Every staged upload has an owner record
  beside it (`.incoming-<time>-<id>.owner`), and a bucket claim is itself its owner's record: host, boot id,
  pid namespace, pid and the process's start time, and the time its lease was last renewed. The owner
  renews both every `owners.RENEW_SECONDS` (15 s) from a background thread for as long as it publishes.
  The next publish judges each owner: seen from the same machine and pid namespace, by its process (no such
  pid, or another process started under it: dead, taken over at once; running: never taken over, however
  slow); seen from anywhere else (another pod or container), by its lease (`owners.LEASE_SECONDS`, 120 s:
  lapsed, taken over). Before its version becomes visible, an owner checks that it renewed within half a
  lease and that what it staged or copied is all still there, so a publish paused past its lease stops
  rather than publish what another publish may be removing (this holds while clocks differ by less than
  half a lease).
- **Debris from a publish that died** is removed by the next publish once its owner is judged dead: its
  staged upload (local: renamed to `.removing-<id>` under the lock, then deleted), and, in a bucket, the
  files copied for a claimed version that never got its `saved_model.pb`. A dead claim's number is not
  used again (its claim stays until a later version exists), and it holds nobody back; a live one refuses
  publishes compared with the version before it (`BaselineChanged`, naming its owner), and holds the
  number for publishes that check nothing (they try it again, up to one and a half leases). Records and
  claims written without a lease (an older release) are judged by the age in their names:
  `ABANDONED_STAGING_SECONDS`, `ABANDONED_CLAIM_SECONDS`. Local roots never show a numbered folder that is
  not whole; in a bucket, a publish killed during the final copies (seconds for a large model) leaves a
  numbered prefix without `saved_model.pb` until the next publish judges its owner dead and removes it;
  TF Serving may try to load it in between, and fails to.
"""
import contextlib
import fcntl
import os
import random
import re
import shutil
import time
import uuid

from components.errors import StageError
from components.state import owners
from components.state.owners import Lease, LeaseLost, owner_record, owner_status, read_record
from components.state.storage import Storage, is_remote, join

SAVED_MODEL_FILE = "saved_model.pb"
# Staged uploads and claims that an older release wrote without owner records are judged by the age in their
# names (that release's publishes stopped at half of each): older than these, their publish died.
ABANDONED_STAGING_SECONDS = 6 * 3600
ABANDONED_CLAIM_SECONDS = 10 * 60
_LOCK_FILE = ".publish.lock"
_STAGING_PREFIX = ".incoming-"
_OWNER_SUFFIX = ".owner"
_REMOVING_PREFIX = ".removing-"
_CLAIMS_FOLDER = ".claims"
_WON_PREFIX = "won-"
_FLAG = "--serving-root"
_VERSION_NAME = re.compile(r"[0-9]+\Z")
_STAMPED_NAME = re.compile(r"([0-9]+)-[0-9a-f]+\Z")
# Bucket claims: how often a publisher tries, and how long it pauses (times the attempt) between tries.
_CLAIM_ATTEMPTS_COMPARED = 12
_CLAIM_ATTEMPTS_ANY = 100
_CLAIM_PAUSE_SECONDS = (0.05, 0.3)
# How long a claim's record read while it was not marked won serves the next listings (see _BucketState).
_UNWON_RECORD_REUSE_SECONDS = 10


class BaselineChanged(Exception):
    """The serving model is no longer the one the candidate was compared with; nothing was published.

    `version` is the newer version: published, or being published by another run.
    """

    def __init__(self, message, version=0):
        super().__init__(message)
        self.version = version


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


def _judged(data, name, legacy_seconds):
    """(live, who) of the owner of a claim or staged upload named `name` (`<time>-<id>`), from its owner record
    `data` (bytes; None when it could not be read, as when its owner is removing it: live until seen gone).
    Without a record (written by a release before owner records), the age in its name decides."""
    if data is None:
        return True, "its owner record could not be read"
    record = read_record(data)
    if record is not None:
        return owner_status(record)
    if _is_abandoned(name, legacy_seconds):
        return False, f"no owner record, written over {legacy_seconds} s ago"
    return True, f"no owner record, written less than {legacy_seconds} s ago"


def _check_baseline(newest, compared_with, root):
    if compared_with is not None and newest != compared_with:
        raise BaselineChanged(
            f"version {newest} is now the newest published version at {root}; the candidate was compared "
            f"with {_described(compared_with)}: nothing was published; rerun to compare it with version {newest}",
            version=newest)


def _described(version):
    return f"version {version}" if version else "no published model"


def _check_lease(lease, root, what):
    try:
        lease.check()
    except LeaseLost as lost:
        raise StageError(f"{_FLAG} {root!r}: publishing {what}: {lost}: nothing was published; run push "
                         "again.") from None


@contextlib.contextmanager
def _publish_lock(root):
    with open(os.path.join(root, _LOCK_FILE), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _local_owner(root, name):
    """(live, who) of the owner of the local staged folder `name` (and of its record `name`.owner)."""
    try:
        with open(os.path.join(root, name + _OWNER_SUFFIX), "rb") as source:
            data = source.read()
    except FileNotFoundError:
        data = b""  # no record: an older release's folder, judged by its age
    return _judged(data, name, ABANDONED_STAGING_SECONDS)


def _remove_dead_staging(root):
    """Removes the staged folders and owner records of local publishes whose owner is dead, and what an
    interrupted removal left. A dead owner's folder is first renamed out of the way under the lock, so that
    its owner, were it alive after all, could not rename it into a version (it checks under the lock)."""
    names = os.listdir(root)
    staged = {name.removesuffix(_OWNER_SUFFIX) for name in names if name.startswith(_STAGING_PREFIX)}
    dead = sorted(name for name in staged if not _local_owner(root, name)[0])
    if dead:
        with _publish_lock(root):
            for name in dead:
                if not _local_owner(root, name)[0]:  # again, under the lock: a lease may have been renewed since
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(os.path.join(root, name),
                                  os.path.join(root, _REMOVING_PREFIX + name.removeprefix(_STAGING_PREFIX)))
    for name in os.listdir(root):
        if name.startswith(_REMOVING_PREFIX):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    for name in dead:
        if not os.path.exists(os.path.join(root, name)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(root, name + _OWNER_SUFFIX))


def _write_local(path, data):
    with open(path, "wb") as sink:
        sink.write(data)


def _file_sizes(folder):
    """{relative path: size} of a local folder's files, through symbolic links as copytree copies them."""
    return {os.path.relpath(os.path.join(parent, name), folder): os.path.getsize(os.path.join(parent, name))
            for parent, _, names in os.walk(folder, followlinks=True) for name in names}


def _publish_locally(model_dir, root, compared_with):
    os.makedirs(root, exist_ok=True)
    _remove_dead_staging(root)
    staging = os.path.join(root, _STAGING_PREFIX + _stamp())
    record = staging + _OWNER_SUFFIX
    try:
        with Lease() as lease:
            made = time.monotonic()
            _write_local(record, owner_record())
            lease.hold(lambda data: _write_local(record, data), f"the staged folder {staging}", made)
            shutil.copytree(model_dir, staging)
            with _publish_lock(root):
                _check_lease(lease, root, "the model")
                if not os.path.isdir(staging) or _file_sizes(staging) != _file_sizes(model_dir):
                    raise StageError(f"{_FLAG} {root!r}: another publish removed this publish's staged folder "
                                     f"{staging}, as its lease had lapsed: nothing was published; run push again.")
                numbered = [int(name) for name in os.listdir(root) if is_version_name(name)]
                published = [version for version in numbered
                             if os.path.isfile(os.path.join(root, str(version), SAVED_MODEL_FILE))]
                _check_baseline(max(published, default=0), compared_with, root)
                version = max(numbered, default=0) + 1
                path = os.path.join(root, str(version))
                os.rename(staging, path)
    finally:
        # The lease has ended: nothing renews the record any more.
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(record)
    return version, path


class _BucketState:
    """One listing of a model's prefix in a bucket: versions, claims, staged uploads and their owners."""

    def __init__(self, root, storage, unwon_records=None):
        self.root, self._storage, self._owners = root, storage, {}
        # {claim URI: (record bytes, time read)} of claims not marked won, kept across one publish's listings: a
        # claimant writes such a record once per try and renews nothing until it wins, so one read serves a while.
        self._unwon_records = {} if unwon_records is None else unwon_records
        self.numbered, self.published, self.claims, self.staging, self.staging_records = set(), set(), {}, {}, set()
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
            elif top.startswith(_STAGING_PREFIX) and rest:
                self.staging.setdefault(top, []).append(path)
            elif top.startswith(_STAGING_PREFIX) and top.endswith(_OWNER_SUFFIX):
                self.staging_records.add(top.removesuffix(_OWNER_SUFFIX))
        self.newest = max(self.published, default=0)

    def _owner(self, uri, name, legacy_seconds, reuse=False):
        if uri not in self._owners:
            kept, read_at = self._unwon_records.get(uri, (None, 0.0))
            if reuse and kept is not None and time.monotonic() - read_at < _UNWON_RECORD_REUSE_SECONDS:
                data = kept
            else:
                try:
                    data = self._storage.read_bytes(uri, _FLAG)
                except StageError:
                    data = None
                if reuse and data is not None:
                    self._unwon_records[uri] = (data, time.monotonic())
            self._owners[uri] = _judged(data, name, legacy_seconds)
        return self._owners[uri]

    def claim_owner(self, version, claimant):
        """(live, who) of the publish that claimed `version` as `claimant` (its id, without the won- prefix).

        A claim is written before its won- marker and removed after it, so a marker without its claim is an
        older release's (whose claims held no lease): judged by its age."""
        if claimant not in self.claims[version]:
            return _judged(b"", claimant, ABANDONED_CLAIM_SECONDS)
        return self._owner(join(self.root, _CLAIMS_FOLDER, str(version), claimant), claimant, ABANDONED_CLAIM_SECONDS,
                           reuse=_WON_PREFIX + claimant not in self.claims[version])

    def claimants(self, version):
        """{claimant id: whether it marked the number as won} of a version's claims."""
        found = {}
        for claim in self.claims[version]:
            claimant = claim.removeprefix(_WON_PREFIX)
            found[claimant] = found.get(claimant, False) or claim.startswith(_WON_PREFIX)
        return found

    def live_claimants(self, version):
        """[(claimant, won, who)] of the claims on `version` whose publish may still be running."""
        return [(claimant, won, who) for claimant, won in self.claimants(version).items()
                for live, who in [self.claim_owner(version, claimant)] if live]

    def _dead(self, version):
        return not self.live_claimants(version)

    def staging_owner(self, name):
        """(live, who) of the publish that staged the upload `name` (`.incoming-<id>`)."""
        if name not in self.staging_records:
            return _judged(b"", name, ABANDONED_STAGING_SECONDS)
        return self._owner(join(self.root, name + _OWNER_SUFFIX), name, ABANDONED_STAGING_SECONDS)

    def next_free(self):
        """The number after every version, finished or not, and every won or dead claim.

        A number that others contend for without a winner yet is not passed: it is tried again.
        """
        taken = {version for version in self.claims
                 if any(self.claimants(version).values()) or self._dead(version)}
        return max(self.numbered | taken, default=0) + 1

    def live_claims_after(self, version):
        """Versions after `version`, not published, claimed by a publish that may still be running:
        ([(version, who) of those with a winner], [(version, who) of those only contended for])."""
        won, contended = [], []
        for number in sorted(self.claims):
            if number <= version or number in self.published:
                continue
            live = self.live_claimants(number)
            winner = [who for _, has_won, who in live if has_won]
            if winner:
                won.append((number, winner[0]))
            elif live:
                contended.append((number, live[0][2]))
        return won, contended


def _remove_abandoned(root, state, storage):
    """Removes what publishes that died left: their staged uploads; for a dead claim, the files copied for a
    version never finished; and dead claims that no longer hold a number back (their version is published,
    or a later version exists). Owner records go last, so that a removal cut short is judged again."""
    debris, markers, records = [], [], []
    for name in sorted(set(state.staging) | state.staging_records):
        if not state.staging_owner(name)[0]:
            debris += state.staging.get(name, [])
            records += [join(root, name + _OWNER_SUFFIX)] if name in state.staging_records else []
    highest = max(state.numbered, default=0)
    for version, claims in state.claims.items():
        if not state._dead(version):
            continue
        if version in state.numbered and version not in state.published:
            debris += [path for path, _ in storage.files_under(join(root, str(version)), _FLAG)]
        if version in state.published or version < highest:
            uris = [join(root, _CLAIMS_FOLDER, str(version), claim) for claim in claims]
            markers += [uri for uri, claim in zip(uris, claims) if claim.startswith(_WON_PREFIX)]
            records += [uri for uri, claim in zip(uris, claims) if not claim.startswith(_WON_PREFIX)]
    for batch in (debris, markers, records):
        storage.delete(batch, _FLAG, root)


def _claim_version(root, compared_with, publisher, storage):
    """Claims the next version number in a bucket; returns (version, the URIs that hold the claim: the won-
    marker, then the claim, which is the owner record).

    A publisher writes `.claims/<version>/<its id>`, then lists `.claims/<version>/`: it holds the number
    if its claim is the only one there, and then says so with `won-<its id>`; otherwise it takes its
    claim back, pauses for a random moment and looks again. Two publishers cannot both hold a number:
    the later of the two to write its claim lists after the earlier one wrote, and sees its claim, or,
    once the earlier one has published and taken its claim back, the version's files.
    """
    attempts = _CLAIM_ATTEMPTS_ANY if compared_with is None else _CLAIM_ATTEMPTS_COMPARED
    # A publish that checks no baseline waits out a claim whose owner died elsewhere mid-claim: one lease.
    deadline = time.monotonic() + (1.5 * owners.LEASE_SECONDS if compared_with is None else 0)
    attempt, contended, unwon_records = 0, [], {}
    while attempt < attempts or time.monotonic() < deadline:
        attempt += 1
        state = _BucketState(root, storage, unwon_records)
        contended = []
        if compared_with is not None:
            _check_baseline(state.newest, compared_with, root)
            won, contended = state.live_claims_after(compared_with)
            if won:
                raise _publishing_elsewhere(*won[0], root, compared_with)
        if not contended:
            version = state.next_free()
            folder = join(root, _CLAIMS_FOLDER, str(version))
            claim = join(folder, publisher)
            storage.write_bytes(claim, owner_record(), _FLAG)
            alone = [name for _, name in storage.files_under(folder, _FLAG)] == [publisher]
            # A publisher that finished this number since the listing above has taken its claim back: its
            # version's files, copied before that, hold the number now.
            if alone and not any(True for _ in storage.files_under(join(root, str(version)), _FLAG)):
                won = join(folder, _WON_PREFIX + publisher)
                storage.write_bytes(won, b"won", _FLAG)
                return version, [won, claim]
            storage.delete([claim], _FLAG, claim)
        time.sleep(random.uniform(*_CLAIM_PAUSE_SECONDS) * min(attempt, 4))
    if compared_with is not None:
        raise _publishing_elsewhere(*(contended[0] if contended else (compared_with + 1, "")), root, compared_with)
    raise StageError(f"{_FLAG} {root!r}: no version number could be claimed in {attempt} attempts, as other "
                     "publishers claimed them at the same time: nothing was published; run push again.")


def _publishing_elsewhere(version, who, root, compared_with):
    return BaselineChanged(
        f"another run is publishing version {version} at {root}" + (f" ({who})" if who else "") + ", after "
        f"{_described(compared_with)} that the candidate was compared with: nothing was published; rerun to "
        "compare it with the new version", version=version)


def _publish_to_bucket(model_dir, root, compared_with, storage):
    _remove_abandoned(root, _BucketState(root, storage), storage)
    publisher = _stamp()
    staging = join(root, _STAGING_PREFIX + publisher)
    record = staging + _OWNER_SUFFIX
    staged, claim, copied, published = [], [], [], False
    try:
        with Lease() as lease:
            made = time.monotonic()
            storage.write_bytes(record, owner_record(), _FLAG)
            lease.hold(lambda data: storage.write_bytes(record, data, _FLAG), f"the staged upload {staging}", made)
            staged = storage.upload_folder(model_dir, staging, _FLAG)
            _check_lease(lease, root, "the model")
            made = time.monotonic()  # no later than the claim was made (the claim may take several tries)
            version, claim = _claim_version(root, compared_with, publisher, storage)
            lease.hold(lambda data: storage.write_bytes(claim[1], data, _FLAG), f"the claim on version {version}",
                       made)
            path = join(root, str(version))
            last = [item for item in staged if item[1] == SAVED_MODEL_FILE]
            first = [item for item in staged if item[1] != SAVED_MODEL_FILE]
            for batch in filter(None, (first, last)):
                if batch is last:
                    # Only now does the version become visible: not if another publish may have taken it over.
                    _check_lease(lease, root, f"version {version}")
                    if {relative for _, relative in storage.files_under(path, _FLAG)} != {r for _, r in first}:
                        raise StageError(f"{_FLAG} {root!r}: another publish removed files copied for version "
                                         f"{version}: nothing was published; run push again.")
                targets = [join(path, relative) for _, relative in batch]
                storage.copy([source for source, _ in batch], targets, _FLAG, path)
                copied += targets
            published = True
    finally:
        # The lease has ended: nothing renews the records any more. A failure we see (not a kill) takes back
        # what was copied; the claim goes either way (once published, the version itself holds its number).
        if not published:
            storage.delete(copied, _FLAG, root)
        for uri in claim:
            storage.delete([uri], _FLAG, root)
        storage.delete([source for source, _ in staged], _FLAG, root)
        storage.delete([record], _FLAG, root)
    return version, path
