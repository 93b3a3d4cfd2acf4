"""Publishing to the serving root: increasing versions, never a partial or clobbered one."""
import multiprocessing
import os

from components.serving_root import latest_published_model, publish_model, published_versions


def _fake_model(path, marker):
    os.makedirs(os.path.join(path, "variables"))
    with open(os.path.join(path, "saved_model.pb"), "w") as sink:
        sink.write(marker)
    with open(os.path.join(path, "variables", "variables.data"), "wb") as sink:
        sink.write(os.urandom(2_000_000))


def _publish(args):
    model_dir, serving_root = args
    return publish_model(model_dir, serving_root, "m")


def test_nothing_published_yet(tmp_path):
    assert published_versions(str(tmp_path), "m") == []
    assert latest_published_model(str(tmp_path), "m") is None


def test_versions_without_a_saved_model_are_not_baselines(tmp_path):
    os.makedirs(tmp_path / "m" / "7")
    assert latest_published_model(str(tmp_path), "m") is None


def test_concurrent_publishers_get_distinct_whole_versions(tmp_path):
    models = []
    for i in range(6):
        path = str(tmp_path / f"model{i}")
        _fake_model(path, f"model {i}")
        models.append((path, str(tmp_path / "serving")))
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        results = pool.map(_publish, models)
    assert sorted(version for version, _ in results) == [1, 2, 3, 4, 5, 6]
    assert published_versions(str(tmp_path / "serving"), "m") == [1, 2, 3, 4, 5, 6]
    markers = set()
    for version, path in results:
        with open(os.path.join(path, "saved_model.pb")) as source:
            markers.add(source.read())
        assert os.path.getsize(os.path.join(path, "variables", "variables.data")) == 2_000_000
    assert markers == {f"model {i}" for i in range(6)}
    leftovers = [n for n in os.listdir(tmp_path / "serving" / "m") if n.startswith(".incoming")]
    assert leftovers == []
