"""The other problem types of the module contract, through transform, train and evaluate:
regression (body mass from measurements) and binary classification (sex from measurements)."""
import csv
import os

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import json_format

from components.stage_logic.evaluate import (
    BASELINE,
    CANDIDATE,
    class_names,
    confusion_matrix,
    evaluate_model,
    evaluation_config,
    evaluation_html,
    prediction_key,
    roc_curve,
    run_tfma,
)
from components.stage_logic.ingest import demo_data_pattern, ingest_examples
from components.stage_logic.schema import make_schema
from components.stage_logic.statistics import generate_statistics
from components.stage_logic.train import SERVING_SIGNATURE, train_model
from components.stage_logic.transform import transform_examples

HERE = os.path.dirname(os.path.abspath(__file__))
REGRESSION = os.path.join(HERE, "regression_module.py")
BINARY = os.path.join(HERE, "binary_module.py")

# Each module is trained and evaluated in this process: a whole pipeline.
pytestmark = pytest.mark.slow


def run_stages(root, module, train_steps):
    """Penguins with every value present, through the stages up to a trained model."""
    with open(demo_data_pattern(), newline="") as source:
        rows = [row for row in csv.DictReader(source) if "NA" not in row.values()]
    with open(root / "complete.csv", "w", newline="") as sink:
        writer = csv.DictWriter(sink, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    paths = {name: str(root / name) for name in ("examples", "statistics", "schema", "graph", "transformed",
                                                  "model")}
    ingest_examples(str(root / "complete.csv"), paths["examples"])
    generate_statistics(paths["examples"], paths["statistics"])
    make_schema(paths["statistics"], paths["schema"], module=module)
    transform_examples(paths["examples"], paths["schema"], module, paths["graph"], paths["transformed"])
    result = train_model(paths["transformed"], paths["graph"], module, paths["model"], train_steps=train_steps)
    return paths, result


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    return run_stages(tmp_path_factory.mktemp("regression"), REGRESSION, 400)


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    return run_stages(tmp_path_factory.mktemp("binary"), BINARY, 400)


def test_regression_model_serves_one_value_per_raw_example(regression_run):
    paths, result = regression_run
    assert result["final"]["val_loss"] < 0.25
    model = tf.saved_model.load(paths["model"])
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(os.path.join(paths["examples"], "Split-eval", "*.gz")),
                                      compression_type="GZIP")
    batch = next(iter(records.batch(50)))
    predictions = model.signatures[SERVING_SIGNATURE](examples=batch)["predictions"].numpy()
    assert predictions.shape == (50,)
    assert 2.5 < predictions.mean() < 6.0


def test_regression_blessing_uses_r_squared(regression_run, tmp_path):
    paths, _ = regression_run
    decision = evaluate_model(paths["model"], paths["examples"], paths["schema"], REGRESSION, str(tmp_path / "a"))
    candidate = decision["overall"]["candidate"]
    # R² from the serving model's own predictions on the raw eval examples: 1 - SSE / SST.
    model = tf.saved_model.load(paths["model"])
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(os.path.join(paths["examples"], "Split-eval", "*.gz")),
                                      compression_type="GZIP")
    predictions, labels = [], []
    for batch in records.batch(100):
        predictions.extend(model.signatures[SERVING_SIGNATURE](examples=batch)["predictions"].numpy())
        labels.extend(tf.train.Example.FromString(record).features.feature["body_mass_g"].int64_list.value[0] / 1000
                      for record in batch.numpy())
    mean = sum(labels) / len(labels)
    expected = 1 - (sum((y - p) ** 2 for y, p in zip(labels, predictions))
                    / sum((y - mean) ** 2 for y in labels))
    assert candidate["r_squared"] == pytest.approx(expected, abs=1e-3)
    assert decision["metric"] == "r_squared" and decision["threshold"] == 0.1
    assert decision["blessed"] and candidate["r_squared"] > 0.5
    assert {"mean_absolute_error", "mean_squared_error"} <= set(candidate)
    assert decision["reasons"][0] == (f"r_squared on the whole eval split ({len(labels)} examples): candidate "
                                      f"{candidate['r_squared']:.4f}, threshold >= 0.1: passes")
    assert {"island:Biscoe", "island:Dream"} <= set(decision["slices"])
    assert roc_curve(str(tmp_path / "a")) is None

    strict = evaluate_model(paths["model"], paths["examples"], paths["schema"], REGRESSION, str(tmp_path / "b"),
                            threshold=0.99)
    assert not strict["blessed"] and strict["reasons"][0].endswith("threshold >= 0.99: FAILS")


def test_binary_classifier_gets_a_roc_curve(binary_run, tmp_path):
    paths, result = binary_run
    assert result["final"]["val_accuracy"] >= 0.8
    decision = evaluate_model(paths["model"], paths["examples"], paths["schema"], BINARY, str(tmp_path),
                              threshold=0.7)
    assert decision["blessed"]
    false_positive_rates, true_positive_rates, thresholds = roc_curve(str(tmp_path))
    assert len(thresholds) > 10
    assert false_positive_rates == sorted(false_positive_rates)
    assert min(false_positive_rates) == 0.0 and max(true_positive_rates) == 1.0
    area = sum((x2 - x1) * (y1 + y2) / 2 for x1, x2, y1, y2 in zip(
        false_positive_rates, false_positive_rates[1:], true_positive_rates, true_positive_rates[1:]))
    assert area > 0.85, "a useful classifier's ROC curve bends towards the top left"
    assert '<svg class="roc"' in evaluation_html(decision, (false_positive_rates, true_positive_rates, thresholds))


def test_accuracy_and_confusion_matrix_are_those_of_the_serving_predictions(binary_run, tmp_path):
    paths, _ = binary_run
    decision = evaluate_model(paths["model"], paths["examples"], paths["schema"], BINARY, str(tmp_path),
                              baseline_dir=paths["model"], baseline_version=1, threshold=0.7, slice_columns=["island"])
    model = tf.saved_model.load(paths["model"])
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(os.path.join(paths["examples"], "Split-eval", "*.gz")),
                                      compression_type="GZIP")
    names = class_names(paths["model"], "sex")  # the label's vocabulary: class ids in order
    accuracy = {}  # slice -> Keras' metric over the serving signature's probabilities
    matrix = [[0, 0], [0, 0]]  # actual class id -> predicted class id -> examples
    for batch in records.batch(100):
        served = model.signatures[SERVING_SIGNATURE](examples=batch)
        for record, probabilities in zip(batch.numpy(), served["probabilities"].numpy()):
            features = tf.train.Example.FromString(record).features.feature
            label_id = names.index(features["sex"].bytes_list.value[0].decode())
            matrix[label_id][int(probabilities.argmax())] += 1
            for name in ("Overall", f"island:{features['island'].bytes_list.value[0].decode()}"):
                accuracy.setdefault(name, tf.keras.metrics.SparseCategoricalAccuracy()).update_state(
                    [label_id], [probabilities])
    assert set(accuracy) == set(decision["slices"]) and len(accuracy) == 4
    for name, metric in accuracy.items():
        row = decision["slices"][name]
        assert row["candidate"] == pytest.approx(float(metric.result()), abs=1e-6)
        assert row["baseline"] == pytest.approx(row["candidate"], abs=1e-9)
    assert confusion_matrix(str(tmp_path), names) == (names, matrix)


# Our metrics and TFMA's own (Keras' for the accuracy) where it has one.
TFMA_OWN_METRICS = {"LeanExampleCount": "ExampleCount", "LeanMeanSquaredError": "MeanSquaredError",
                    "LeanMeanAbsoluteError": "MeanAbsoluteError",
                    "SparseCategoricalAccuracy": "SparseCategoricalAccuracy",
                    "LeanMultiClassConfusionMatrixPlot": "MultiClassConfusionMatrixPlot"}


def tfma_results(output_dir):
    """{(slice, kind, metric or plot, model, diff, sub key): number} from TFMA's written results."""
    results = {}

    def add(prefix, value):
        if isinstance(value, dict):
            for name, item in value.items():
                add((*prefix, name), item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                add((*prefix, index), item)
        else:
            results[prefix] = value

    for kind, loaded, items in (("metric", tfma.load_metrics(output_dir), "metric_keys_and_values"),
                                ("plot", tfma.load_plots(output_dir), "plot_keys_and_values")):
        for for_slice in loaded:
            name = tfma.slicer.stringify_slice_key(tfma.slicer.deserialize_slice_key(for_slice.slice_key))
            for item in getattr(for_slice, items):
                key = (name, kind, item.key.name, item.key.model_name, getattr(item.key, "is_diff", False),
                       str(item.key.sub_key))
                add(key, json_format.MessageToDict(item.value))
    return results


@pytest.mark.parametrize("run, module", [("binary_run", BINARY), ("regression_run", REGRESSION)])
def test_grouped_evaluation_equals_tfma_one_example_at_a_time(request, tmp_path, run, module):
    """Examples reaching the metrics in groups that share their slices give exactly what TFMA's default
    extraction and its own metrics give one example at a time, on every slice, for both models."""
    paths, _ = request.getfixturevalue(run)
    problem = "classification" if module == BINARY else "regression"
    label = "sex" if module == BINARY else "body_mass_g"
    keys = {name: prediction_key(paths["model"], problem) for name in (CANDIDATE, BASELINE)}
    config = evaluation_config(label, problem, ["island", "sex"] if module == REGRESSION else ["island"], True,
                               binary=module == BINARY, prediction_keys=keys)
    reference = tfma.EvalConfig()
    reference.CopyFrom(config)
    for spec in reference.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name in TFMA_OWN_METRICS:
                metric.class_name, metric.module = TFMA_OWN_METRICS[metric.class_name], ""
    models = {CANDIDATE: paths["model"], BASELINE: paths["model"]}
    run_tfma(config, models, paths["examples"], paths["schema"], str(tmp_path / "grouped"))
    run_tfma(reference, models, paths["examples"], paths["schema"], str(tmp_path / "each"), grouped=False)

    grouped, each = tfma_results(str(tmp_path / "grouped")), tfma_results(str(tmp_path / "each"))
    assert set(grouped) == set(each)
    assert {key[0] for key in grouped} >= {"Overall", "island:Biscoe", "island:Dream", "island:Torgersen"}
    # The ROC curve's confusion matrices (binary) and the multi-class confusion matrix.
    expected_plots = ({"confusionMatrixAtThresholds", "multiClassConfusionMatrixAtThresholds"} if module == BINARY
                      else set())
    assert {key[6] for key in grouped if key[1] == "plot"} == expected_plots
    for key, value in each.items():
        if isinstance(value, float):
            assert grouped[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        else:
            assert grouped[key] == value, key
