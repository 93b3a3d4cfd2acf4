"""The whole pipeline through its command line: the compiled spec run by kfp.local, as a user runs it.

A first run on the demo data publishes a model that classifies the eval split from raw tf.Examples;
a deliberately bad second candidate is not blessed against it; bad input stops the run with one clear
line and publishes nothing.
"""
import csv
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from browser import rendered_dom, screenshot
from components.stage_logic.ingest import demo_data_pattern
from helpers import REPO
from report_pages import read_page, table_with_header

# Every test here runs pipeline.py or reads what a whole run wrote.
pytestmark = pytest.mark.slow

NUMERIC = {"bill_length_mm": float, "bill_depth_mm": float, "flipper_length_mm": int,
           "body_mass_g": int, "year": int}


def run_pipeline(tmp_path, *args, name="run", serving_root=None):
    summary = tmp_path / f"{name}.json"
    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--serving-root",
         str(serving_root or tmp_path / "serving"), "--pipeline-root", str(tmp_path / "outputs"), "--summary-json",
         str(summary), *args],
        capture_output=True, text=True, timeout=600)
    result = json.loads(summary.read_text()) if summary.exists() else None
    return process, result


def example_from_row(row):
    """A raw tf.train.Example built from a CSV row with TensorFlow's own API."""
    feature = {}
    for name, value in row.items():
        if value == "NA":
            continue
        if name in NUMERIC and NUMERIC[name] is int:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        elif name in NUMERIC:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        else:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def row_key(features):
    """Identifies a penguin by its values, from a CSV row (strings) or a parsed tf.Example."""
    return tuple((name, round(float(value), 3) if name in NUMERIC else value)
                 for name, value in sorted(features.items()) if value not in ("NA", None))


def eval_split_keys(pipeline_root):
    files = glob.glob(os.path.join(pipeline_root, "*", "ingest", "examples", "Split-eval", "*.gz"))
    keys = set()
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        values = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            value = getattr(feature, kind).value[0]
            values[name] = value.decode() if kind == "bytes_list" else value
        keys.add(row_key(values))
    return keys


@pytest.fixture(scope="module")
def first_run(demo_run):
    """The demo with default flags (conftest.py's `demo_run`, which test_warm_stages.py reads too)."""
    tmp_path, process, result = demo_run
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return tmp_path, process, result


def test_demo_run_publishes_a_model_that_classifies_raw_examples(first_run):
    tmp_path, process, result = first_run
    assert result["succeeded"]
    assert list(result["stages"]) == ["ingest", "statistics", "schema", "validate", "transform", "tune", "train",
                                      "evaluate", "push"]
    assert all(stage["status"] == "SUCCESS" for stage in result["stages"].values())
    pushed = result["outputs"]["pushed_model"]
    assert pushed["pushed"] and pushed["version"] == 1
    assert pushed["path"] == str(tmp_path / "serving" / "penguins" / "1")
    assert "Published: version 1 at" in process.stdout

    with open(demo_data_pattern(), newline="") as source:
        rows = list(csv.DictReader(source))
    eval_keys = eval_split_keys(str(tmp_path / "pipeline"))
    eval_rows = [row for row in rows if row_key(row) in eval_keys]
    assert len(eval_rows) >= 100
    model = tf.saved_model.load(pushed["path"])
    examples = tf.constant([example_from_row(row).SerializeToString() for row in eval_rows])
    predicted = model.signatures["serving_default"](examples=examples)["classes"].numpy()
    accuracy = sum(p.decode() == row["species"] for p, row in zip(predicted, eval_rows)) / len(eval_rows)
    assert accuracy >= 0.9


def test_the_published_model_reloads_as_a_keras_model_that_predicts_what_it_serves(first_run):
    """The published version is a Keras SavedModel: `load_model` rebuilds the model with the trained weights, and on
    the transform signature's features it predicts what the serving signature does."""
    pushed = first_run[2]["outputs"]["pushed_model"]["path"]
    with open(demo_data_pattern(), newline="") as source:
        rows = list(csv.DictReader(source))[:40]
    examples = tf.constant([example_from_row(row).SerializeToString() for row in rows])
    served = tf.saved_model.load(pushed).signatures
    transformed = served["transform_features"](examples=examples)
    rebuilt = tf.keras.models.load_model(pushed)
    predicted = rebuilt({name: transformed[name] for name in rebuilt.input_names})
    assert np.allclose(predicted.numpy(), served["serving_default"](examples=examples)["probabilities"].numpy(),
                       atol=1e-6)


def test_run_summary_reports_metrics_and_blessing(first_run):
    _, process, result = first_run
    blessing = result["outputs"]["blessing"]
    assert blessing["blessed"] and blessing["baseline"] == ""
    assert result["outputs"]["eval_metrics"]["sparse_categorical_accuracy"] >= 0.9
    for line in ("Blessing: BLESSED", "Evaluation (eval split):", "Training:", "  train       SUCCESS"):
        assert line in process.stdout
    stages = result["stages"]
    assert stages["ingest"]["beam"] == "none (CSV input 15 kB, at most 1 MiB: read in this process)", stages
    assert stages["statistics"]["beam"].startswith("none for eval, train (at most 1,000 examples"), stages
    assert stages["transform"]["beam"].startswith("in process (input "), stages["transform"]


def test_a_bad_candidate_is_not_blessed_and_publishes_nothing(first_run, tmp_path):
    first_run_path, _, _ = first_run
    serving_root = first_run_path / "serving"
    process, result = run_pipeline(tmp_path, "--train-steps", "1", "--threshold", "0", name="weak",
                                   serving_root=serving_root)
    assert process.returncode == 0, process.stdout[-3000:]
    blessing = result["outputs"]["blessing"]
    assert not blessing["blessed"]
    assert blessing["baseline"] == str(serving_root / "penguins" / "1")
    assert "serving model version 1" in blessing["reasons"][0]
    assert blessing["reasons"][0].endswith("at most 0.01 worse allowed (--tolerance): FAILS")
    assert not result["outputs"]["pushed_model"]["pushed"]
    assert sorted(os.listdir(serving_root / "penguins")) == [".publish.lock", "1"]
    assert "Blessing: NOT BLESSED" in process.stdout
    assert "Published: nothing (the model was not blessed)" in process.stdout


@pytest.fixture
def no_label_csv(tmp_path):
    with open(demo_data_pattern(), newline="") as source:
        rows = list(csv.DictReader(source))
    path = tmp_path / "no_label.csv"
    with open(path, "w", newline="") as sink:
        writer = csv.DictWriter(sink, [name for name in rows[0] if name != "species"])
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if k != "species"} for row in rows)
    return str(path)


@pytest.mark.parametrize("case,expected", [
    ("empty csv", "empty.csv is empty: a CSV file must start with a header line"),
    ("ragged rows", "ragged.csv, line 3: 1 fields where the header has 2"),
    ("non-UTF-8 bytes", "latin1.csv is not UTF-8 text: re-encode it as UTF-8."),
    ("duplicated header", "twice.csv: the header names island more than once"),
    ("span that does not exist", "Span 9 not found for --data"),
    ("no label column", "The label 'species' (LABEL_KEY of --module 'components.penguins.module') is not a "
                        "column of the data: the data's columns are bill_depth_mm, bill_length_mm"),
    ("module without preprocessing_fn", "has no preprocessing_fn: define def preprocessing_fn(inputs)"),
    ("module with a syntax error", "module_with_typo.py': syntax error in "),
    ("three rows", "The eval split has no rows: 3 rows split with --split-ratios 'train:2,eval:1' gave train 3, "
                   "eval 0"),
    ("module using a column the data lacks", "preprocessing_fn of --module '{module}' uses the column 'beak_colour', "
                                             "which the data does not have (its columns: bill_depth_mm"),
    ("module whose build_model raises", "RuntimeError: no GPU here in build_model ({module}, line {line}): fix the "
                                        "module."),
])
def test_bad_input_stops_with_one_clear_line_and_publishes_nothing(tmp_path, no_label_csv, case, expected):
    module = tmp_path / "module_without_fn.py"
    module.write_text('LABEL_KEY = "species"\nPROBLEM_TYPE = "classification"\n'
                      "def build_model(tf_transform_output):\n    return None\n")
    demo_module = open(os.path.join(REPO, "components", "penguins", "module.py")).read()
    typo = tmp_path / "module_with_typo.py"
    build_model_line = "def build_model(tf_transform_output, hyperparameters=None):"
    typo.write_text(demo_module.replace(build_model_line, build_model_line.rstrip(":")))
    beak = tmp_path / "module_with_beak.py"
    beak.write_text(demo_module.replace('CATEGORICAL_FEATURES = ["island", "sex"]',
                                        'CATEGORICAL_FEATURES = ["island", "sex", "beak_colour"]'))
    raising = tmp_path / "module_raising.py"
    raising.write_text(demo_module.replace(f"{build_model_line}\n",
                                           f"{build_model_line}\n    raise RuntimeError('no GPU here')\n"))
    raise_line = demo_module.splitlines().index(build_model_line) + 2
    (tmp_path / "three.csv").write_text("x,label\n1,a\n2,b\n3,a\n")  # all three rows hash to train
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text("species,island\nAdelie,Dream\nGentoo\n")
    (tmp_path / "latin1.csv").write_bytes("species,île\nAdélie,Dream\n".encode("latin-1"))
    (tmp_path / "twice.csv").write_text("species,island,island\nAdelie,Dream,Dream\n")
    os.makedirs(tmp_path / "span-1")
    (tmp_path / "span-1" / "a.csv").write_text("species,island\nAdelie,Dream\n")
    args = {
        "empty csv": ["--data", str(tmp_path / "empty.csv")],
        "ragged rows": ["--data", str(tmp_path / "ragged.csv")],
        "non-UTF-8 bytes": ["--data", str(tmp_path / "latin1.csv")],
        "duplicated header": ["--data", str(tmp_path / "twice.csv")],
        "span that does not exist": ["--data", str(tmp_path / "span-{SPAN}" / "*.csv"), "--span", "9"],
        "no label column": ["--data", no_label_csv],
        "module without preprocessing_fn": ["--module", str(module)],
        "module with a syntax error": ["--module", str(typo)],
        "three rows": ["--data", str(tmp_path / "three.csv")],
        "module using a column the data lacks": ["--module", str(beak)],
        "module whose build_model raises": ["--module", str(raising)],
    }[case]
    expected = expected.format(module={"module using a column the data lacks": beak,
                                       "module whose build_model raises": raising}.get(case, ""), line=raise_line)
    process, result = run_pipeline(tmp_path, *args)
    assert process.returncode == 1
    assert not result["succeeded"]
    assert len(result["errors"]) == 1 and expected in result["errors"][0], result["errors"]
    failed = [name for name, stage in result["stages"].items() if stage["status"] == "FAILURE"]
    assert result["errors"][0].startswith(f"{failed[0]}: ")
    assert f"Error: {result['errors'][0].splitlines()[0]}" in process.stdout
    assert "Traceback" not in process.stdout + process.stderr
    assert "The run failed: nothing was published." in process.stdout
    assert not os.path.exists(tmp_path / "serving")
    failed = [name for name, stage in result["stages"].items() if stage["status"] == "FAILURE"]
    assert len(failed) == 1
    # KFP marks an artifact complete by the executor's output file; a failed stage writes none.
    assert glob.glob(os.path.join(tmp_path, "outputs", "*", failed[0], "executor_output.json")) == []


def test_unknown_flag_is_one_clear_line():
    process = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--bogus"],
                             capture_output=True, text=True)
    assert process.returncode == 2
    assert "unrecognized arguments: --bogus" in process.stderr.strip().splitlines()[-1]


def test_demo_data_lays_out_three_spans_by_year(tmp_path):
    process = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "demo-data", "--dir",
                              str(tmp_path)], capture_output=True, text=True, check=True)
    assert "span-{SPAN}" in process.stdout
    counts = {}
    for span in (1, 2, 3):
        with open(tmp_path / f"span-{span}" / "penguins.csv", newline="") as source:
            rows = list(csv.DictReader(source))
        counts[span] = len(rows)
        assert {row["year"] for row in rows} == {str(2006 + span)}
    assert counts == {1: 110, 2: 114, 3: 120}


def run_reports(first_run):
    report = first_run[2]["run_report"]
    return report, os.path.join(os.path.dirname(report), "reports")


def test_run_report_shows_every_stage_in_a_browser(first_run, tmp_path):
    index, _ = run_reports(first_run)
    dom = rendered_dom(index)
    for stage in ("ingest", "statistics", "schema", "validate", "transform", "tune", "train", "evaluate", "push"):
        assert f"<b>{stage}</b>" in dom
    assert dom.count(">SUCCESS<") == 9
    assert "BLESSED" in dom and "published version 1" in dom and "no data anomalies" in dom
    assert "threshold &gt;= 0.8: passes</li>" in dom, "the blessing's reasons"
    assert "confusion matrix" in dom and all(name in dom for name in ("Adelie", "Gentoo", "Chinstrap"))
    assert 'href="reports/statistics-statistics_report.html"' in dom
    assert screenshot(index, str(tmp_path / "index.png")) > 20


def test_statistics_report_in_a_browser(first_run, tmp_path):
    _, reports_dir = run_reports(first_run)
    page = os.path.join(reports_dir, "statistics-statistics_report.html")
    dom = rendered_dom(page)
    for feature in ("species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
                    "sex", "year"):
        assert f'id="feature-{feature}"' in dom
    seen = read_page(dom)
    histograms = [chart["series"] for chart in seen.charts if chart["class"] == "histogram"]
    assert histograms == [["train", "eval"]] * 5, "five numeric features, train and eval in one chart each"
    top_values = [chart for chart in seen.charts if chart["class"] == "top-values"]
    assert len(top_values) == 3 and all(set(chart["series"]) == {"train", "eval"} for chart in top_values)
    splits = table_with_header(seen, "split")[1:]
    assert [row[0] for row in splits] == ["train", "eval"], "train first"
    with open(demo_data_pattern(), newline="") as source:
        assert sum(int(row[1]) for row in splits) == len(list(csv.DictReader(source)))
    assert screenshot(page, str(tmp_path / "statistics.png")) > 20


@pytest.mark.parametrize("report,expected", [
    ("schema-schema_report", ["<td>body_mass_g</td>", "<td>2000 to 7000</td>", "<td>TRAINING</td>"]),
    ("validate-anomalies_report", ["No anomalies.", "Skew: NOT CHECKED: no serving sample"]),
    ("transform-transform_report", ["<td>species</td>", "<td>3</td>", "<td>body_mass_g_xf</td>"]),
    ("train-learning_curves", ['<polyline class="series"', "val_loss", "val_accuracy"]),
    ("evaluate-evaluation_report", ["BLESSED", "island:Biscoe", "sparse_categorical_accuracy",
                                    "Overall <span class=\"decided\">◀ decided the blessing</span>",
                                    "<th>actual \\ predicted</th>"]),
    ("evaluate-blessing_report", ["BLESSED", "threshold &gt;= 0.8: passes"]),
    ("push-push_report", ["Published version <strong>1</strong>"]),
])
def test_stage_reports_in_a_browser(first_run, report, expected):
    _, reports_dir = run_reports(first_run)
    dom = rendered_dom(os.path.join(reports_dir, f"{report}.html"))
    for text in expected:
        assert text in dom
    if report == "train-learning_curves":
        assert dom.count('<polyline class="series"') == 4


def test_reports_fetch_nothing_from_the_network(first_run):
    index, reports_dir = run_reports(first_run)
    pages = [index] + [os.path.join(reports_dir, name) for name in os.listdir(reports_dir)]
    assert len(pages) == 10
    for page in pages:
        with open(page) as source:
            text = source.read()
        assert "<script" not in text and "@import" not in text and "url(" not in text
        assert not re.search(r"(src|href)=\"(https?:)?//", text), page
