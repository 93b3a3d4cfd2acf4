"""A regression module through transform, train, evaluate and push: the other problem type of the contract."""
import csv
import os

import pytest
import tensorflow as tf

from components.evaluate import evaluate_model
from components.ingest import demo_data_pattern, ingest_examples
from components.schema import make_schema
from components.statistics import generate_statistics
from components.train import SERVING_SIGNATURE, train_model
from components.transform import transform_examples

MODULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regression_module.py")


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    """Penguins with every measurement present, through the stages up to a trained regression model."""
    root = tmp_path_factory.mktemp("regression")
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
    make_schema(paths["statistics"], paths["schema"])
    transform_examples(paths["examples"], paths["schema"], MODULE, paths["graph"], paths["transformed"])
    result = train_model(paths["transformed"], paths["graph"], MODULE, paths["model"], train_steps=400)
    return root, paths, result


def test_regression_model_serves_one_value_per_raw_example(regression_run):
    _, paths, result = regression_run
    assert result["final"]["val_loss"] < 0.25
    model = tf.saved_model.load(paths["model"])
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(os.path.join(paths["examples"], "Split-eval", "*.gz")),
                                      compression_type="GZIP")
    batch = next(iter(records.batch(50)))
    predictions = model.signatures[SERVING_SIGNATURE](examples=batch)["predictions"].numpy()
    assert predictions.shape == (50,)
    assert 2.5 < predictions.mean() < 6.0


def test_regression_blessing_uses_mean_squared_error(regression_run, tmp_path):
    _, paths, _ = regression_run
    decision = evaluate_model(paths["model"], paths["examples"], paths["schema"], MODULE, str(tmp_path / "a"),
                              threshold=0.25)
    mse = decision["overall"]["candidate"]["mean_squared_error"]
    assert decision["blessed"] and mse < 0.25
    assert "mean_absolute_error" in decision["overall"]["candidate"]
    assert decision["reasons"] == [f"mean_squared_error of the candidate is {mse:.4f}: passes the threshold <= 0.25"]
    assert {"island:Biscoe", "island:Dream"} <= set(decision["slices"])

    strict = evaluate_model(paths["model"], paths["examples"], paths["schema"], MODULE, str(tmp_path / "b"),
                            threshold=mse / 2)
    assert not strict["blessed"] and "fails the threshold <=" in strict["reasons"][0]
