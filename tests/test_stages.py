"""Each stage's logic on the penguin data with the real TFDV, TFT, Keras and TFMA (no mocks)."""
import os

import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.data import layout
from components.errors import StageError
from components.evaluation.blessing import read_blessing, write_blessing
from components.stage_logic.evaluate import evaluate_model
from components.stage_logic.push import push_model
from components.stage_logic.schema import load_schema, make_schema
from components.stage_logic.statistics import generate_statistics, load_statistics
from components.stage_logic.train import SERVING_SIGNATURE, TRANSFORM_SIGNATURE
from components.stage_logic.transform import transform_examples
from components.stage_logic.validate import validate_statistics
from components.state.serving_root import latest_published_model, published_versions
from pipeline import DEFAULT_MODULE as PENGUIN_MODULE


def test_statistics_describe_each_split(statistics_dir, examples_dir):
    counts = examples_dir[1]["row_counts"]
    for split in ("train", "eval"):
        stats = load_statistics(statistics_dir, split).datasets[0]
        assert stats.num_examples == counts[split]
        by_name = {f.path.step[0]: f for f in stats.features}
        assert set(by_name) == {"species", "island", "bill_length_mm", "bill_depth_mm",
                                "flipper_length_mm", "body_mass_g", "sex", "year"}
        mass = by_name["body_mass_g"].num_stats
        assert 2500 <= mass.min < mass.mean < mass.max <= 6500
        assert by_name["species"].string_stats.unique == 3


def test_inferred_schema_knows_the_categories(tmp_path, statistics_dir):
    metadata = make_schema(statistics_dir, str(tmp_path), module=PENGUIN_MODULE)
    assert metadata["origin"] == "inferred" and metadata["keep_as_version"] == 0
    assert "not kept: no statistics store" in metadata["description"]
    schema = load_schema(str(tmp_path))
    domains = {d.name: set(d.value) for d in schema.string_domain}
    assert domains["species"] == {"Adelie", "Chinstrap", "Gentoo"}
    features = {f.name: f for f in schema.feature}
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    assert list(features["species"].not_in_environment) == ["SERVING"]
    assert features["species"].presence.min_fraction == 1.0
    assert not features["body_mass_g"].presence.HasField("min_fraction")
    assert not features["body_mass_g"].HasField("shape")


def test_curated_schema_is_used_as_is(schema_dir):
    schema = load_schema(schema_dir)
    mass = next(f for f in schema.feature if f.name == "body_mass_g")
    assert (mass.int_domain.min, mass.int_domain.max) == (2000, 7000)


def test_missing_curated_schema_is_a_clear_error(tmp_path, statistics_dir):
    with pytest.raises(StageError, match="--schema .*nope.pbtxt' does not exist"):
        make_schema(statistics_dir, str(tmp_path), str(tmp_path / "nope.pbtxt"))


def test_clean_data_has_no_anomalies(tmp_path, statistics_dir, schema_dir):
    result = validate_statistics(statistics_dir, schema_dir, str(tmp_path))
    assert result["anomalies"] == []
    assert result["checks"] == {"drift": "NOT CHECKED: the data has no spans ({SPAN} in --data)",
                                "skew": "NOT CHECKED: no serving sample (--serving-data)"}
    assert os.path.isfile(os.path.join(layout.split_dir(str(tmp_path), "eval"), "SchemaDiff.pb"))


@pytest.fixture(scope="module")
def corrupted_statistics(tmp_path_factory, penguin_rows):
    """Statistics of penguin rows with a new island, body mass as text and far too heavy birds."""
    from components.stage_logic.ingest import ingest_examples
    root = tmp_path_factory.mktemp("corrupted")
    rows = [dict(row) for row in penguin_rows]
    for i, row in enumerate(rows):
        if i % 10 == 0:
            row["island"] = "Atlantis"
        if i % 7 == 0:
            row["body_mass_g"] = "heavy"
    path = root / "data.csv"
    with open(path, "w") as sink:
        sink.write(",".join(rows[0]) + "\n")
        sink.writelines(",".join(row.values()) + "\n" for row in rows)
    ingest_examples(str(path), str(root / "examples"))
    generate_statistics(str(root / "examples"), str(root / "statistics"))
    return str(root / "statistics")


def test_anomalies_block_with_each_feature_named(tmp_path, corrupted_statistics, schema_dir):
    with pytest.raises(StageError) as raised:
        validate_statistics(corrupted_statistics, schema_dir, str(tmp_path))
    message = str(raised.value)
    assert "--warn-on-anomalies" in message
    assert "feature 'island': ENUM_TYPE_UNEXPECTED_STRING_VALUES" in message
    assert "Atlantis" in message
    assert "feature 'body_mass_g'" in message


def test_anomalies_as_warnings_let_the_run_go_on(tmp_path, corrupted_statistics, schema_dir, capsys):
    rows = validate_statistics(corrupted_statistics, schema_dir, str(tmp_path), blocking=False)["anomalies"]
    assert {("train", "island"), ("eval", "island")} <= {(r["split"], r["feature"]) for r in rows}
    assert all(r["kind"] and r["detail"] for r in rows)
    assert "not blocking" in capsys.readouterr().out
    # Every tenth penguin lives on Atlantis: the splits' shares of such rows add up to that tenth.
    examples = {split: load_statistics(corrupted_statistics, split).datasets[0].num_examples
                for split in ("train", "eval")}
    atlantis = {r["split"]: r["share"] for r in rows if r["kind"] == "ENUM_TYPE_UNEXPECTED_STRING_VALUES"}
    assert sum(atlantis[split] * examples[split] for split in examples) == pytest.approx(
        len(range(0, sum(examples.values()), 10)))


def test_transform_uses_full_pass_analyzers(transform_dirs):
    graph, transformed = transform_dirs
    output = tft.TFTransformOutput(graph)
    assert set(output.vocabulary_by_name("species")) == {b"Adelie", b"Chinstrap", b"Gentoo"}
    spec = output.transformed_feature_spec()
    dataset = tf.data.TFRecordDataset(tf.io.gfile.glob(layout.examples_pattern(transformed, "train")),
                                      compression_type="GZIP").batch(1000)
    features = tf.io.parse_example(next(iter(dataset)), spec)
    mass = features["body_mass_g_xf"].numpy()
    assert abs(mass.mean()) < 0.05 and abs(mass.std() - 1) < 0.05
    assert set(features["species_xf"].numpy()) == {0, 1, 2}


def test_transform_names_a_missing_label_column(tmp_path, examples_dir, statistics_dir):
    make_schema(statistics_dir, str(tmp_path / "schema"))  # no module: the label is not checked here
    path = os.path.join(str(tmp_path / "schema"), "schema.pbtxt")
    text = open(path).read().replace('name: "species"', 'name: "kind"')
    open(path, "w").write(text)
    with pytest.raises(StageError, match="The data has no column 'species', the label"):
        transform_examples(examples_dir[0], str(tmp_path / "schema"), PENGUIN_MODULE,
                           str(tmp_path / "graph"), str(tmp_path / "out"))


@pytest.mark.slow
def test_serving_model_takes_raw_examples(trained_model, examples_dir, penguin_rows):
    path, result = trained_model
    assert result["final"]["val_accuracy"] >= 0.9
    assert len(result["history"]["loss"]) == 10
    model = tf.saved_model.load(path)
    assert set(model.signatures) == {SERVING_SIGNATURE, TRANSFORM_SIGNATURE}
    records = list(tf.data.TFRecordDataset(
        tf.io.gfile.glob(layout.examples_pattern(examples_dir[0], "eval")), compression_type="GZIP"))
    outputs = model.signatures[SERVING_SIGNATURE](examples=tf.stack(records))
    labels = [tf.train.Example.FromString(r.numpy()).features.feature["species"].bytes_list.value[0]
              for r in records]
    accuracy = sum(predicted == label for predicted, label in zip(outputs["classes"].numpy(), labels)) / len(labels)
    assert accuracy >= 0.9
    assert outputs["probabilities"].shape == (len(records), 3)


@pytest.mark.slow
def test_evaluation_blesses_a_good_model_without_baseline(tmp_path, trained_model, examples_dir, schema_dir):
    decision = evaluate_model(trained_model[0], examples_dir[0], schema_dir, PENGUIN_MODULE,
                              str(tmp_path), threshold=0.8)
    assert decision["blessed"] is True
    accuracy = decision["overall"]["candidate"]["sparse_categorical_accuracy"]
    assert accuracy >= 0.9
    assert decision["overall"]["candidate"]["example_count"] == examples_dir[1]["row_counts"]["eval"]
    assert {"island:Biscoe", "island:Dream", "island:Torgersen", "sex:male"} <= set(decision["slices"])
    examples = examples_dir[1]["row_counts"]["eval"]
    assert decision["reasons"] == [
        f"sparse_categorical_accuracy on the whole eval split ({examples} examples): candidate {accuracy:.4f}, "
        "threshold >= 0.8: passes", "no model is serving yet: the first model is blessed on the threshold alone"]


@pytest.mark.slow
def test_a_weak_candidate_is_not_blessed_against_the_serving_model(
        tmp_path, trained_model, weak_model, examples_dir, schema_dir):
    decision = evaluate_model(weak_model, examples_dir[0], schema_dir, PENGUIN_MODULE, str(tmp_path),
                              baseline_dir=trained_model[0], threshold=0.0, tolerance=0.01)
    assert decision["blessed"] is False
    assert decision["overall"]["baseline"]["sparse_categorical_accuracy"] >= 0.9
    assert len(decision["reasons"]) == 1
    assert "the baseline model" in decision["reasons"][0] and decision["reasons"][0].endswith(
        "at most 0.01 worse allowed (--tolerance): FAILS")
    overall = decision["slices"]["Overall"]
    assert overall["difference"] == pytest.approx(overall["candidate"] - overall["baseline"])
    assert overall["difference"] < -0.01


@pytest.mark.slow
def test_push_publishes_blessed_models_as_increasing_versions(tmp_path, trained_model):
    serving = str(tmp_path / "serving")
    first = push_model(trained_model[0], {"blessed": True, "reasons": ["good"], "baseline_version": 0},
                       serving, "penguins")
    second = push_model(trained_model[0], {"blessed": True, "reasons": ["good"], "baseline": "",
                                           "baseline_version": 1}, serving, "penguins")
    assert (first["version"], second["version"]) == (1, 2)
    # A candidate compared with version 1 is not published over version 2, which it never met.
    late = push_model(trained_model[0], {"blessed": True, "reasons": ["good"],
                                         "baseline": os.path.join(serving, "penguins", "1")}, serving, "penguins")
    assert late["pushed"] is False and late["version"] == 0
    assert late["reason"].startswith("blessed, but version 2 is now the newest published version at ")
    assert late["reason"].endswith("; the candidate was compared with version 1: nothing was published; "
                                   "rerun to compare it with version 2")
    assert published_versions(serving, "penguins") == [1, 2]
    assert latest_published_model(serving, "penguins") == os.path.join(serving, "penguins", "2")
    assert sorted(os.listdir(os.path.join(serving, "penguins"))) == [".publish.lock", "1", "2"]
    tf.saved_model.load(second["path"])


@pytest.mark.slow
def test_push_publishes_nothing_for_an_unblessed_model(tmp_path, trained_model):
    blessing_dir = str(tmp_path / "blessing")
    write_blessing({"blessed": False, "reasons": ["accuracy fell"]}, blessing_dir)
    assert os.path.isfile(os.path.join(blessing_dir, "NOT_BLESSED"))
    result = push_model(trained_model[0], read_blessing(blessing_dir), str(tmp_path / "serving"), "penguins")
    assert result == {"pushed": False, "version": 0, "path": "", "reason": "not blessed: accuracy fell",
                      "outcome": "not-blessed"}
    assert not os.path.exists(tmp_path / "serving")
