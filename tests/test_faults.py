"""Pushes and statistics store writes killed with SIGKILL at chosen points: on a local serving root, on
SeaweedFS (S3) and on the GCS emulator, nothing half-written is ever visible as published or as a
baseline, and the next publish succeeds at once, removing what the dead one staged. Publishers that are
slow (held mid-copy), paused (SIGSTOP) or say they run on another machine (judged by their lease) are not
taken over while they may be live; and runs that race to push and lose to a newer version say so in the
summary, the summary JSON, the run report and exit status 3.

Each publish runs in a process of its own (`publish_child.py`) that kills itself at the chosen point,
so no `finally` or cleanup of the dying process runs, as when a pod is OOM-killed or evicted.
"""
import html
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from components import json_values
from components.data import layout
from components.platform.local_run import StageLog, run_outcome, summary, summary_record
from components.platform.run_report import write_run_report
from components.state import serving_root
from components.state.serving_root import BaselineChanged, baseline_model, publish_model, published_versions
from components.state.statistics_store import previous_span, store_span_statistics, stored_spans
from components.state.storage import Storage, is_remote, join
from publish_child import checksums, outcome, run_one, run_together, write_fake_model
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


def models(tmp_path, count):
    paths = [str(tmp_path / f"model{i}") for i in range(count)]
    return [(path, write_fake_model(path, path)) for path in paths]


def staging_names(names):
    """The hidden names a publish stages under: `.incoming-<id>` folders or prefixes, their owner records, and
    what a removal under way renamed (`.removing-<id>`)."""
    return sorted(name for name in names if name.startswith((".incoming-", ".removing-")))


def bucket_debris(store, bucket):
    return [key for key in store.keys(bucket) if "/.incoming-" in key or "/.removing-" in key]


@pytest.mark.parametrize("kill_at", ["local-staging", "local-before-lock", "local-before-rename"])
def test_a_local_push_killed_leaves_nothing_visible_and_the_next_one_removes_its_staging(tmp_path, kill_at):
    (first, _), (killed, _), (after, after_files) = models(tmp_path, 3)
    root = str(tmp_path / "serving")
    publish_model(first, root, "m", compared_with=0)

    assert run_one(["publish", killed, root, "m", "--compared-with", "1", "--kill-at", kill_at]) is None

    assert published_versions(root, "m") == [1]
    assert version_folders(root, "m") == {1: True}, "no numbered folder without its saved_model.pb"
    assert_baseline(root, 1)
    debris = staging_names(os.listdir(os.path.join(root, "m")))
    assert len(debris) == 2 and debris[1] == debris[0] + ".owner", "the staged folder and its owner's record"
    # Its owner is dead on this machine: the next publish takes over at once (and the lock died with it).
    version, path = publish_model(after, root, "m", compared_with=1)
    assert version == 2 and checksums(path) == after_files
    assert staging_names(os.listdir(os.path.join(root, "m"))) == []
    assert version_folders(root, "m") == {1: True, 2: True}


# What each kill point leaves, in a bucket: is version 2 published (whole), was version 2 claimed (a
# dead claim's number is skipped), and is a numbered prefix without saved_model.pb visible.
BUCKET_KILLS = {
    "bucket-upload": {"published": False, "claimed": False, "partial": False},
    "bucket-before-claim": {"published": False, "claimed": False, "partial": False},
    "bucket-claim-written": {"published": False, "claimed": True, "partial": False},
    "bucket-after-claim": {"published": False, "claimed": True, "partial": False},
    "bucket-copy": {"published": False, "claimed": True, "partial": True},
    "bucket-before-cleanup": {"published": True, "claimed": True, "partial": False},
}


@pytest.mark.parametrize("kill_at", sorted(BUCKET_KILLS))
def test_a_bucket_push_killed_leaves_nothing_visible_and_the_next_one_proceeds_at_once(store, tmp_path, kill_at):
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
    assert bucket_debris(store, bucket), "the dead publisher's staged upload"

    # Its owner is dead on this machine: the next publish compared with the newest version is not held back
    # by its claim, and removes its staged upload and the files it copied.
    version, path = publish_model(after, root, "m", compared_with=newest)
    assert version == (3 if expected["claimed"] else 2)
    assert bucket_checksums(path) == after_files
    assert all(version_folders(root, "m").values()), "every numbered prefix holds its saved_model.pb"
    assert_baseline(root, version)
    assert bucket_debris(store, bucket) == []

    # A dead claim stays until a later version exists (so its number is not used again), then goes.
    publish_model(last, root, "m", compared_with=version)
    assert [key for key in store.keys(bucket) if not key.startswith(tuple(f"m/{v}/" for v in (1, 2, 3, 4)))] == []
    assert all(version_folders(root, "m").values())


def start_held(arguments, hold):
    """Starts a publisher that holds at its --hold-at point; returns the process once it holds there."""
    os.makedirs(hold)
    child = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "publish_child.py"),
                              *arguments, "--hold", hold], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(hold, "held")):
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()[-3000:]
        time.sleep(0.05)
    return child


def release(child, hold):
    open(os.path.join(hold, "release"), "w").close()
    return outcome(child, 300)


def age_records(root):
    """Makes the owner records under `root` (staging records, claims) say their lease was last renewed ten days
    ago, as if that long had passed since their owner died."""
    for path, relative in Storage().files_under(root, "--test"):
        name = relative.rsplit("/", 1)[-1]
        if not (name.endswith(".owner") or "/.claims/" in path) or name.startswith("won-"):
            continue
        record = json.loads(Storage().read_bytes(path, "--test"))
        record["renewed"] -= 10 * 24 * 3600
        Storage().write_bytes(path, json.dumps(record).encode(), "--test")


def where_to_publish(where, tmp_path, request, monkeypatch):
    """A local serving root, or one in a fresh bucket of the store fixture named `where`."""
    if where == "local":
        return str(tmp_path / "serving")
    chosen = request.getfixturevalue(where)
    for name, value in chosen.environment.items():
        monkeypatch.setenv(name, value)
    return chosen.uri(chosen.bucket("models"))


@pytest.mark.parametrize("where", ["local", "s3_store", "gcs_store"])
def test_a_slow_publisher_on_another_machine_is_not_taken_over_while_it_renews_its_lease(
        where, tmp_path, request, monkeypatch):
    """The slow publisher's records say it runs elsewhere, so only its lease (20 s here) keeps it: it holds for
    longer than a lease mid-copy, and a publish in between leaves its staging, claim and copied files alone."""
    root = where_to_publish(where, tmp_path, request, monkeypatch)
    (first, _), (slow, slow_files), (other, other_files) = models(tmp_path, 3)
    publish_model(first, root, "m", compared_with=0)
    hold = str(tmp_path / "hold")
    child = start_held(["publish", slow, root, "m", "--elsewhere", "--lease-seconds", "20",
                        "--hold-at", "local-staging" if where == "local" else "bucket-copy"], hold)
    try:
        time.sleep(21)
        if where != "local":
            # Its claim on version 2 is live: a publish compared with version 1 is refused, naming its owner.
            with pytest.raises(BaselineChanged, match=r"another run is publishing version 2 at .* \(pid [0-9]+ on "
                                                      r"host elsewhere, its lease renewed [0-9]+ s ago\)"):
                publish_model(other, root, "m", compared_with=1)
        version, path = publish_model(other, root, "m")
    finally:
        result = release(child, hold)
    assert result is not None and "version" in result, result
    assert {version, result["version"]} == {2, 3}
    assert checksums_of(path) == other_files and checksums_of(result["path"]) == slow_files
    assert published_versions(root, "m") == [1, 2, 3]
    assert staging_names(name for _, name in Storage().files_under(join(root, "m"), "--test")) == []


@pytest.mark.parametrize("where", ["local", "s3_store"])
def test_a_dead_publisher_on_another_machine_holds_others_back_only_until_its_lease_lapses(
        where, tmp_path, request, monkeypatch):
    root = where_to_publish(where, tmp_path, request, monkeypatch)
    (first, _), (killed, _), (after, after_files) = models(tmp_path, 3)
    publish_model(first, root, "m", compared_with=0)
    assert run_one(["publish", killed, root, "m", "--compared-with", "1", "--elsewhere",
                    "--kill-at", "local-before-lock" if where == "local" else "bucket-after-claim"]) is None

    # Nothing on this machine can tell whether it died: until its lease lapses, it may still be copying.
    if where != "local":
        with pytest.raises(BaselineChanged, match=r"another run is publishing version 2 .*host elsewhere"):
            publish_model(after, root, "m", compared_with=1)
    else:
        assert publish_model(after, root, "m", compared_with=1)[0] == 2
    assert staging_names(name for _, name in Storage().files_under(join(root, "m"), "--test")), \
        "its staged upload stays while its lease may be live"

    age_records(join(root, "m"))
    version, path = publish_model(after, root, "m", compared_with=1 if where != "local" else 2)
    assert version == 3 and checksums_of(path) == after_files
    assert staging_names(name for _, name in Storage().files_under(join(root, "m"), "--test")) == []


def test_a_claim_left_mid_claim_elsewhere_holds_an_unchecked_publish_back_for_one_lease(s3_store, tmp_path,
                                                                                         monkeypatch):
    """Killed between writing its claim and marking it won, on another machine (its lease 5 s here): a publish
    that checks no baseline keeps trying that number until the lease lapses, then takes the next one."""
    for name, value in s3_store.environment.items():
        monkeypatch.setenv(name, value)
    root = s3_store.uri(s3_store.bucket("models"))
    (first, _), (killed, _), (after, after_files) = models(tmp_path, 3)
    publish_model(first, root, "m", compared_with=0)
    assert run_one(["publish", killed, root, "m", "--elsewhere", "--lease-seconds", "5",
                    "--kill-at", "bucket-claim-written"]) is None
    killed_at = time.monotonic()

    version, path = publish_model(after, root, "m")
    assert version == 3 and checksums_of(path) == after_files
    assert time.monotonic() - killed_at >= 3, "not before the dead claimant's lease lapsed"


def test_a_paused_publisher_on_this_machine_is_not_taken_over_and_then_stops_by_itself(tmp_path):
    """Paused (SIGSTOP) past its lease, a publisher on this machine is still running: nobody takes it over; when
    it resumes, it finds its lease lapsed and publishes nothing rather than risk a takeover from elsewhere."""
    root = str(tmp_path / "serving")
    (first, _), (paused, _), (other, other_files) = models(tmp_path, 3)
    publish_model(first, root, "m", compared_with=0)
    hold = str(tmp_path / "hold")
    child = start_held(["publish", paused, root, "m", "--lease-seconds", "1", "--hold-at", "local-staging"], hold)
    os.kill(child.pid, signal.SIGSTOP)
    try:
        time.sleep(2)
        staged = staging_names(os.listdir(os.path.join(root, "m")))
        assert publish_model(other, root, "m", compared_with=1)[0] == 2
        assert staging_names(os.listdir(os.path.join(root, "m"))) == staged, "the paused publisher's staging stays"
    finally:
        os.kill(child.pid, signal.SIGCONT)
    with pytest.raises(RuntimeError, match=r"its lease went [0-9]+ s without renewal, so another publish may have "
                                           r"taken it over: nothing was published"):
        release(child, hold)
    assert published_versions(root, "m") == [1, 2] and checksums(os.path.join(root, "m", "2")) == other_files
    assert staging_names(os.listdir(os.path.join(root, "m"))) == []


def checksums_of(path):
    return bucket_checksums(path) if is_remote(path) else checksums(path)


@pytest.mark.parametrize("where", ["local", "s3_store"])
def test_racing_blessed_runs_that_lose_to_a_newer_version_say_so_and_exit_3(where, tmp_path, request, monkeypatch):
    """Three runs blessed against version 1 push at once: one publishes version 2; the others say, in the summary,
    the summary JSON and the exit status, that they were blessed but a newer version came first."""
    root = where_to_publish(where, tmp_path, request, monkeypatch)
    (first, _), *racers = models(tmp_path, 4)
    publish_model(first, root, "m", compared_with=0)
    results = run_together([["push", model, root, "m", "--compared-with", "1"] for model, _ in racers],
                           str(tmp_path / "barrier"))

    assert sorted(result["outcome"] for result in results) == ["baseline-changed", "baseline-changed", "published"]
    for result in results:
        outputs = run_outputs(result)
        outcome, status = run_outcome(outputs)
        text = summary(outputs, StageLog(io.StringIO()), 1.0, None)
        record = summary_record(outputs, StageLog(io.StringIO()), None)
        json_values.dumps(record)  # what --summary-json writes
        assert "Blessing: BLESSED" in text
        if result["pushed"]:
            assert (outcome, status) == ("published", 0)
            assert f"Published: version 2 at {result['path']}" in text
            continue
        assert (outcome, status) == ("baseline-changed", 3)
        assert (record["outcome"], record["exit_status"], record["succeeded"]) == ("baseline-changed", 3, True)
        assert record["outputs"]["pushed_model"]["newer_version"] == 2
        assert "the model was not blessed" not in text
        assert re.search(r"Published: nothing, though the model was blessed \((version 2 is now the newest published "
                         r"version|another run is publishing version 2) at .*\)\nExit status 3: rerun", text), text
        report = write_run_report(str(tmp_path / f"run-{id(result)}"), [], {}, [], outputs)
        with open(report, encoding="utf-8") as page:
            assert "BLESSED</span>: nothing published: " + html.escape(result["reason"].removeprefix("blessed, but ")) \
                in page.read()
    assert published_versions(root, "m") == [1, 2]


def run_outputs(pushed):
    """The outputs a local run hands the summary, around push's real result (`pushed`)."""
    artifact = SimpleNamespace
    return {"anomalies": artifact(metadata={"anomaly_count": 0, "checks": {"drift": "passed", "skew": "passed"}}),
            "train_metrics": artifact(metadata={"loss": 0.1}), "eval_metrics": artifact(metadata={"accuracy": 0.9}),
            "blessing": artifact(metadata={"blessed": True, "reasons": ["accuracy 0.9 >= 0.8: passes"]}),
            "pushed_model": artifact(metadata=pushed)}


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
