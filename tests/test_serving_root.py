"""Publishing to a local serving root: increasing versions, never a partial or clobbered one, never one
published over a version the candidate was not compared with; and how a publish's owner is judged (by its
process on this machine, by its lease from elsewhere) before the next publish removes its staging."""
import json
import multiprocessing
import os
import socket
import subprocess
import time

import pytest

from components.errors import StageError
from components.state import owners, serving_root
from components.state.serving_root import (
    BaselineChanged,
    baseline_model,
    latest_published_model,
    publish_model,
    published_versions,
)


def _fake_model(path, marker):
    os.makedirs(os.path.join(path, "variables"))
    with open(os.path.join(path, "saved_model.pb"), "w") as sink:
        sink.write(marker)
    with open(os.path.join(path, "variables", "variables.data"), "wb") as sink:
        sink.write(os.urandom(2_000_000))


def _publish(args):
    model_dir, root, compared_with = args
    try:
        return publish_model(model_dir, root, "m", compared_with=compared_with)
    except BaselineChanged as changed:
        return str(changed)


def _models(tmp_path, count):
    paths = []
    for i in range(count):
        path = str(tmp_path / f"model{i}")
        _fake_model(path, f"model {i}")
        paths.append(path)
    return paths


def test_nothing_published_yet(tmp_path):
    assert published_versions(str(tmp_path), "m") == []
    assert latest_published_model(str(tmp_path), "m") is None
    with baseline_model(str(tmp_path), "m") as baseline:
        assert baseline == (None, None, 0)


def test_versions_without_a_saved_model_are_not_baselines(tmp_path):
    os.makedirs(tmp_path / "m" / "7")
    assert latest_published_model(str(tmp_path), "m") is None


def test_version_folders_are_named_by_ascii_digits_only(tmp_path):
    """'²' and '٣' pass str.isdigit(); int() refuses the first and reads the second as 3."""
    for name in ("²", "٣", "1x", "12"):
        _fake_model(str(tmp_path / "m" / name), name)
    assert published_versions(str(tmp_path), "m") == [12]
    assert publish_model(_models(tmp_path, 1)[0], str(tmp_path), "m", compared_with=12)[0] == 13
    with baseline_model(str(tmp_path), "m") as (path, local, version):
        assert (path, local, version) == (str(tmp_path / "m" / "13"), str(tmp_path / "m" / "13"), 13)


def test_concurrent_publishers_get_distinct_whole_versions(tmp_path):
    models = [(path, str(tmp_path / "serving"), None) for path in _models(tmp_path, 6)]
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        results = pool.map(_publish, models)
    assert sorted(version for version, _ in results) == [1, 2, 3, 4, 5, 6]
    assert published_versions(str(tmp_path / "serving"), "m") == [1, 2, 3, 4, 5, 6]
    markers = set()
    for _, path in results:
        with open(os.path.join(path, "saved_model.pb")) as source:
            markers.add(source.read())
        assert os.path.getsize(os.path.join(path, "variables", "variables.data")) == 2_000_000
    assert markers == {f"model {i}" for i in range(6)}
    leftovers = [n for n in os.listdir(tmp_path / "serving" / "m") if n.startswith(".incoming")]
    assert leftovers == []


def test_a_candidate_is_published_only_over_the_version_it_was_compared_with(tmp_path):
    first, second, third = _models(tmp_path, 3)
    root = str(tmp_path / "serving")
    assert publish_model(first, root, "m", compared_with=0)[0] == 1
    # Two runs both compared with version 1; the first to push wins, the other never met version 2.
    assert publish_model(second, root, "m", compared_with=1)[0] == 2
    with pytest.raises(BaselineChanged, match=r"^version 2 is now the newest published version at .*/m; the "
                                              r"candidate was compared with version 1: nothing was published; "
                                              r"rerun to compare it with version 2$"):
        publish_model(third, root, "m", compared_with=1)
    with pytest.raises(BaselineChanged, match="compared with no published model"):
        publish_model(third, root, "m", compared_with=0)
    assert published_versions(root, "m") == [1, 2]
    assert not [name for name in os.listdir(os.path.join(root, "m")) if name.startswith(".incoming")]


def test_concurrent_runs_compared_with_the_same_version_publish_once(tmp_path):
    root = str(tmp_path / "serving")
    publish_model(_models(tmp_path / "first", 1)[0], root, "m")
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        results = pool.map(_publish, [(path, root, 1) for path in _models(tmp_path, 6)])
    published = [result for result in results if isinstance(result, tuple)]
    refused = [result for result in results if isinstance(result, str)]
    assert [version for version, _ in published] == [2] and len(refused) == 5
    assert all(reason.startswith("version 2 is now the newest published version") for reason in refused)
    assert published_versions(root, "m") == [1, 2]


def test_abandoned_staging_is_removed_by_the_next_publish(tmp_path):
    root = tmp_path / "serving" / "m"
    old = int(time.time()) - serving_root.ABANDONED_STAGING_SECONDS - 60
    recent = int(time.time()) - 60
    for stamp in (old, recent):
        _fake_model(str(root / f".incoming-{stamp}-{stamp:x}"), "half a model")
    publish_model(_models(tmp_path, 1)[0], str(tmp_path / "serving"), "m")
    assert sorted(os.listdir(root)) == sorted([".publish.lock", "1", f".incoming-{recent}-{recent:x}"])


def test_only_a_saved_model_is_published(tmp_path):
    os.makedirs(tmp_path / "not-a-model")
    with pytest.raises(StageError, match=r"^The model '.*not-a-model' has no saved_model.pb"):
        publish_model(str(tmp_path / "not-a-model"), str(tmp_path / "serving"), "m")
    assert not os.path.exists(tmp_path / "serving")


def _record_of(process_identity, renewed_ago=0.0):
    return json.dumps({**process_identity, "renewed": time.time() - renewed_ago, "lease": owners.LEASE_SECONDS})


def _ended_process():
    """The identity a process had, once it has ended (and been waited for)."""
    child = subprocess.Popen(["sleep", "0"])
    identity = {**owners.this_process(), "pid": child.pid, "started": None}
    child.wait()
    return identity


def test_an_owner_on_this_machine_is_judged_by_its_process():
    assert owners.owner_status(json.loads(_record_of(owners.this_process(), renewed_ago=3600)))[0], \
        "a running owner is live, however long ago it renewed"
    reused = {**owners.this_process(), "started": owners.this_process()["started"] - 1}
    assert owners.owner_status(json.loads(_record_of(reused))) == (
        False, f"pid {os.getpid()} on host {socket.gethostname()}, no longer running"), "another process under its pid"
    assert not owners.owner_status(json.loads(_record_of(_ended_process())))[0]
    zombie = subprocess.Popen(["sleep", "0"])
    try:
        os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # it has ended, and is not reaped: a zombie
        assert not owners.owner_status(json.loads(_record_of({**owners.this_process(), "pid": zombie.pid})))[0]
    finally:
        zombie.wait()


def test_an_owner_elsewhere_is_judged_by_its_lease():
    elsewhere = {**owners.this_process(), "host": "elsewhere", "boot_id": "another-machine"}
    assert owners.owner_status(json.loads(_record_of(elsewhere, renewed_ago=5))) == (
        True, f"pid {os.getpid()} on host elsewhere, its lease renewed 5 s ago")
    assert owners.owner_status(json.loads(_record_of(elsewhere, renewed_ago=owners.LEASE_SECONDS + 1))) == (
        False, f"pid {os.getpid()} on host elsewhere, its lease not renewed for {owners.LEASE_SECONDS + 1} s "
               f"(lease {owners.LEASE_SECONDS} s)")


def test_the_next_publish_removes_staging_whose_owner_is_dead_and_leaves_a_live_owners(tmp_path):
    root = tmp_path / "serving" / "m"
    owners_of = {"dead": _ended_process(), "live": owners.this_process(),
                 "lapsed": {**owners.this_process(), "host": "elsewhere", "boot_id": "another-machine"}}
    ago = {"lapsed": owners.LEASE_SECONDS + 60}
    stamp = int(time.time())
    for name, identity in owners_of.items():
        _fake_model(str(root / f".incoming-{stamp}-{name.encode().hex()}"), "half a model")
        (root / f".incoming-{stamp}-{name.encode().hex()}.owner").write_text(_record_of(identity, ago.get(name, 0)))
    publish_model(_models(tmp_path, 1)[0], str(tmp_path / "serving"), "m")
    live = f".incoming-{stamp}-{'live'.encode().hex()}"
    assert sorted(os.listdir(root)) == sorted([".publish.lock", "1", live, live + ".owner"])
