"""The serving root: published models in TF Serving's layout, `<root>/<model-name>/<version>/`.

Versions are increasing integers, and a version counts as published once its `saved_model.pb` is
there. The root may be a local folder or a bucket (`gs://`, `s3://`):

- Local: the model is copied into a hidden folder beside the versions and renamed into place under a
  file lock. The rename is atomic, so a reader (TF Serving, or the next run's baseline lookup) sees a
  whole version or none, and two runs publishing at once take different versions.
- Bucket: object stores have no rename. The model is uploaded under a hidden prefix
  (`.incoming-<id>/`, which TF Serving ignores), then copied inside the store into `<version>/`
  with `saved_model.pb` copied last, and the hidden prefix is removed. Each object appears whole,
  so by the time `saved_model.pb` is visible every other file of the version is complete; the
  baseline lookup only takes versions that have it, and TF Serving retries a load that came too early.
  The next version number is taken from every numbered prefix, finished or not, so a publish that
  died half-way is never overwritten. Two runs publishing the same model to one bucket at the same
  moment are not serialised: give concurrent pipelines different model names.
"""
import contextlib
import fcntl
import os
import shutil
import uuid

from components import storage

SAVED_MODEL_FILE = "saved_model.pb"
_LOCK_FILE = ".publish.lock"
_INCOMING_PREFIX = ".incoming-"
_FLAG = "--serving-root"


def model_root(serving_root, model_name):
    return storage.join(serving_root, model_name)


def published_versions(serving_root, model_name):
    """The published versions of a model, oldest first."""
    names = storage.folders_holding(model_root(serving_root, model_name), SAVED_MODEL_FILE, _FLAG)
    return sorted(int(name) for name in names if name.isdigit())


def latest_published_model(serving_root, model_name):
    """The path or URI of the newest published version, or None when nothing is published."""
    versions = published_versions(serving_root, model_name)
    return storage.join(model_root(serving_root, model_name), str(versions[-1])) if versions else None


@contextlib.contextmanager
def baseline_model(serving_root, model_name):
    """(path or URI, local path) of the newest published version, or (None, None); for evaluation."""
    latest = latest_published_model(serving_root, model_name)
    if latest is None:
        yield None, None
        return
    with storage.local_folder(latest, _FLAG) as local:
        yield latest, local


@contextlib.contextmanager
def _publish_lock(root):
    with open(os.path.join(root, _LOCK_FILE), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def publish_model(model_dir, serving_root, model_name):
    """Publishes `model_dir` as the next version; returns (version, path or URI)."""
    root = model_root(serving_root, model_name)
    if storage.is_remote(root):
        return _publish_to_bucket(model_dir, root)
    os.makedirs(root, exist_ok=True)
    incoming = os.path.join(root, f"{_INCOMING_PREFIX}{uuid.uuid4().hex}")
    shutil.copytree(model_dir, incoming)
    try:
        with _publish_lock(root):
            existing = [int(name) for name in os.listdir(root) if name.isdigit()]
            version = max(existing, default=0) + 1
            path = os.path.join(root, str(version))
            os.rename(incoming, path)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    return version, path


def _publish_to_bucket(model_dir, root):
    incoming = storage.join(root, f"{_INCOMING_PREFIX}{uuid.uuid4().hex}")
    staged = storage.upload_folder(model_dir, incoming, _FLAG)
    try:
        numbered = {relative.split("/", 1)[0] for _, relative in storage.files_under(root, _FLAG)}
        version = max((int(name) for name in numbered if name.isdigit()), default=0) + 1
        path = storage.join(root, str(version))
        staged.sort(key=lambda item: (item[1] == SAVED_MODEL_FILE, item[1]))
        for source, relative in staged:
            storage.copy([source], [storage.join(path, relative)], _FLAG, path)
    finally:
        storage.delete([source for source, _ in staged], _FLAG, incoming)
    return version, path
