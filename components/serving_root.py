"""The serving root: published models in TF Serving's layout, `<root>/<model-name>/<version>/`.

Versions are increasing integers. A version is published by copying the model into a hidden folder
beside the versions and renaming it into place, under a lock: the rename is atomic, so a reader (TF
Serving, or the next run's baseline lookup) sees a whole version or none, and two runs publishing at
once take different versions.
"""
import contextlib
import fcntl
import os
import shutil
import uuid

_LOCK_FILE = ".publish.lock"
_INCOMING_PREFIX = ".incoming-"


def model_root(serving_root, model_name):
    return os.path.join(serving_root, model_name)


def published_versions(serving_root, model_name):
    """The published versions of a model, oldest first."""
    root = model_root(serving_root, model_name)
    if not os.path.isdir(root):
        return []
    return sorted(int(name) for name in os.listdir(root)
                  if name.isdigit() and os.path.isfile(os.path.join(root, name, "saved_model.pb")))


def latest_published_model(serving_root, model_name):
    """The path of the newest published version, or None when nothing is published."""
    versions = published_versions(serving_root, model_name)
    return os.path.join(model_root(serving_root, model_name), str(versions[-1])) if versions else None


@contextlib.contextmanager
def _publish_lock(root):
    with open(os.path.join(root, _LOCK_FILE), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def publish_model(model_dir, serving_root, model_name):
    """Publishes `model_dir` as the next version; returns (version, path)."""
    root = model_root(serving_root, model_name)
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
