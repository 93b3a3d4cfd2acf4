"""TFX's own penguin Keras example (Trainer and Tuner module, and its sibling) runs here with only the changes
docs/training.md lists: taken from the tfx 1.16.0 wheel as TFX ships it, on TFX's processed penguin data with
an inferred schema, without and with the tune stage."""
import glob
import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from helpers import REPO

pytestmark = pytest.mark.slow

TFX_WHEEL = "tfx==1.16.0"
EXAMPLE_FOLDER = "tfx/examples/penguin/"
MODULE_FILE, SIBLING_FILE = "penguin_utils_keras.py", "penguin_utils_base.py"
FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]


def documented_changes():
    """The rows of docs/training.md's porting table, (TFX line, line here), and step 2's two lines."""
    with open(os.path.join(REPO, "docs", "training.md"), encoding="utf-8") as source:
        text = source.read()
    porting = text[text.index("## Porting a TFX Trainer or Tuner module"):]
    porting = porting[:porting.index("\n## ", 1)]
    rows = re.findall(r"^\s*\| `([^`]+)` \| `([^`]+)` \|$", porting, re.MULTILINE)
    added = re.findall(r"`(LABEL_KEY = \"species\")`|`(PROBLEM_TYPE = \"classification\")`", porting)
    return rows, ["".join(pair) for pair in added]


@pytest.fixture(scope="module")
def tfx_example(tmp_path_factory):
    """The two example files from the tfx 1.16.0 wheel (downloaded without dependencies), ported by the
    documented changes only, and TFX's processed penguin CSV (its recipe: palmerpenguins' table, culmen
    names, rows with a missing value left out, species as 0, 1, 2)."""
    root = tmp_path_factory.mktemp("tfx_example")
    download = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python",
                               "--disable-pip-version-check", "-q", "-d", str(root / "wheel"), TFX_WHEEL],
                              capture_output=True, text=True, timeout=600)
    assert download.returncode == 0, download.stderr[-2000:]
    wheel, = glob.glob(str(root / "wheel" / "tfx-1.16.0-*.whl"))
    module_folder = root / "module"
    module_folder.mkdir()
    rows, added = documented_changes()
    assert len(rows) >= 5 and len(added) == 2
    with zipfile.ZipFile(wheel) as archive:
        for name in (MODULE_FILE, SIBLING_FILE):
            source = archive.read(EXAMPLE_FOLDER + name).decode()
            assert "from tfx import v1 as tfx" in source
            for tfx_line, here in rows:
                source = re.sub(rf"^{re.escape(tfx_line)}$", here, source, flags=re.MULTILINE)
            if name == MODULE_FILE:
                source += "\n" + "\n".join(added) + "\n"
            assert not re.search(r"^(from|import) tfx[ .]", source, re.MULTILINE)
            (module_folder / name).write_text(source)

    import palmerpenguins

    table = pd.read_csv(os.path.join(os.path.dirname(palmerpenguins.__file__), "data", "penguins.csv"))
    table = table.rename(columns={"bill_length_mm": "culmen_length_mm", "bill_depth_mm": "culmen_depth_mm"})
    table = table[["species"] + FEATURES].dropna()
    table["species"] = table["species"].map({"Adelie": 0, "Chinstrap": 1, "Gentoo": 2}).astype(int)
    table[FEATURES] = table[FEATURES].astype(float)
    data = root / "penguins_processed.csv"
    table.to_csv(data, index=False)
    return {"module": str(module_folder / MODULE_FILE), "data": str(data), "table": table, "root": root}


def run_pipeline(folder, example, *flags):
    os.makedirs(folder, exist_ok=True)
    process = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--module", example["module"],
                              "--data", example["data"], "--summary-json", "summary.json", *flags],
                             cwd=folder, capture_output=True, text=True, timeout=1500)
    with open(os.path.join(folder, "summary.json"), encoding="utf-8") as source:
        return process, json.load(source)


def accuracy_on_raw_examples(version_dir, table):
    """The published model's accuracy on every row of the table, sent as raw tf.Examples without the label."""
    import tensorflow as tf

    examples = []
    for _, row in table.iterrows():
        features = {name: tf.train.Feature(float_list=tf.train.FloatList(value=[row[name]])) for name in FEATURES}
        examples.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    serve = tf.saved_model.load(version_dir).signatures["serving_default"]
    outputs = serve(examples=tf.constant(examples))
    predictions = np.argmax(next(iter(outputs.values())).numpy(), axis=1)
    return float(np.mean(predictions == table["species"].to_numpy()))


def provenance(version_dir):
    with open(os.path.join(version_dir, "assets.extra", "provenance.json"), encoding="utf-8") as source:
        return json.load(source)


@pytest.fixture(scope="module")
def plain_run(tfx_example):
    """The example run with default flags: no --tune, a schema inferred and kept in the statistics store."""
    folder = str(tfx_example["root"] / "plain")
    process, _ = run_pipeline(folder, tfx_example, "--statistics-root", "statistics")
    return folder, process


def test_tfx_penguin_example_publishes_a_good_model_with_an_inferred_schema(tfx_example, plain_run):
    folder, process = plain_run
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert "Traceback" not in process.stdout + process.stderr
    assert "Not tuned: --tune was not given (the module defines tuner_fn)" in process.stdout + process.stderr
    version_dir = os.path.join(folder, "serving", "penguin_utils_keras", "1")
    assert accuracy_on_raw_examples(version_dir, tfx_example["table"]) >= 0.95
    record = provenance(version_dir)
    assert record["module"]["contract"] == "run_fn" and record["training"]["tuned_hyperparameters"] is None


def test_tuner_fn_runs_with_tune_and_the_published_version_keeps_its_choice(tfx_example):
    folder = str(tfx_example["root"] / "tuned")
    process, _ = run_pipeline(folder, tfx_example, "--tune", "--tune-trials", "2", "--tune-steps", "20")
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    tune_outputs, = glob.glob(os.path.join(folder, "local_outputs", "*", "tune"))
    with open(os.path.join(tune_outputs, "best_hyperparameters", "tuning.json"), encoding="utf-8") as source:
        tuning = json.load(source)
    assert tuning["tuned"] and len(tuning["trials"]) == 2
    assert all(trial["status"] == "COMPLETED" and 0 <= trial["score"] <= 1 for trial in tuning["trials"])
    with open(os.path.join(tune_outputs, "tuning_report"), encoding="utf-8") as source:
        report = source.read()
    assert tuning["objective"] in report and all(f">{trial['trial']}<" in report for trial in tuning["trials"])
    version_dir = os.path.join(folder, "serving", "penguin_utils_keras", "1")
    record = provenance(version_dir)
    tuned = record["training"]["tuned_hyperparameters"]
    # keras-tuner's own config, as TFX's Tuner writes it: the search space and the chosen values.
    assert {space["config"]["name"] for space in tuned["space"]} == {"learning_rate", "num_layers"}
    assert tuned["values"]["learning_rate"] in (1e-2, 1e-3) and tuned["values"]["num_layers"] in (1, 2, 3)
    assert record["training"]["hyperparameters"] == tuned["values"]
    with open(os.path.join(tune_outputs, "best_hyperparameters", "best_hyperparameters.txt"),
              encoding="utf-8") as source:
        assert json.load(source) == tuned


def test_a_keras_error_in_the_module_is_one_line_at_the_modules_own_line(tfx_example, plain_run):
    """With the kept schema's shapes removed, every feature reaches the module as a SparseTensor, which TFX's
    example cannot take: the one line names the module's file and the line of its call, not a library frame."""
    from google.protobuf import text_format

    from components.stage_logic.schema import read_schema_text

    folder, _ = plain_run
    kept, = glob.glob(os.path.join(folder, "statistics", "penguin_utils_keras", "schema", "1", "schema.pbtxt"))
    schema = read_schema_text(kept)
    for feature in schema.feature:
        feature.ClearField("shape")
    sparse = os.path.join(folder, "sparse_schema.pbtxt")
    with open(sparse, "w", encoding="utf-8") as sink:
        sink.write(text_format.MessageToString(schema))
    process, summary = run_pipeline(str(tfx_example["root"] / "sparse"), tfx_example, "--schema", sparse)
    assert process.returncode == 1
    error, = [line for line in process.stdout.splitlines() + process.stderr.splitlines() if line.startswith("Error:")]
    module_line = next(number for number, text in enumerate(open(tfx_example["module"]), 1)
                       if text.strip().startswith("model.fit("))
    assert error.startswith(f"Error: train: --module '{tfx_example['module']}': TypeError: ")
    assert "a SparseTensor" in error and f"in run_fn ({tfx_example['module']}, line {module_line})" in error
    assert "please report" not in error and "DeserializeSparse" not in error
