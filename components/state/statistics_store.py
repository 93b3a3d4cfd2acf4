"""The statistics store: per model, each validated span's statistics and verdict, kept for the next span's
drift check, and the schema later spans are validated against.

This is how a run finds its baseline span without TFX's Resolver or ML Metadata, so the same pipeline
spec works on kfp.local, open-source KFP and Vertex AI. The store is a local folder or a bucket (`gs://`,
`s3://`); each model has its own folder in it, and a run reads only its model's (docs/design.md, "What a
model keeps"):

    <root>/<model>/span-<N>/Split-<name>/FeatureStats.pb   each split's statistics
    <root>/<model>/span-<N>/verdict.json                   whether the span's data was accepted, and why
    <root>/<model>/schema/<version>/schema.pbtxt           the kept schema (the newest version applies)
    <root>/<model>/schema/<version>/origin.json            the span it was inferred from, when, and the
                                                           header columns that span left empty

Validate stores a span that it lets through, with a verdict saying whether validation passed or was
overridden (`--warn-on-anomalies`); push completes the verdict at the end of the run. Only a span whose
data passed validation without an override and whose model was blessed is *accepted*, and only an
accepted span is a later span's drift baseline. A local file is
written under a temporary name and renamed over the old one (an atomic replace); an object in a
bucket appears whole when its upload completes. So running a span again never leaves a half-written
file, and a reader sees the old statistics or the new ones. A span counts as stored once its train
statistics are there, and they are written last, so a store that dies half-way leaves no span that
looks stored without its other splits; its temporary files, once older than an hour, are removed by
the next write of the same file.
"""
import contextlib
import datetime
import json
import os
import re
import time
import uuid

from components import json_values
from components.data import layout
from components.state.model_names import check_model_name
from components.state.storage import Storage, is_remote, join

_FLAG = "--statistics-root"
SCHEMA_FOLDER = "schema"
SCHEMA_FILE = "schema.pbtxt"
SCHEMA_ORIGIN_FILE = "origin.json"
VERDICT_FILE = "verdict.json"
# A span's validation outcome, as its verdict records it.
VALIDATION_PASSED = "passed"
VALIDATION_OVERRIDDEN = "overridden"
_SPAN_DIR = re.compile(r"span-([0-9]+)\Z")
_INCOMING = ".incoming-"
# A temporary file older than this was left by a write that died (writing a file takes moments).
ABANDONED_INCOMING_SECONDS = 3600


def model_store(root, model_name):
    """The folder of the statistics store that holds `model_name`'s spans and schemas ("" without a store)."""
    return join(root, check_model_name(model_name)) if root else ""


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


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


def _read_json(path, storage):
    if not storage.exists(path, _FLAG):
        return {}
    try:
        value = json.loads(storage.read_text(path, _FLAG))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def kept_schema(root, storage=None):
    """(version, text, origin) of the newest schema kept in a model's store, or (0, "", {}) when none is.

    `origin`: {"span": the span it was inferred from (0: unknown), "kept_at": when, "location": its file}."""
    storage = storage or Storage()
    if not root:
        return 0, "", {}
    names = storage.folders_holding(join(root, SCHEMA_FOLDER), SCHEMA_FILE, _FLAG)
    versions = sorted(int(name) for name in names if name.isascii() and name.isdigit())
    if not versions:
        return 0, "", {}
    newest = versions[-1]
    origin = {"span": 0, "kept_at": "", **_read_json(join(root, SCHEMA_FOLDER, str(newest), SCHEMA_ORIGIN_FILE),
                                                         storage), "location": _schema_file(root, newest)}
    return newest, storage.read_text(_schema_file(root, newest), _FLAG), origin


def keep_schema(root, version, text, span=0, empty_columns=(), storage=None):
    """Keeps `text` as schema version `version` of a model's store, inferred from `span` (whose header also had
    `empty_columns`, without values); later spans are validated against it. Returns where it is."""
    storage = storage or Storage()
    origin = {"span": int(span), "kept_at": _now(), "empty_columns": sorted(empty_columns)}
    _write_whole(join(root, SCHEMA_FOLDER, str(version), SCHEMA_ORIGIN_FILE),
                 json_values.dumps(origin, indent=2).encode("utf-8"), storage)
    _write_whole(_schema_file(root, version), text.encode("utf-8"), storage)
    return _schema_file(root, version)


def read_span_verdict(root, span, storage=None):
    """A stored span's verdict ({} when it has none: stored before verdicts were kept)."""
    storage = storage or Storage()
    return _read_json(join(span_dir(root, span), VERDICT_FILE), storage)


def record_span_verdict(root, span, storage=None, **verdict):
    """Writes (or completes) a span's verdict: `validation` (VALIDATION_PASSED or VALIDATION_OVERRIDDEN),
    `accepted` (bool) and `reason` (why, in words), with the time."""
    storage = storage or Storage()
    merged = {**read_span_verdict(root, span, storage), **verdict, "span": int(span), "recorded_at": _now()}
    _write_whole(join(span_dir(root, span), VERDICT_FILE), json_values.dumps(merged, indent=2).encode("utf-8"), storage)
    return merged


def drift_baseline(root, span, storage=None):
    """(span, verdict) of the newest stored span before `span` whose data was accepted, or (None, {})."""
    storage = storage or Storage()
    for earlier in reversed([stored for stored in stored_spans(root, storage) if stored < span]):
        verdict = read_span_verdict(root, earlier, storage)
        if verdict.get("accepted") is True:
            return earlier, verdict
    return None, {}


def conclude_span_verdict(root, span, blessed, why, storage=None):
    """Completes a stored span's verdict at the end of its run: accepted only when its data passed validation
    without an override and its model was blessed. Returns the verdict ({} when the span is not stored)."""
    storage = storage or Storage()
    verdict = read_span_verdict(root, span, storage) if root and span else {}
    if not verdict:
        return {}
    if verdict.get("validation") != VALIDATION_PASSED:
        return record_span_verdict(root, span, storage, accepted=False, reason=verdict.get("reason", "")
                                   + f"; its model was {'blessed' if blessed else 'not blessed'}")
    if blessed:
        return record_span_verdict(root, span, storage, accepted=True,
                                   reason=f"its data passed validation and its model was blessed{why}")
    return record_span_verdict(root, span, storage, accepted=False,
                               reason=f"its data passed validation but its model was not blessed{why}")
