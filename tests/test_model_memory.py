"""What the pipeline keeps between runs belongs to a model: two data sets run from one folder with default
flags keep apart, a model name cannot leave its roots, and a name shared by two different models is one
clear line. The data is scikit-learn's bundled tables with real data's mess (tests/stranger_data.py)."""
import json
import os
import subprocess
import sys

import pytest

import stranger_data
from components.errors import StageError
from components.state.model_names import check_model_name, default_model_name
from components.state.provenance import PROVENANCE_FILE, check_same_prediction
from components.state.serving_root import publish_model
from components.state.statistics_store import kept_schema, model_store, read_span_verdict, stored_spans
from components.tf_serving.warmup import WARMUP_FOLDER
from helpers import REPO
from pipeline_cli import main


def run_in(folder, *flags, summary="summary.json"):
    """`pipeline.py run` started in `folder` with its default roots (./serving, ./statistics)."""
    process = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "run", *flags,
                              "--summary-json", summary], cwd=folder, capture_output=True, text=True, timeout=900)
    path = os.path.join(folder, summary)
    return process, (json.load(open(path)) if os.path.exists(path) else None)


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", ".hidden", "", "x" * 64, "naïve", "a b"])
def test_a_name_that_could_leave_its_folder_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--model-name", name, "--summary-json", "summary.json"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --model-name "), lines
    assert "letters, digits, '_', '-' and '.', not starting with '.', at most 63 characters" in lines[0]
    assert sorted(os.listdir(tmp_path)) == [], "nothing is written"


def test_models_and_submit_refuse_the_same_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["models", "--model-name", "../x"]) == 1
    assert capsys.readouterr().err.startswith("Error: --model-name '../x' is not a model name")
    assert main(["submit", "--host", "http://127.0.0.1:9", "--param", "serving_root=/tmp/s",
                 "--param", "model_name=a/b"]) == 1
    assert capsys.readouterr().err.startswith("Error: --param model_name 'a/b' is not a model name")
    assert os.listdir(tmp_path) == []


def test_the_default_name_comes_from_the_module(tmp_path):
    assert default_model_name("components.penguins.module") == "penguins"  # its MODEL_NAME
    assert default_model_name(stranger_data.module_path("wine")) == "wine_module"  # its file's name
    declared = tmp_path / "fares.py"
    declared.write_text('MODEL_NAME: str = "taxi-fares.v2"\nLABEL_KEY = "fare"\n')
    assert default_model_name(str(declared)) == "taxi-fares.v2"
    declared.write_text('MODEL_NAME = "../evil"\n')
    with pytest.raises(StageError, match=r"MODEL_NAME of --module '.*fares.py' '../evil' is not a model name"):
        default_model_name(str(declared))
    assert check_model_name("Penguins_2-b.v1") == "Penguins_2-b.v1"


def test_a_serving_model_that_predicts_another_label_is_one_line(tmp_path):
    version = tmp_path / "serving" / "shared" / "1"
    (version / WARMUP_FOLDER).mkdir(parents=True)
    (version / WARMUP_FOLDER / PROVENANCE_FILE).write_text(json.dumps(
        {"module": {"label_key": "cultivar", "problem_type": "classification"}}))
    check_same_prediction(str(version), 1, "cultivar", "classification", "wine_module.py")  # the same: fine
    with pytest.raises(StageError) as raised:
        check_same_prediction(str(version), 1, "progression", "regression", "diabetes_module.py")
    assert str(raised.value) == (
        "The serving model's version 1 predicts 'cultivar' (classification), but --module 'diabetes_module.py' "
        "predicts 'progression' (regression): they are different models under one name. Give this one its own "
        "--model-name (or a MODEL_NAME in its module).")


@pytest.mark.slow
def test_two_data_sets_in_one_folder_keep_their_own_schema_spans_and_versions(tmp_path):
    """A classifier (wine) and a regression (diabetes), default flags, one working folder; then wine again."""
    data = tmp_path / "data"
    for name in ("wine", "diabetes"):
        stranger_data.write_span(str(data), name, 1)
        stranger_data.write_span(str(data), name, 2)

    def run(name, span):
        return run_in(tmp_path, "--data", stranger_data.pattern(str(data), name), "--span", str(span),
                      "--module", stranger_data.module_path(name), summary=f"{name}-{span}.json")

    wine, wine_result = run("wine", 1)
    assert wine.returncode == 0, wine.stdout[-3000:] + wine.stderr[-3000:]
    diabetes, diabetes_result = run("diabetes", 1)
    assert diabetes.returncode == 0, diabetes.stdout[-3000:] + diabetes.stderr[-3000:]
    again, again_result = run("wine", 2)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]

    serving, statistics = tmp_path / "serving", str(tmp_path / "statistics")
    assert sorted(os.listdir(serving)) == ["diabetes_module", "wine_module"]
    assert diabetes_result["outputs"]["pushed_model"]["path"] == str(serving / "diabetes_module" / "1")
    assert diabetes_result["outputs"]["blessing"]["baseline_version"] == 0, "another model's versions are no baseline"
    # Each data set was validated against its own kept schema only, which says where it came from.
    for name, label in (("wine_module", "cultivar"), ("diabetes_module", "progression")):
        version, text, origin = kept_schema(model_store(statistics, name))
        assert version == 1 and f'name: "{label}"' in text and origin["span"] == 1
    assert diabetes_result["outputs"]["anomalies"]["anomaly_count"] == 0
    assert "SCHEMA_MISSING_COLUMN" not in diabetes.stdout + diabetes.stderr
    # The third run compares with wine's own published version and wine's own span.
    blessing = again_result["outputs"]["blessing"]
    assert blessing["baseline_version"] == 1 and blessing["baseline"] == str(serving / "wine_module" / "1")
    validation = again_result["outputs"]["anomalies"]
    assert validation["drift_baseline_span"] == 1
    assert "the last span of model 'wine_module' before 2 whose data was accepted" in validation["checks"]["drift"]
    assert stored_spans(model_store(statistics, "wine_module")) == [1, 2]
    assert stored_spans(model_store(statistics, "diabetes_module")) == [1]
    assert read_span_verdict(model_store(statistics, "diabetes_module"), 1)["accepted"] is True


def test_models_lists_every_model_of_the_serving_root_by_default(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"not read")
    root = str(tmp_path / "serving")
    for name in ("wine_module", "diabetes_module", "wine_module"):
        publish_model(str(model), root, name)
    assert main(["models", "--serving-root", root]) == 0
    out = capsys.readouterr().out
    assert "\ndiabetes_module\n" in out and "\nwine_module\n" in out
    assert main(["models", "--serving-root", root, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(row["model"], row["version"]) for row in listed] == [
        ("diabetes_module", 1), ("wine_module", 2), ("wine_module", 1)]
    assert main(["models", "--serving-root", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.strip() == f"No published models under {tmp_path / 'empty'}."
