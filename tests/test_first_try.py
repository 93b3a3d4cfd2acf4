"""What broke a stranger's first runs (issue 12), one test per failure, on the real libraries.

1. An inferred schema passes the span it came from (eval-only categories and columns).
2. Later spans are held to the kept schema; drift is measured on every feature by default.
3-5. Blessing: decided on the overall metric, slices gate only when asked and only when big enough,
   `--threshold 0` blesses a first model, regression is judged by R² (scale-free).
6. Classifier outputs: softmax, logits, one sigmoid, one logit; anything else stops at train.
7. A split with no rows stops ingest.  8. A missing label is named.
9-11. One line for every failure, a traceback only in the stage's log, line breaks cannot cut it.
"""
import json
import os
import subprocess
import sys

import pytest
import tf_keras as keras

from components.errors import StageError, describe_user_error, error_line
from components.evaluation.blessing import decide, value_threshold
from components.platform.local_run import StageLog, validation_lines
from components.stage_logic.ingest import ingest_examples
from components.stage_logic.schema import make_schema
from components.stage_logic.statistics import generate_statistics
from components.stage_logic.train import LOGIT, LOGITS, SIGMOID, SOFTMAX, VALUE, output_kind
from components.stage_logic.validate import validate_statistics
from components.state.statistics_store import conclude_span_verdict, kept_schema, model_store
from components.training.user_module import load_user_module
from stranger_data import write_csv

MODULE = "my_module.py"
HEADER = ("colour", "size", "extra", "weight", "label")


def span_of(tmp_path, name, train_rows, eval_rows, header=("colour", "size", "extra", "weight", "label")):
    """A span with given train and eval files -> its statistics folder."""
    folder = tmp_path / name
    write_csv(folder / "data" / "train" / "rows.csv", header, train_rows)
    write_csv(folder / "data" / "eval" / "rows.csv", header, eval_rows)
    ingest_examples(str(folder / "data" / "{SPLIT}" / "rows.csv"), str(folder / "examples"))
    generate_statistics(str(folder / "examples"), str(folder / "statistics"))
    return str(folder / "statistics")


def rows(count, colours=("red", "blue"), extra=lambda i: "", size=lambda i: i % 7 + 1.5):
    return [[colours[i % len(colours)], size(i), extra(i), 40 + i % 11, "yes" if i % 3 else "no"]
            for i in range(count)]


def user_module(tmp_path, text):
    path = tmp_path / MODULE
    path.write_text(text)
    return str(path)


MODEL = "colours"
LABELLED = "LABEL_KEY = 'label'\nPROBLEM_TYPE = 'classification'\ndef preprocessing_fn(inputs):\n" \
           "    return inputs\ndef build_model(tf_transform_output):\n    return None\n"


@pytest.fixture(scope="module")
def first_span(tmp_path_factory):
    """Span 1: a category and a column that only the eval split has; its schema inferred and kept."""
    tmp_path = tmp_path_factory.mktemp("first")
    statistics = span_of(tmp_path, "span-1", rows(200),
                         rows(100, colours=("red", "blue", "green")) + [["red", 2.5, "note", 41, "no"]])
    store, schema_dir = str(tmp_path / "store"), str(tmp_path / "schema")
    metadata = make_schema(statistics, schema_dir, module=user_module(tmp_path, LABELLED), statistics_root=store,
                           model_name=MODEL, span=1)
    result = validate_statistics(statistics, schema_dir, str(tmp_path / "anomalies"), span=1,
                                 statistics_root=store, schema_metadata=metadata, model_name=MODEL)
    conclude_span_verdict(model_store(store, MODEL), 1, blessed=True, why="")
    return tmp_path, store, metadata, result


def test_an_inferred_schema_passes_the_span_it_came_from(first_span):
    tmp_path, store, metadata, result = first_span
    assert metadata["origin"] == "inferred" and metadata["keep_as_version"] == 1
    assert result["anomalies"] == []
    assert result["kept_schema"] == os.path.join(store, MODEL, "schema", "1", "schema.pbtxt")
    version, text, origin = kept_schema(model_store(store, MODEL))
    assert version == 1 and 'value: "green"' in text and 'name: "extra"' in text
    assert origin["span"] == 1 and origin["location"] == result["kept_schema"]


def later_span(tmp_path, first_span, name, train_rows, eval_rows, header=("colour", "size", "extra", "weight", "label"),
               update=False):
    _, store, _, _ = first_span
    statistics = span_of(tmp_path, name, train_rows, eval_rows, header)
    metadata = make_schema(statistics, str(tmp_path / f"{name}-schema"), module=user_module(tmp_path, LABELLED),
                           statistics_root=store, update_schema=update, model_name=MODEL)
    return statistics, metadata


def test_a_later_span_is_held_to_the_kept_schema(tmp_path, first_span):
    _, store, _, _ = first_span
    # A new common category, the size column turned to text, and the weight column gone.
    header = ("colour", "size", "extra", "label")
    changed = [[colour, "big" if i % 3 == 0 else size, extra, label]
               for i, (colour, size, extra, _, label) in enumerate(rows(200, colours=("red", "purple")))]
    statistics, metadata = later_span(tmp_path, first_span, "span-2", changed, changed[:90], header)
    assert metadata["origin"] == "kept" and metadata["schema_version"] == 1
    with pytest.raises(StageError) as raised:
        validate_statistics(statistics, str(tmp_path / "span-2-schema"), str(tmp_path / "a"), span=2,
                            statistics_root=store, schema_metadata=metadata, model_name=MODEL)
    message = str(raised.value)
    kept = os.path.join(store, MODEL, "schema", "1", "schema.pbtxt")
    assert message.splitlines()[0] == (
        f"Span 2 disagrees with the kept schema, version 1 of model 'colours' (inferred from span 1, at {kept}), on "
        "3 column(s): colour (ENUM_TYPE_UNEXPECTED_STRING_VALUES), size (UNEXPECTED_DATA_TYPE), weight "
        "(SCHEMA_MISSING_COLUMN). If the change is intended, rerun with --update-schema to keep a schema inferred "
        "from this span; if this is another data set, give it its own --model-name.")
    assert "feature 'colour': ENUM_TYPE_UNEXPECTED_STRING_VALUES" in message
    assert "feature 'size': UNEXPECTED_DATA_TYPE" in message
    assert "feature 'weight': SCHEMA_MISSING_COLUMN" in message
    assert kept_schema(model_store(store, MODEL))[0] == 1, "a refused span changes nothing in the store"


def test_a_rare_new_category_is_tolerated_and_a_scaled_feature_drifts(tmp_path, first_span):
    _, store, _, _ = first_span
    scaled = rows(300, size=lambda i: 3 * (i % 7 + 1.5))
    scaled[5][0] = "violet"  # one value in 300: within the domain mass of 0.99
    statistics, metadata = later_span(tmp_path, first_span, "span-3", scaled, scaled[:100])
    result = validate_statistics(statistics, str(tmp_path / "span-3-schema"), str(tmp_path / "a"),
                                 blocking=False, span=3, statistics_root=store, schema_metadata=metadata,
                                 model_name=MODEL)
    kinds = {(row["feature"], row["kind"]) for row in result["anomalies"]}
    assert kinds == {("size", "NORMALIZED_WASSERSTEIN_HIGH")}
    by_feature = {row["feature"]: row for row in result["drift"]}
    assert by_feature["size"]["measure"] == "normalized Wasserstein distance"
    assert by_feature["size"]["distance"] > 1 and by_feature["size"]["outcome"] == "DRIFT"
    assert by_feature["colour"]["measure"] == "L-infinity distance" and by_feature["colour"]["outcome"] == "ok"
    assert result["checks"]["drift"].startswith("4 of 5 features checked against span 1")
    assert by_feature["extra"]["outcome"] == "not checked: no values in either data set"


def test_update_schema_accepts_a_deliberate_change_as_the_next_version(tmp_path, first_span):
    _, store, _, _ = first_span
    # One value in five is a new colour: beyond the domain's tolerance, and drift against span 1 (the last accepted:
    # span 3 was let through with --warn-on-anomalies), which the same deliberate change exempts.
    purple = rows(200, colours=("red", "blue", "red", "purple", "blue"))
    statistics, metadata = later_span(tmp_path, first_span, "span-4", purple, purple[:90], update=True)
    assert metadata["origin"] == "updated" and metadata["keep_as_version"] == 2
    with pytest.raises(StageError, match=r"^Span 4 drifted from span 1 on 1 column\(s\): colour \(the share of "
                                         r"'purple' went from 0.0% to 20.0% \(L-infinity distance 0.2 > 0.1"):
        validate_statistics(statistics, str(tmp_path / "span-4-schema"), str(tmp_path / "refused"), span=4,
                            statistics_root=store, schema_metadata=metadata, model_name=MODEL)
    result = validate_statistics(statistics, str(tmp_path / "span-4-schema"), str(tmp_path / "a"), span=4,
                                 statistics_root=store, schema_metadata=metadata, model_name=MODEL,
                                 drift_ignore=["colour"])
    assert result["anomalies"] == [] and result["drift_baseline_span"] == 1
    assert result["checks"]["drift"].endswith("none above its threshold; ignored: colour")
    version, text, _ = kept_schema(model_store(store, MODEL))
    assert version == 2 and 'value: "purple"' in text


def test_a_missing_label_is_named_with_the_columns(tmp_path):
    statistics = span_of(tmp_path, "span", rows(60), rows(30))
    module = user_module(tmp_path, LABELLED.replace("'label'", "'outcome'"))
    with pytest.raises(StageError, match=r"The label 'outcome' \(LABEL_KEY of --module .*my_module.py'\) is not a "
                                         r"column of the data: the data's columns are colour, label, size, weight"):
        make_schema(statistics, str(tmp_path / "schema"), module=module)


def test_an_empty_split_stops_ingest_with_its_counts(tmp_path):
    data = write_csv(tmp_path / "three.csv", ["x", "label"], [[1, "a"], [2, "b"], [3, "a"]])
    with pytest.raises(StageError) as raised:
        ingest_examples(data, str(tmp_path / "examples"))
    message = str(raised.value)
    assert message.startswith("The eval split has no rows: 3 rows split with --split-ratios 'train:2,eval:1' "
                              "gave train 3, eval 0")


SLICES = {
    "Overall": {"candidate": {"accuracy": 0.90, "example_count": 400}, "baseline": {"accuracy": 0.89}},
    "site:north": {"candidate": {"accuracy": 0.93, "example_count": 389}, "baseline": {"accuracy": 0.90}},
    "site:island": {"candidate": {"accuracy": 0.45, "example_count": 11}, "baseline": {"accuracy": 0.82}},
}


def test_blessing_is_decided_on_the_overall_metric_and_explained_with_it():
    blessed, reasons, rows_ = decide(SLICES, "accuracy", 0.8, 0.01, "serving model version 3")
    assert blessed
    assert reasons == [
        "accuracy on the whole eval split (400 examples): candidate 0.9000, threshold >= 0.8: passes",
        "accuracy on the whole eval split (400 examples): candidate 0.9000, serving model version 3 0.8900, "
        "difference +0.0100, at most 0.01 worse allowed (--tolerance): passes"]
    assert rows_["site:island"]["difference"] == pytest.approx(-0.37)
    assert rows_["site:island"]["gate"] == "" and rows_["Overall"]["gate"] == "decides"


def test_slices_gate_only_when_asked_and_only_when_big_enough():
    blessed, reasons, rows_ = decide(SLICES, "accuracy", 0.8, 0.01, slice_threshold=0.5, min_slice_examples=30)
    assert blessed, "the 11-example slice is reported, not decisive"
    assert rows_["site:island"]["gate"] == "not gated: under 30 examples"
    assert reasons[-1] == ("slice threshold >= 0.5 (--slice-threshold) on 1 slices with at least 30 examples; "
                           "too small to gate: site:island (11)")
    blessed, reasons, rows_ = decide(SLICES, "accuracy", 0.8, 0.01, slice_threshold=0.5, min_slice_examples=10)
    assert not blessed and rows_["site:island"]["gate"] == "FAILS: decides"
    assert "accuracy on slice site:island (11 examples): candidate 0.4500, slice threshold >= 0.5: FAILS" in reasons


def test_threshold_zero_blesses_a_first_model_and_says_so():
    first = {"Overall": {"candidate": {"accuracy": 0.41, "example_count": 50}}}
    blessed, reasons, _ = decide(first, "accuracy", 0.0, 0.01)
    assert blessed
    assert reasons == ["no value threshold (--threshold 0) and no model is serving yet: blessed without a gate"]


def test_regression_is_judged_by_a_scale_free_default():
    assert value_threshold(-1, "regression") == 0.1 and value_threshold(-1, "classification") == 0.8
    assert value_threshold(0, "regression") == 0 and value_threshold(0.6, "regression") == 0.6
    explained = {"Overall": {"candidate": {"r_squared": 0.73, "example_count": 120}}}
    assert decide(explained, "r_squared", value_threshold(-1, "regression"), 0.01)[0]


def small_model(units, activation, loss="sparse_categorical_crossentropy"):
    inputs = keras.Input(shape=(3,), name="x_xf")
    model = keras.Model(inputs, keras.layers.Dense(units, activation=activation)(inputs))
    model.compile(loss=loss)
    return model


@pytest.mark.parametrize("units,activation,loss,kind", [
    (3, "softmax", "sparse_categorical_crossentropy", SOFTMAX),
    (3, None, keras.losses.SparseCategoricalCrossentropy(from_logits=True), LOGITS),
    (1, "sigmoid", "binary_crossentropy", SIGMOID),
    (1, None, keras.losses.BinaryCrossentropy(from_logits=True), LOGIT),
])
def test_accepted_classifier_outputs(units, activation, loss, kind):
    classes = 3 if units == 3 else 2
    assert output_kind(small_model(units, activation, loss), "classification", classes, MODULE) == (kind, classes)


def test_a_regression_model_outputs_one_value():
    assert output_kind(small_model(1, None, "mse"), "regression", 0, MODULE) == (VALUE, 0)
    with pytest.raises(StageError, match="a regression model outputs one value per example"):
        output_kind(small_model(2, None, "mse"), "regression", 0, MODULE)


@pytest.mark.parametrize("units,activation,classes,message", [
    (3, "relu", 3, "a classifier's output layer ends in 'relu' with shape \\(None, 3\\)"),
    (4, "softmax", 3, "the model outputs 4 classes \\(shape \\(None, 4\\)\\) but the label has 3 values"),
    (1, "sigmoid", 3, "the model outputs 2 classes .* but the label has 3 values"),
])
def test_other_classifier_outputs_stop_at_train_with_one_line(units, activation, classes, message):
    with pytest.raises(StageError, match=message):
        output_kind(small_model(units, activation), "classification", classes, MODULE)


def test_a_module_with_a_syntax_error_is_named_with_its_line(tmp_path):
    path = user_module(tmp_path, LABELLED + "def broken(:\n    pass\n")
    with pytest.raises(StageError, match=r"syntax error in .*my_module.py, line 7: .*fix the module"):
        load_user_module(path)


def test_an_error_raised_in_module_code_names_the_file_line_and_function(tmp_path):
    path = user_module(tmp_path, LABELLED + "def build_model(tf_transform_output):\n"
                                            "    raise ValueError('no layers yet')\n")
    module = load_user_module(path)
    with pytest.raises(ValueError) as raised:
        module.build_model(None)
    assert describe_user_error(raised.value) == (
        f"--module {path!r}: ValueError: no layers yet in build_model ({path}, line 8): fix the module.")


def test_a_failing_stage_prints_one_line_and_keeps_the_traceback_for_its_log():
    stage = ("from components.errors import reported_stage\n"
             "with reported_stage():\n"
             "    {}['missing']\n")
    process = subprocess.run([sys.executable, "-c", stage], capture_output=True, text=True, timeout=120)
    assert process.returncode == 1
    log = StageLog(open(os.devnull, "w"))
    log.write("Executing task 'transform'\n" + process.stderr)
    log.finish("")
    assert log.errors == ["transform: KeyError: 'missing' (unexpected: the traceback is in the stage's log; "
                          "please report it if the inputs look right)"]
    assert any("Traceback" in line for line in log.logs["transform"])


def test_a_beam_job_that_failed_on_its_workers_is_one_line_with_the_workers_error():
    """Beam's portable runner puts the worker's traceback into its error's message; the line keeps its last error."""
    stage = ("from components.errors import reported_stage\n"
             "with reported_stage():\n"
             "    raise RuntimeError('Pipeline job-1 failed in state FAILED: Error running pipeline.\\n'\n"
             "                       'Traceback (most recent call last):\\n  File \"w.py\", line 3, in run\\n'\n"
             "                       '    x > 1\\nTypeError: bad compare [while running Decode]\\n')\n")
    process = subprocess.run([sys.executable, "-c", stage], capture_output=True, text=True, timeout=120)
    log = StageLog(open(os.devnull, "w"))
    log.write("Executing task 'transform'\n" + process.stderr)
    log.finish("")
    assert log.errors == ["transform: RuntimeError: Pipeline job-1 failed in state FAILED: Error running pipeline. "
                          "TypeError: bad compare [while running Decode] (unexpected: the traceback is in the "
                          "stage's log; please report it if the inputs look right)"]


def test_the_terminal_shows_no_traceback_and_a_line_break_cannot_cut_an_error(tmp_path):
    terminal = tmp_path / "terminal.txt"
    with open(terminal, "w") as stream:
        log = StageLog(stream)
        log.write("Executing task 'ingest'\n    reading\n    Traceback (most recent call last):\n"
                  "      File \"x.py\", line 1, in <module>\n    ValueError: boom\n    still here\n")
        log.write("    " + error_line("rows.csv row 3: the value 'a\nb' is not a number") + "\n")
        log.write("Task 'ingest' finished with status FAILURE\nExecuting task 'push'\n")
        log.write("Task 'push' finished with status FAILURE\n")
        run_dir = tmp_path / "run"
        log.finish(str(run_dir))
    shown = terminal.read_text()
    assert "Traceback" not in shown and "boom" not in shown and "still here" in shown
    assert log.errors[0] == (f"ingest: rows.csv row 3: the value 'a (log: {run_dir}/ingest/stage.log)\nb' "
                             "is not a number")
    assert log.errors[1].startswith("push: the stage failed without an error message")
    assert "ValueError: boom" in (run_dir / "ingest" / "stage.log").read_text()


def test_the_summary_lists_every_feature_checked_and_the_warnings():
    validation = {"schema": "kept schema version 2", "anomaly_count": 1,
                  "checks": {"drift": "2 of 3 features checked against span 4", "skew": "NOT CHECKED: no serving"},
                  "drift": [{"feature": "size", "distance": 0.61, "threshold": 0.25, "outcome": "ABOVE THRESHOLD"},
                            {"feature": "colour", "distance": 0.02, "threshold": 0.25, "outcome": "ok"},
                            {"feature": "rain", "distance": 0.3, "threshold": 0.25, "outcome": "ok", "p_value": 0.36,
                             "judged": True},
                            {"feature": "note", "distance": None, "threshold": None, "outcome": "not checked"},
                            {"feature": "tiny", "distance": 0.9, "threshold": 0.25, "judged": False,
                             "outcome": "not checked: too few rows to judge drift"}],
                  "skew": [], "warnings": ["  - train: feature 'size': COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"]}
    assert validation_lines(validation) == [
        "Schema: kept schema version 2",
        "Drift: 2 of 3 features checked against span 4",
        "  size 0.610 > 0.25; rain 0.300 > 0.25 but within chance (p=0.36); colour 0.020 <= 0.25; not checked: "
        "note, tiny",
        "Skew: NOT CHECKED: no serving",
        "Warnings (--warn-on-anomalies): 1 anomalies did not stop the run",
        "  - train: feature 'size': COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"]
    assert json.loads(error_line("a\nb").split(": ", 1)[1]) == "a\nb"


def test_a_header_column_empty_in_the_first_span_is_no_new_column_alarm_when_filled_in(tmp_path):
    """A column in span 1's header with no value in any row cannot be in the schema inferred from it; span 2 filling
    it in is said so, not reported as SCHEMA_NEW_COLUMN. A column never in the header still is."""
    store, module = str(tmp_path / "store"), user_module(tmp_path, LABELLED)

    def span(number, header, train_rows, eval_rows):
        folder = tmp_path / f"span-{number}"
        write_csv(folder / "data" / "train" / "rows.csv", header, train_rows)
        write_csv(folder / "data" / "eval" / "rows.csv", header, eval_rows)
        ingested = ingest_examples(str(folder / "data" / "{SPLIT}" / "rows.csv"), str(folder / "examples"))
        generate_statistics(str(folder / "examples"), str(folder / "statistics"))
        empty = [column for column, kind in ingested["column_types"].items() if kind == "missing"]
        metadata = make_schema(str(folder / "statistics"), str(folder / "schema"), module=module,
                               statistics_root=store, model_name="filled", span=number, empty_columns=empty)
        return lambda **flags: validate_statistics(
            str(folder / "statistics"), str(folder / "schema"), str(folder / "anomalies"), span=number,
            statistics_root=store, schema_metadata=metadata, model_name="filled", **flags)

    assert span(1, HEADER, rows(200), rows(100))()["anomalies"] == []
    conclude_span_verdict(model_store(store, "filled"), 1, blessed=True, why="")
    _, text, origin = kept_schema(model_store(store, "filled"))
    assert origin["empty_columns"] == ["extra"] and 'name: "extra"' not in text

    filled = rows(200, extra=lambda i: "note" if i % 4 == 0 else "")
    result = span(2, HEADER, filled, filled[:100])(drift_ignore=[])
    assert result["anomalies"] == []
    assert result["checks"]["filled_in_columns"].startswith("extra: in the header of span 1 but empty there")

    header = (*HEADER, "remark")
    refused = span(3, header, [[*row, "x"] for row in rows(200)], [[*row, "x"] for row in rows(100)])
    with pytest.raises(StageError, match=r"feature 'remark': SCHEMA_NEW_COLUMN"):
        refused()
