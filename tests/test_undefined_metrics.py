"""Metrics that are undefined never crash a run, thresholds outside a metric's range are refused, a split too
small to evaluate is refused at ingest, and data TensorFlow cannot take is one line naming the column.

The end-to-end tests run scikit-learn's diabetes table (tests/stranger_data.py) with its newcomer's module
(tests/modules/diabetes_module.py), the label set to 0 wherever sex is female: one slice whose label never
varies, as when one payment type never tips. Its R² is undefined; the run still publishes, says so in every
output, and every JSON file it writes parses with a strict parser.
"""
import glob
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import stranger_data
from components import json_values
from components.errors import StageError
from components.evaluation.blessing import check_thresholds, decide, undefined_metrics
from components.stage_logic.evaluate import blessing_markdown, evaluation_html
from components.stage_logic.ingest import MIN_EVAL_EXAMPLES, ingest_examples
from components.training.data_errors import describe_data_error
from components.training.user_module import declared_problem_type
from helpers import REPO

DIABETES = stranger_data.module_path("diabetes")
BREAST_CANCER = stranger_data.module_path("breast_cancer")
NAN = float("nan")


def strict(text):
    """JSON as a strict reader takes it: NaN, Infinity and -Infinity are refused."""
    return json_values.loads_strict(text)


def constant_label_table(female_label=0.0, male_label=None):
    """The diabetes table with the label `female_label` wherever sex is female (and `male_label` for men, if given)."""
    header, rows, label, _ = stranger_data._table("diabetes")
    sex, target = header.index("sex"), header.index(label)
    for row in rows:
        if row[sex] == "female":
            row[target] = female_label
        elif male_label is not None:
            row[target] = male_label
    return header, rows


# --- Blessing: an undefined metric decides no gate, and says so -----------------------------------------

SLICES = {
    "Overall": {"candidate": {"r_squared": 0.61, "example_count": 150, "mean_squared_error": 2900.0}},
    "sex:female": {"candidate": {"r_squared": NAN, "example_count": 70, "mean_squared_error": 10.0}},
    "sex:male": {"candidate": {"r_squared": 0.4, "example_count": 79, "mean_squared_error": 5000.0}},
    "site:island clinic": {"candidate": {"r_squared": NAN, "example_count": 1, "mean_squared_error": 80.0}},
}


def test_a_slice_whose_label_is_constant_is_not_gated_and_says_why():
    blessed, reasons, rows = decide(SLICES, "r_squared", 0.1, 0.01, slice_threshold=0.3, min_slice_examples=30)
    assert blessed
    assert rows["sex:female"]["candidate"] is None
    assert rows["sex:female"]["gate"] == "not gated: r_squared undefined (its label is constant)"
    assert rows["sex:male"]["gate"] == "passes"
    assert "slice sex:female: r_squared undefined (its label is constant): not gated" in reasons
    assert "slice site:island clinic: r_squared undefined (one example: its label cannot vary): not gated" in reasons
    json_values.dumps(rows)  # no NaN is left in what is written


def test_an_undefined_overall_metric_cannot_be_judged_so_it_is_not_blessed():
    slices = {**SLICES, "Overall": {"candidate": {"r_squared": NAN, "example_count": 150, "mean_squared_error": 3.0},
                                    "baseline": {"r_squared": NAN, "example_count": 150, "mean_squared_error": 4.0}}}
    blessed, reasons, _ = decide(slices, "r_squared", 0.1, 0.01, "serving model version 2")
    assert not blessed
    assert reasons[0] == ("r_squared on the whole eval split (150 examples): candidate undefined (its label is "
                          "constant): it cannot be judged against threshold >= 0.1 nor serving model version 2: FAILS")


def test_no_gate_asked_for_still_blesses_and_says_the_metric_is_undefined():
    slices = {"Overall": {"candidate": {"r_squared": NAN, "example_count": 40, "mean_squared_error": 1.0}}}
    blessed, reasons, _ = decide(slices, "r_squared", 0.0, 0.01)
    assert blessed
    assert reasons == ["no value threshold (--threshold 0) and no model is serving yet: blessed without a gate; "
                       "r_squared on the whole eval split (40 examples) is undefined (its label is constant)"]


def test_a_serving_model_whose_metric_is_undefined_is_no_change_gate():
    slices = {"Overall": {"candidate": {"sparse_categorical_accuracy": 0.9, "example_count": 40},
                          "baseline": {"sparse_categorical_accuracy": math.inf, "example_count": 40}}}
    blessed, reasons, rows = decide(slices, "sparse_categorical_accuracy", 0.8, 0.01, "serving model version 4")
    assert blessed
    assert reasons[1] == ("sparse_categorical_accuracy on the whole eval split (40 examples): candidate 0.9000, "
                          "serving model version 4 undefined (not a finite number (NaN or infinity)): no change gate")
    assert rows["Overall"]["difference"] is None


def test_undefined_values_become_none_with_their_reason():
    clean, undefined = undefined_metrics(SLICES)
    assert clean["sex:female"]["candidate"]["r_squared"] is None
    assert undefined == [
        {"slice": "sex:female", "model": "candidate", "metric": "r_squared", "reason": "its label is constant"},
        {"slice": "site:island clinic", "model": "candidate", "metric": "r_squared",
         "reason": "one example: its label cannot vary"}]
    nonfinite = {"Overall": {"candidate": {"r_squared": NAN, "mean_squared_error": math.inf, "example_count": 9}}}
    assert {item["reason"] for item in undefined_metrics(nonfinite)[1]} == {
        "the predictions or the labels are not all finite numbers"}


def test_the_reports_show_an_undefined_metric_as_undefined_and_why():
    clean, undefined = undefined_metrics(SLICES)
    blessed, reasons, rows = decide(clean, "r_squared", 0.1, 0.01)
    decision = {"blessed": blessed, "reasons": reasons, "metric": "r_squared", "baseline_version": 0,
                "overall": {"candidate": clean["Overall"]["candidate"]}, "slices": rows, "undefined": undefined,
                "kfp_metrics_left_out": []}
    page = evaluation_html(decision)
    assert "<h2>Undefined metrics</h2>" in page
    assert "slice sex:female: r_squared of the candidate undefined (its label is constant): not gated" in page
    assert "<td class=\"num\">undefined</td>" in page
    markdown = blessing_markdown(decision)
    assert "## Undefined metrics" in markdown and "- slice sex:female: r_squared of the candidate undefined" in markdown


# --- R² itself ------------------------------------------------------------------------------------------

def r_squared(batches):
    """R² from the TFMA combiner, fed `batches` of (labels, predictions) and merged as Beam merges them."""
    from components.evaluation.tfma_metrics import _RSquaredCombiner

    def inputs(element):
        labels, predictions = element
        return np.asarray(labels, float), np.asarray(predictions, float).reshape(-1, 1), np.ones(len(labels))

    combiner = _RSquaredCombiner(inputs, "r2")
    accumulators = [combiner.add_input(combiner.create_accumulator(), batch) for batch in batches]
    return combiner.extract_output(combiner.merge_accumulators(accumulators))["r2"]


def test_r_squared_of_a_constant_label_is_undefined_not_a_huge_negative_number():
    # 0.1 is not exact in binary: sum(x²) - sum(x)²/n leaves rounding noise that made R² about -1e15.
    assert math.isnan(r_squared([([0.1] * 7, [0.2] * 7), ([0.1] * 5, [0.0] * 5)]))
    assert math.isnan(r_squared([([0.0] * 4, [0.3] * 4)]))
    assert math.isnan(r_squared([([3.0], [2.0])]))


def test_r_squared_of_a_large_label_that_varies_a_little_is_defined():
    offsets = np.array([i % 3 for i in range(30)], float)  # labels 1e6, 1e6 + 1, 1e6 + 2
    predictions = np.concatenate([offsets[:10], np.ones(20)])
    expected = 1 - ((predictions - offsets) ** 2).sum() / ((offsets - offsets.mean()) ** 2).sum()
    labels = list(1e6 + offsets)
    value = r_squared([(labels[:10], list(1e6 + predictions[:10])), (labels[10:], list(1e6 + predictions[10:]))])
    assert value == pytest.approx(expected, rel=1e-6)


# --- Thresholds outside the metric's range ----------------------------------------------------------------

@pytest.mark.parametrize("problem_type, threshold, slice_threshold, line", [
    ("regression", 10, 0, "--threshold 10 can never pass: the blessing metric of a regression module (--module "
                          "'m.py') is R² (r_squared), at most 1: give a threshold from 0 to 1 (default 0.1; 0 for no "
                          "value gate)."),
    ("classification", 1.5, 0, "--threshold 1.5 can never pass: the blessing metric of a classification module "
                               "(--module 'm.py') is accuracy (sparse_categorical_accuracy), from 0 to 1"),
    ("classification", 0.8, -0.2, "--slice-threshold -0.2 would pass every slice: the blessing metric of a "
                                  "classification module (--module 'm.py') is accuracy"),
    ("regression", -1, 1.2, "--slice-threshold 1.2 could never pass"),
])
def test_a_threshold_outside_the_metrics_range_is_refused_with_one_line(problem_type, threshold, slice_threshold, line):
    with pytest.raises(StageError) as raised:
        check_thresholds(problem_type, threshold, slice_threshold, "--module 'm.py'")
    assert str(raised.value).startswith(line) and "\n" not in str(raised.value)


def test_thresholds_in_range_pass():
    check_thresholds("regression", -1.0, -0.5)  # the default, and a slice gate at R² -0.5 (R² can be negative)
    check_thresholds("classification", 1.0, 0.5)
    check_thresholds(None, 0.9, 0.0)


def test_the_command_line_refuses_threshold_10_for_a_regression_module_before_any_stage(tmp_path, capsys):
    import pipeline_cli

    code = pipeline_cli.main(["run", "--module", DIABETES, "--threshold", "10",
                              "--pipeline-root", str(tmp_path / "outputs"), "--serving-root", str(tmp_path / "s")])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error == (f"Error: --threshold 10 can never pass: the blessing metric of a regression module (--module "
                     f"{DIABETES!r}) is R² (r_squared), at most 1: give a threshold from 0 to 1 (default 0.1; 0 for "
                     "no value gate).")
    assert not os.path.exists(tmp_path / "outputs")


def test_the_problem_type_is_read_from_the_module_without_importing_it():
    assert declared_problem_type(DIABETES) == "regression"
    assert declared_problem_type(BREAST_CANCER) == "classification"
    assert declared_problem_type("components.penguins.module") == "classification"
    assert declared_problem_type("gs://bucket/module.py") is None


# --- A split too small to evaluate ----------------------------------------------------------------------

def test_an_eval_split_of_a_few_rows_is_refused_at_ingest_with_one_line(tmp_path):
    header, rows, _, _ = stranger_data._table("diabetes")
    data = stranger_data.write_csv(str(tmp_path / "few.csv"), header, rows[:12])
    with pytest.raises(StageError) as raised:
        ingest_examples(data, str(tmp_path / "examples"))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("The eval split has ")
    count = int(message.split("The eval split has ")[1].split()[0])
    assert 0 < count < MIN_EVAL_EXAMPLES
    assert (f"too few to evaluate a model on (at least {MIN_EVAL_EXAMPLES}): 12 rows split with --split-ratios "
            "'train:2,eval:1' gave train") in message
    assert message.endswith("add rows (a hash split needs a few dozen at least) or give it a larger share with "
                            "--split-ratios (e.g. train:1,eval:1).")


def test_an_eval_split_with_enough_rows_passes(tmp_path):
    header, rows, _, _ = stranger_data._table("diabetes")
    data = stranger_data.write_csv(str(tmp_path / "some.csv"), header, rows[:60])
    metadata = ingest_examples(data, str(tmp_path / "examples"), split_ratios="train:1,eval:1")
    assert metadata["row_counts"]["eval"] >= MIN_EVAL_EXAMPLES


# --- Data TensorFlow cannot take, as one line naming the column -----------------------------------------

def test_a_text_column_the_module_casts_to_a_number_is_refused_before_transform_reads_data(tmp_path):
    from components.stage_logic.schema import make_schema
    from components.stage_logic.statistics import generate_statistics
    from components.stage_logic.transform import transform_examples

    header, rows, _, _ = stranger_data._table("diabetes")
    bmi = header.index("bmi")
    for number, row in enumerate(rows):
        if number % 9 == 0:
            row[bmi] = "not measured"
    data = stranger_data.write_csv(str(tmp_path / "text.csv"), header, rows)
    paths = {name: str(tmp_path / name) for name in ("examples", "statistics", "schema", "graph", "transformed")}
    ingest_examples(data, paths["examples"])
    generate_statistics(paths["examples"], paths["statistics"])
    make_schema(paths["statistics"], paths["schema"], module=DIABETES)
    with pytest.raises(StageError) as raised:
        transform_examples(paths["examples"], paths["schema"], DIABETES, paths["graph"], paths["transformed"])
    assert str(raised.value) == (
        f"Column 'bmi' holds text (e.g. 'not measured'), but preprocessing_fn of --module {DIABETES!r} casts it to "
        "float32, which TensorFlow cannot do with text: make every value of 'bmi' a number (empty cells are fine), "
        "or, if text is expected there, parse or encode it in the module (tf.strings.to_number, "
        "tft.compute_and_apply_vocabulary).")
    assert not os.path.exists(paths["transformed"]), "refused before the Beam pipeline wrote anything"


class _Wrapped(Exception):
    pass


def _raised_from(message):
    """An error as Beam hands it over: TensorFlow's error, wrapped."""
    try:
        try:
            raise ValueError(message)
        except ValueError as error:
            raise _Wrapped("An error occurred while trying to apply the transformation") from error
    except _Wrapped as error:
        return error


CLEAN = "clean the column (or the module's handling of it) and run again."


@pytest.mark.parametrize("message, columns, what", [
    ("Name: <unknown>, Key: bmi, Index: 0.  Data types don't match. Data type: string but expected type: float",
     [], "column 'bmi' holds string values where the model expects float: " + CLEAN),
    ("Key: s5, Index: 3.  Data types don't match. Expected type: float, Actual type: string [Op:ParseExampleV2]",
     [], "column 's5' holds string values where the model expects float: " + CLEAN),
    ("Graph execution error: StringToNumberOp could not correctly convert string: n/a [[{{node StringToNumber}}]]",
     ["bmi"], "column 'bmi' has the value 'n/a', which is not a number (tf.strings.to_number in the module): " + CLEAN),
    ("Received a label value of -1 which is outside the valid range of [0, 3).  Label values: 2 -1", [],
     "the label 'cultivar' has the class id -1, outside the model's 3 classes (0 to 2); -1 is a label value the "
     "train split does not have, so its vocabulary does not either: give the train split every label value (more "
     "rows, other --split-ratios), or drop the rare ones."),
])
def test_tensorflows_data_errors_become_one_line_naming_the_column(message, columns, what):
    line = describe_data_error(_raised_from(message), "Transform", "cultivar",
                               lambda node: columns if node == "StringToNumber" else [])
    assert line == f"Transform failed on the data: {what}"


@pytest.mark.slow
def test_a_label_value_the_train_split_lacks_is_one_line_naming_the_label(tmp_path):
    """Wine with given splits: 15 eval rows have a cultivar the train split never has (its vocabulary maps it to -1)."""
    from components.stage_logic.schema import make_schema
    from components.stage_logic.statistics import generate_statistics
    from components.stage_logic.train import train_model
    from components.stage_logic.transform import transform_examples

    header, rows, label, _ = stranger_data._table("wine")
    train, evaluation = rows[::2], rows[1::2]
    for row in evaluation[:15]:
        row[header.index(label)] = "cultivar D"
    stranger_data.write_csv(str(tmp_path / "data" / "train" / "rows.csv"), header, train)
    stranger_data.write_csv(str(tmp_path / "data" / "eval" / "rows.csv"), header, evaluation)
    module = stranger_data.module_path("wine")
    paths = {name: str(tmp_path / name) for name in ("examples", "statistics", "schema", "graph", "transformed")}
    ingest_examples(str(tmp_path / "data" / "{SPLIT}" / "rows.csv"), paths["examples"])
    generate_statistics(paths["examples"], paths["statistics"])
    make_schema(paths["statistics"], paths["schema"], module=module)
    transform_examples(paths["examples"], paths["schema"], module, paths["graph"], paths["transformed"])
    with pytest.raises(StageError) as raised:
        train_model(paths["transformed"], paths["graph"], module, str(tmp_path / "model"), train_steps=20)
    assert str(raised.value) == (
        f"Training the model of --module {module!r} failed on the data: the label 'cultivar' has the class id -1, "
        "outside the model's 3 classes (0 to 2); -1 is a label value the train split does not have, so its "
        "vocabulary does not either: give the train split every label value (more rows, other --split-ratios), or "
        "drop the rare ones.")


def test_an_internal_error_is_not_taken_for_a_data_error():
    assert describe_data_error(_raised_from("'NoneType' object has no attribute 'shape'"), "Transform") is None


# --- End to end: a slice whose label never varies ---------------------------------------------------------

@pytest.fixture(scope="module")
def constant_slice_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("constant_slice")
    header, rows = constant_label_table()
    stranger_data.write_csv(stranger_data.span_path(str(tmp_path), "diabetes", 1), header, rows)
    summary = tmp_path / "summary.json"
    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--data",
         stranger_data.pattern(str(tmp_path), "diabetes"), "--module", DIABETES, "--model-name", "diabetes",
         "--serving-root", str(tmp_path / "serving"), "--statistics-root", str(tmp_path / "statistics"),
         "--pipeline-root", str(tmp_path / "outputs"), "--summary-json", str(summary)],
        capture_output=True, text=True, timeout=900)
    return tmp_path, process, (strict(summary.read_text()) if summary.exists() else None)


@pytest.mark.slow
def test_a_constant_slice_publishes_and_reports_its_r_squared_undefined(constant_slice_run):
    tmp_path, process, result = constant_slice_run
    output = process.stdout + process.stderr
    assert process.returncode == 0, output[-5000:]
    assert "Traceback" not in output and "SerializeToJsonError" not in output
    assert result["errors"] == []
    assert result["outputs"]["pushed_model"]["pushed"] is True
    blessing = result["outputs"]["blessing"]
    assert blessing["blessed"] is True
    female = {"slice": "sex:female", "model": "candidate", "metric": "r_squared", "reason": "its label is constant"}
    assert female in blessing["undefined"]
    assert blessing["slices"]["sex:female"]["candidate"] is None
    assert blessing["slices"]["sex:female"]["gate"] == "not gated: r_squared undefined (its label is constant)"
    assert blessing["slices"]["sex:male"]["candidate"] is not None
    assert "slice sex:female: r_squared undefined (its label is constant): not gated" in blessing["reasons"]
    # KFP's metrics hold numbers only: the overall R² is defined here, so it is there.
    metrics = result["outputs"]["eval_metrics"]
    assert all(json_values.is_finite_number(value) for value in metrics.values()) and "r_squared" in metrics
    assert "Undefined metrics:" in process.stdout
    assert "  - slice sex:female: r_squared of the candidate undefined (its label is constant)" in process.stdout
    [version] = glob.glob(str(tmp_path / "serving" / "diabetes" / "1" / "assets.extra" / "provenance.json"))
    record = strict(open(version).read())
    assert female in record["evaluation"]["undefined"]
    assert record["evaluation"]["slices"]["sex:female"]["candidate"] is None
    [report] = glob.glob(str(tmp_path / "outputs" / "*" / "evaluate" / "evaluation_report"))
    assert "slice sex:female: r_squared of the candidate undefined (its label is constant): not gated" in open(
        report).read()
    [markdown] = glob.glob(str(tmp_path / "outputs" / "*" / "evaluate" / "blessing_report"))
    assert "slice sex:female: r_squared undefined (its label is constant): not gated" in open(markdown).read()


@pytest.mark.slow
def test_every_json_file_of_the_run_is_strict_json(constant_slice_run):
    tmp_path, process, _ = constant_slice_run
    assert process.returncode == 0
    files = [path for path in glob.glob(str(tmp_path / "**" / "*.json"), recursive=True)]
    names = {os.path.basename(path) for path in files}
    assert {"summary.json", "executor_output.json", "blessing.json", "provenance.json",
            "feature_ranges.json"} <= names, names
    for path in files:
        with open(path) as source:
            strict(source.read())  # raises on NaN or Infinity
    outputs = glob.glob(str(tmp_path / "outputs" / "*" / "evaluate" / "executor_output.json"))
    assert len(outputs) == 1


@pytest.mark.slow
def test_an_undefined_overall_metric_is_not_blessed_and_every_output_stays_valid(constant_slice_run, tmp_path):
    """The published model evaluated on a span whose label is 0 everywhere: R² cannot judge it."""
    from google.protobuf import json_format, struct_pb2

    from components.stage_logic.evaluate import evaluate_model, kfp_metrics

    run_root, process, _ = constant_slice_run
    assert process.returncode == 0
    [model] = glob.glob(str(run_root / "outputs" / "*" / "train" / "model"))
    [schema] = glob.glob(str(run_root / "outputs" / "*" / "schema" / "schema"))
    header, rows = constant_label_table(0.0, 0.0)
    data = stranger_data.write_csv(str(tmp_path / "zero.csv"), header, rows)
    ingest_examples(data, str(tmp_path / "examples"))
    decision = evaluate_model(model, str(tmp_path / "examples"), schema, DIABETES, str(tmp_path / "evaluation"))
    assert decision["blessed"] is False
    assert decision["reasons"][0].startswith("r_squared on the whole eval split (")
    assert "candidate undefined (its label is constant): it cannot be judged against threshold >= 0.1: FAILS" in \
        decision["reasons"][0]
    assert decision["overall"]["candidate"]["r_squared"] is None
    assert decision["kfp_metrics_left_out"] == ["r_squared"]
    assert "r_squared" not in kfp_metrics(decision) and "mean_squared_error" in kfp_metrics(decision)
    json_format.ParseDict(decision, struct_pb2.Struct())  # what KFP does with artifact metadata
    json_values.dumps(decision)
    assert "left out of the KFP metrics (they take numbers only): r_squared" in blessing_markdown(decision)
    assert json.loads(json.dumps(decision)) == decision
