"""Acceptance: data and modules nobody on the project wrote, run the way a newcomer runs them.

Three of scikit-learn's bundled tables (breast cancer: binary, with a one-sigmoid model; wine: three
classes, softmax; diabetes: regression), written out as CSV with empty cells, a categorical column with a
rare value and a free-text column (tests/stranger_data.py), each with a module written from the README's
contract (tests/modules/). Every run uses the defaults: an inferred schema, default thresholds, a
statistics store. The first span publishes a model; then a second span arrives three ways:

- corrupted (a numeric column is text in 30% of the rows, a used column is gone): blocked at validate;
- drifted (a numeric feature multiplied by 3): blocked at validate by the default drift check, which names it;
- relabelled (labels shuffled): trained, evaluated, not blessed, nothing published.

Each outcome comes with one reason line, and no successful run prints a traceback.
"""
import json
import os
import subprocess
import sys

import pytest

import stranger_data
from helpers import REPO

pytestmark = pytest.mark.slow


def run(tmp_path, name, *flags, label="run"):
    summary = tmp_path / f"{label}.json"
    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--data", stranger_data.pattern(str(tmp_path), name),
         "--module", stranger_data.module_path(name), "--model-name", name,
         "--serving-root", str(tmp_path / "serving"), "--statistics-root", str(tmp_path / "statistics"),
         "--pipeline-root", str(tmp_path / "outputs"), "--summary-json", str(summary), *flags],
        capture_output=True, text=True, timeout=900)
    result = json.loads(summary.read_text()) if summary.exists() else None
    return process, result


def published(tmp_path, name):
    root = tmp_path / "serving" / name
    return sorted(int(entry) for entry in os.listdir(root) if entry.isdigit()) if root.is_dir() else []


def assert_no_traceback(process):
    output = process.stdout + process.stderr
    assert "Traceback" not in output and "Exception ignored" not in output, output[-4000:]


@pytest.fixture(scope="module", params=stranger_data.DATASETS)
def first_span(request, tmp_path_factory):
    name = request.param
    tmp_path = tmp_path_factory.mktemp(name)
    stranger_data.write_span(str(tmp_path), name, 1)
    process, result = run(tmp_path, name, label="span-1")
    return name, tmp_path, process, result


def test_the_first_span_publishes_a_model(first_span):
    name, tmp_path, process, result = first_span
    assert process.returncode == 0, process.stdout[-4000:] + process.stderr[-3000:]
    assert_no_traceback(process)
    assert result["errors"] == []
    assert result["outputs"]["pushed_model"]["pushed"] is True
    assert published(tmp_path, name) == [1]
    blessing = result["outputs"]["blessing"]
    metric = blessing["metric"]
    assert metric == ("r_squared" if name == "diabetes" else "sparse_categorical_accuracy")
    assert blessing["overall"]["candidate"][metric] >= (0.3 if name == "diabetes" else 0.85)
    assert "no model is serving yet" in blessing["reasons"][-1]
    # The inferred schema is kept for the next span, and the summary says where it came from.
    assert os.path.isfile(tmp_path / "statistics" / name / "schema" / "1" / "schema.pbtxt")
    assert "Schema: inferred from this span" in process.stdout
    assert f"Drift: NOT CHECKED: no span of model {name!r} before 1 has been kept yet (first span)" in process.stdout


def test_a_corrupted_second_span_is_blocked(first_span):
    name, tmp_path, _, _ = first_span
    stranger_data.write_corrupted_span(str(tmp_path), name, 2)
    process, result = run(tmp_path, name, label="corrupted")
    assert process.returncode == 1
    assert_no_traceback(process)
    assert len(result["errors"]) == 1
    error = result["errors"][0]
    # The line names the kept schema it disagrees with, the columns, and the two ways forward.
    kept = tmp_path / "statistics" / name / "schema" / "1" / "schema.pbtxt"
    assert error.startswith(f"validate: Span 2 disagrees with the kept schema, version 1 of model {name!r} "
                            f"(inferred from span 1, at {kept}), on ")
    assert "rerun with --update-schema" in error and "give it its own --model-name" in error
    numeric = stranger_data.numeric_columns(name)
    assert f"feature '{numeric[0]}': UNEXPECTED_DATA_TYPE" in error
    assert f"feature '{numeric[3]}': SCHEMA_MISSING_COLUMN" in error
    assert published(tmp_path, name) == [1]
    [summary_error] = [line for line in process.stdout.splitlines() if line.startswith("Error: ")]
    assert summary_error.startswith("Error: validate: Span 2 disagrees with the kept schema")
    assert summary_error.endswith("validate/stage.log)")


def test_a_drifted_second_span_is_blocked_by_the_default_drift_check(first_span):
    name, tmp_path, _, _ = first_span
    stranger_data.write_drifted_span(str(tmp_path), name, 2)
    process, result = run(tmp_path, name, label="drifted")
    assert process.returncode == 1
    assert_no_traceback(process)
    [error] = result["errors"]
    feature = stranger_data.numeric_columns(name)[0]
    # The line names the column and the measure, and the ways forward.
    assert error.startswith(f"validate: Span 2 drifted from span 1 on 1 column(s): {feature} (")
    assert "normalized Wasserstein distance" in error.splitlines()[0]
    assert f"--drift-ignore {feature}" in error.splitlines()[0]
    assert f"train (drift against span 1): feature '{feature}': NORMALIZED_WASSERSTEIN_HIGH" in error
    assert published(tmp_path, name) == [1]


def test_a_relabelled_second_span_is_not_blessed(first_span):
    name, tmp_path, _, _ = first_span
    stranger_data.write_relabelled_span(str(tmp_path), name, 2)
    process, result = run(tmp_path, name, label="relabelled")
    assert process.returncode == 0, process.stdout[-4000:]
    assert_no_traceback(process)
    validation = result["outputs"]["anomalies"]
    assert validation["anomaly_count"] == 0
    judged = [row for row in validation["drift"] if row["judged"]]
    assert validation["checks"]["drift"].startswith(f"{len(judged)} of {len(validation['drift'])} ")
    assert len(judged) >= len(stranger_data.numeric_columns(name)) and all(row["outcome"] == "ok" for row in judged)
    assert "Schema: kept schema version 1" in process.stdout
    blessing = result["outputs"]["blessing"]
    assert blessing["blessed"] is False
    assert any("FAILS" in reason and "threshold" in reason for reason in blessing["reasons"])
    assert result["outputs"]["pushed_model"]["pushed"] is False
    assert published(tmp_path, name) == [1]
