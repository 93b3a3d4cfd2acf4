"""The statistics store: each validated span's statistics, kept for the next span's drift check.

This is how a run finds the previous span's statistics without TFX's Resolver or ML Metadata, so the
same pipeline spec works on kfp.local, open-source KFP and Vertex AI. The store is a local folder or
a bucket (`gs://`, `s3://`). Layout: `<root>/span-<N>/Split-<name>/FeatureStats.pb`. A local file is
written under a temporary name and renamed over the old one (an atomic replace); an object in a
bucket appears whole when its upload completes. So running a span again never leaves a half-written
file, and a reader sees the old statistics or the new ones. A span counts as stored once its train
statistics are there, and they are written last, so a store that dies half-way leaves no span that
looks stored without its other splits; its temporary files, once older than an hour, are removed by
the next store of that span.
"""
import contextlib
import os
import re
import shutil
import time
import uuid

from components import layout, storage

_FLAG = "--statistics-root"
_SPAN_DIR = re.compile(r"span-([0-9]+)\Z")
_INCOMING = ".incoming-"
# A temporary file older than this was left by a store that died (storing a file takes moments).
ABANDONED_INCOMING_SECONDS = 3600


def span_dir(root, span):
    return storage.join(root, f"span-{span}")


def stored_spans(root):
    """The spans whose train statistics are stored, in order."""
    if not root:
        return []
    names = storage.folders_holding(root, layout.statistics_file("", layout.TRAIN), _FLAG)
    return sorted(int(match[1]) for match in map(_SPAN_DIR.match, names) if match)


def previous_span(root, span):
    """The newest stored span before `span`, or None."""
    earlier = [stored for stored in stored_spans(root) if stored < span]
    return earlier[-1] if earlier else None


@contextlib.contextmanager
def local_span_statistics(root, span):
    """A local folder with a stored span's statistics (a download when the store is a bucket)."""
    with storage.local_folder(span_dir(root, span), _FLAG) as local:
        yield local


def store_span_statistics(statistics_dir, root, span, splits):
    """Copies the statistics of `splits` into the store as span `span`, the train split last."""
    for split in sorted(splits, key=lambda name: name == layout.TRAIN):
        source = layout.statistics_file(statistics_dir, split)
        target = layout.statistics_file(span_dir(root, span), split)
        if storage.is_remote(root):
            storage.upload_file(source, target, _FLAG)
            continue
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            leftover = os.path.join(folder, name)
            if (name.startswith(os.path.basename(target) + _INCOMING)
                    and time.time() - os.path.getmtime(leftover) > ABANDONED_INCOMING_SECONDS):
                os.remove(leftover)  # left by a store of this span that died
        incoming = f"{target}{_INCOMING}{uuid.uuid4().hex}"
        shutil.copyfile(source, incoming)
        os.replace(incoming, target)
