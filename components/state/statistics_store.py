"""The statistics store: each validated span's statistics, kept for the next span's drift check, and
the schema later spans are validated against.

This is how a run finds the previous span's statistics without TFX's Resolver or ML Metadata, so the
same pipeline spec works on kfp.local, open-source KFP and Vertex AI. The store is a local folder or
a bucket (`gs://`, `s3://`). Layout: `<root>/span-<N>/Split-<name>/FeatureStats.pb`, and
`<root>/schema/<version>/schema.pbtxt` (the newest version applies). A local file is
written under a temporary name and renamed over the old one (an atomic replace); an object in a
bucket appears whole when its upload completes. So running a span again never leaves a half-written
file, and a reader sees the old statistics or the new ones. A span counts as stored once its train
statistics are there, and they are written last, so a store that dies half-way leaves no span that
looks stored without its other splits; its temporary files, once older than an hour, are removed by
the next write of the same file.
"""
import contextlib
import os
import re
import time
import uuid

from components.data import layout
from components.state.storage import Storage, is_remote, join

_FLAG = "--statistics-root"
SCHEMA_FOLDER = "schema"
SCHEMA_FILE = "schema.pbtxt"
_SPAN_DIR = re.compile(r"span-([0-9]+)\Z")
_INCOMING = ".incoming-"
# A temporary file older than this was left by a write that died (writing a file takes moments).
ABANDONED_INCOMING_SECONDS = 3600


def span_dir(root, span):
    return join(root, f"span-{span}")


def stored_spans(root, storage=None):
    """The spans whose train statistics are stored, in order."""
    storage = storage or Storage()
    if not root:
        return []
    names = storage.folders_holding(root, layout.statistics_file("", layout.TRAIN), _FLAG)
    return sorted(int(match[1]) for match in map(_SPAN_DIR.match, names) if match)


def previous_span(root, span, storage=None):
    """The newest stored span before `span`, or None."""
    storage = storage or Storage()
    earlier = [stored for stored in stored_spans(root, storage) if stored < span]
    return earlier[-1] if earlier else None


@contextlib.contextmanager
def local_span_statistics(root, span, storage=None):
    """A local folder with a stored span's statistics (a download when the store is a bucket)."""
    storage = storage or Storage()
    with storage.local_folder(span_dir(root, span), _FLAG) as local:
        yield local


def _write_whole(target, data, storage):
    """Writes a file of the store so that readers see the old content or the new, never a part."""
    if is_remote(target):
        storage.write_bytes(target, data, _FLAG)
        return
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        leftover = os.path.join(folder, name)
        if (name.startswith(os.path.basename(target) + _INCOMING)
                and time.time() - os.path.getmtime(leftover) > ABANDONED_INCOMING_SECONDS):
            os.remove(leftover)  # left by a write of this file that died
    incoming = f"{target}{_INCOMING}{uuid.uuid4().hex}"
    with open(incoming, "wb") as sink:
        sink.write(data)
    os.replace(incoming, target)


def store_span_statistics(statistics_dir, root, span, splits, storage=None):
    """Copies the statistics of `splits` into the store as span `span`, the train split last."""
    storage = storage or Storage()
    for split in sorted(splits, key=lambda name: name == layout.TRAIN):
        with open(layout.statistics_file(statistics_dir, split), "rb") as statistics:
            _write_whole(layout.statistics_file(span_dir(root, span), split), statistics.read(), storage)


def _schema_file(root, version):
    return join(root, SCHEMA_FOLDER, str(version), SCHEMA_FILE)


def kept_schema(root, storage=None):
    """(version, text) of the newest schema kept in the store, or (0, "") when none is."""
    storage = storage or Storage()
    if not root:
        return 0, ""
    names = storage.folders_holding(join(root, SCHEMA_FOLDER), SCHEMA_FILE, _FLAG)
    versions = sorted(int(name) for name in names if name.isascii() and name.isdigit())
    if not versions:
        return 0, ""
    return versions[-1], storage.read_text(_schema_file(root, versions[-1]), _FLAG)


def keep_schema(root, version, text, storage=None):
    """Keeps `text` as schema version `version`, the one later spans are validated against."""
    storage = storage or Storage()
    _write_whole(_schema_file(root, version), text.encode("utf-8"), storage)
    return _schema_file(root, version)
