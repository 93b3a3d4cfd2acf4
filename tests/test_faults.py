"""Pushes and statistics store writes killed with SIGKILL at chosen points: on a local serving root, on
SeaweedFS (S3) and on the GCS emulator, nothing half-written is ever visible as published or as a
baseline, and the next publish succeeds.

Each publish runs in a process of its own (`publish_child.py`) that kills itself at the chosen point,
so no `finally` or cleanup of the dying process runs, as when a pod is OOM-killed or evicted.
"""
import os
import re
import time

import pytest

from components.data import layout
from components.state import serving_root
from components.state.serving_root import BaselineChanged, baseline_model, publish_model, published_versions
from components.state.statistics_store import previous_span, store_span_statistics, stored_spans
from components.state.storage import Storage, is_remote, join
from publish_child import checksums, run_one, write_fake_model
from test_object_storage import (  # noqa: F401 (fixtures)
    bucket_checksums,
    gcs_host,
    gcs_store,
    s3_endpoint,
    s3_store,
    store,
)

# Every publish runs in a process of its own that kills itself; the bucket cases start SeaweedFS and the GCS emulator.
pytestmark = pytest.mark.slow


def version_folders(root, model_name):
    """{number: holds saved_model.pb} for every folder or prefix TF Serving would take as a version."""
    folder = join(root, model_name)
    found = {}
    for _, relative in Storage().files_under(folder, "--test"):
        top, _, rest = relative.partition("/")
        if top.isascii() and top.isdigit():
            found[int(top)] = found.get(int(top), False) or rest == serving_root.SAVED_MODEL_FILE
    return found


def assert_baseline(root, version):
    with baseline_model(root, "m") as (_, local, found):
        assert found == version
        if version:
            assert os.path.isfile(os.path.join(local, serving_root.SAVED_MODEL_FILE))


_STAMP = re.compile(r"(/\.incoming-|/\.claims/[0-9]+/(?:won-)?)([0-9]+)-")


def age_debris(folder, what):
    """Makes the staged uploads (what="staging") or claims ("claims") under `folder` ten days old.

    Their age is the time written in their names, so this renames them, as if written ten days ago.
    """
    old = str(int(time.time()) - 10 * 24 * 3600)
    marker = "/.incoming-" if what == "staging" else "/.claims/"
    for path, _ in Storage().files_under(folder, "--test"):
        aged = _STAMP.sub(lambda found: found[1] + old + "-", path)
        if marker not in path or aged == path:
            continue
        if is_remote(path):
            Storage().copy([path], [aged], "--test", path)
            Storage().delete([path], "--test", path)
        else:
            os.renames(path, aged)


def models(tmp_path, count):
    paths = [str(tmp_path / f"model{i}") for i in range(count)]
    return [(path, write_fake_model(path, path)) for path in paths]


@pytest.mark.parametrize("kill_at", ["local-staging", "local-before-lock", "local-before-rename"])
def test_a_local_push_killed_leaves_nothing_visible_and_the_next_one_publishes(tmp_path, kill_at):
    (first, _), (killed, _), (after, after_files), (last, _) = models(tmp_path, 4)
    root = str(tmp_path / "serving")
    publish_model(first, root, "m", compared_with=0)

    assert run_one(["publish", killed, root, "m", "--compared-with", "1", "--kill-at", kill_at]) is None

    assert published_versions(root, "m") == [1]
    assert version_folders(root, "m") == {1: True}, "no numbered folder without its saved_model.pb"
    assert_baseline(root, 1)
    debris = [name for name in os.listdir(os.path.join(root, "m")) if name.startswith(".incoming-")]
    assert len(debris) == 1
    # The dead publisher held the lock at "local-before-rename": the lock died with it.
    version, path = publish_model(after, root, "m", compared_with=1)
    assert version == 2 and checksums(path) == after_files
    assert [name for name in os.listdir(os.path.join(root, "m")) if name.startswith(".incoming-")] == debris
    age_debris(os.path.join(root, "m"), "staging")
    publish_model(last, root, "m", compared_with=2)
    assert not [name for name in os.listdir(os.path.join(root, "m")) if name.startswith(".incoming-")]
    assert version_folders(root, "m") == {1: True, 2: True, 3: True}


# What each kill point leaves, in a bucket: is version 2 published (whole), does it block the next
# publish until the dead claim is abandoned, and is a numbered prefix without saved_model.pb visible.
BUCKET_KILLS = {
    "bucket-upload": {"published": False, "blocks": False, "partial": False},
    "bucket-before-claim": {"published": False, "blocks": False, "partial": False},
    "bucket-after-claim": {"published": False, "blocks": True, "partial": False},
    "bucket-copy": {"published": False, "blocks": True, "partial": True},
    "bucket-before-cleanup": {"published": True, "blocks": False, "partial": False},
}


@pytest.mark.parametrize("kill_at", sorted(BUCKET_KILLS))
def test_a_bucket_push_killed_leaves_nothing_visible_and_a_later_one_publishes(store, tmp_path, kill_at):
    expected = BUCKET_KILLS[kill_at]
    bucket = store.bucket("models")
    root = store.uri(bucket)
    (first, _), (killed, killed_files), (after, after_files), (last, _) = models(tmp_path, 4)
    publish_model(first, root, "m", compared_with=0)

    assert run_one(["publish", killed, root, "m", "--compared-with", "1", "--kill-at", kill_at]) is None

    newest = 2 if expected["published"] else 1
    assert published_versions(root, "m") == list(range(1, newest + 1))
    assert_baseline(root, newest)
    if expected["published"]:
        assert bucket_checksums(store.uri(bucket, "m/2")) == killed_files
    assert version_folders(root, "m") == {**{v: True for v in range(1, newest + 1)},
                                          **({2: False} if expected["partial"] else {})}
    assert [key for key in store.keys(bucket) if "/.incoming-" in key], "the dead publisher's staged upload"

    if expected["blocks"]:
        # A live claim on version 2: the dead publisher may still be copying, so nothing is published...
        with pytest.raises(BaselineChanged, match=r"^another run is publishing version 2 at .*, after version 1"):
            publish_model(after, root, "m", compared_with=1)
        assert published_versions(root, "m") == [1]
        # ...until the claim is abandoned: its partial files go, and the next number is used.
        age_debris(store.uri(bucket, "m"), "claims")
    version, path = publish_model(after, root, "m", compared_with=newest)
    assert version == (3 if expected["blocks"] or expected["published"] else 2)
    assert bucket_checksums(path) == after_files
    assert all(version_folders(root, "m").values()), "every numbered prefix holds its saved_model.pb"
    assert_baseline(root, version)

    # Hours later, the next publish removes what the dead one left.
    age_debris(store.uri(bucket, "m"), "staging")
    age_debris(store.uri(bucket, "m"), "claims")
    publish_model(last, root, "m", compared_with=version)
    assert [key for key in store.keys(bucket) if not key.startswith(tuple(f"m/{v}/" for v in (1, 2, 3, 4)))] == []
    assert all(version_folders(root, "m").values())


def fake_statistics(folder, marker):
    for split in ("train", "eval"):
        path = layout.statistics_file(folder, split)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as sink:
            sink.write(f"{marker} {split}".encode())
    return folder


@pytest.mark.parametrize("where", ["local", "s3_store", "gcs_store"])
def test_a_statistics_store_killed_between_splits_shows_no_half_span(where, tmp_path, request, monkeypatch):
    if where == "local":
        root, kill_at = str(tmp_path / "statistics"), "statistics-local-between-splits"
    else:
        chosen = request.getfixturevalue(where)
        for name, value in chosen.environment.items():
            monkeypatch.setenv(name, value)
        root, kill_at = chosen.uri(chosen.bucket("stats")), "statistics-bucket-between-splits"
    store_span_statistics(fake_statistics(str(tmp_path / "span1"), "span 1"), root, 1, ["train", "eval"])
    span2 = fake_statistics(str(tmp_path / "span2"), "span 2")

    assert run_one(["store-statistics", span2, root, "2", "--kill-at", kill_at]) is None

    assert stored_spans(root) == [1], "span 2 has no train statistics, so it is not stored"
    assert previous_span(root, 3) == 1
    store_span_statistics(span2, root, 2, ["train", "eval"])
    assert stored_spans(root) == [1, 2]
    for split in ("train", "eval"):
        stored = Storage().read_bytes(layout.statistics_file(join(root, "span-2"), split), "--test")
        assert stored == f"span 2 {split}".encode()
