"""The statistics store: each validated span's statistics, kept for the next span's drift check.

This is how a run finds the previous span's statistics without TFX's Resolver or ML Metadata, so the
same pipeline spec works on kfp.local, open-source KFP and Vertex AI. Layout:
`<root>/span-<N>/Split-<name>/FeatureStats.pb`. Each file is written under a temporary name and
renamed over the old one (an atomic replace), so running a span again never leaves a half-written
file, and a reader sees the old statistics or the new ones.
"""
import os
import re
import shutil
import uuid

from components import layout

_SPAN_DIR = re.compile(r"span-(\d+)\Z")


def span_dir(root, span):
    return os.path.join(root, f"span-{span}")


def stored_spans(root):
    """The spans whose train statistics are stored, in order."""
    if not root or not os.path.isdir(root):
        return []
    spans = []
    for name in os.listdir(root):
        match = _SPAN_DIR.match(name)
        if match and os.path.isfile(layout.statistics_file(os.path.join(root, name), layout.TRAIN)):
            spans.append(int(match[1]))
    return sorted(spans)


def previous_span(root, span):
    """The newest stored span before `span`, or None."""
    earlier = [stored for stored in stored_spans(root) if stored < span]
    return earlier[-1] if earlier else None


def store_span_statistics(statistics_dir, root, span, splits):
    """Copies the statistics of `splits` into the store as span `span`."""
    for split in splits:
        target = layout.statistics_file(span_dir(root, span), split)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        incoming = f"{target}.incoming-{uuid.uuid4().hex}"
        shutil.copyfile(layout.statistics_file(statistics_dir, split), incoming)
        os.replace(incoming, target)
