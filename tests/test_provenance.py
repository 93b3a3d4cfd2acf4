"""Provenance: the record push writes inside each published version, and `pipeline.py models`, on a local
serving root and on SeaweedFS (S3)."""
import hashlib
import json
import os

import pytest

from components.stage_logic.evaluate import evaluate_model
from components.stage_logic.push import push_model
from components.state.provenance import PROVENANCE_FILE, provenance_record, read_provenance
from components.state.serving_root import publish_model
from components.tf_serving.warmup import WARMUP_FOLDER
from object_stores import s3_client, s3_environment, seaweedfs
from pipeline import DEFAULT_MODULE as PENGUIN_MODULE
from pipeline_cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sha256(path):
    with open(path, "rb") as source:
        return hashlib.sha256(source.read()).hexdigest()


@pytest.fixture(scope="module")
def first_decision(trained_model, examples_dir, schema_dir, tmp_path_factory):
    """The trained demo model evaluated with nothing serving: blessed on the threshold."""
    return evaluate_model(trained_model[0], examples_dir[0], schema_dir, PENGUIN_MODULE,
                          str(tmp_path_factory.mktemp("evaluation")))


def record(decision, trained_model, examples_dir, schema_dir, run_name):
    return provenance_record(
        run={"name": run_name, "id": "17"},
        build={"spec_sha256": "f" * 64, "image": "living-pipeline:0.1.0", "git_revision": "abc123"},
        data={**examples_dir[1], "pattern": "data/span-{SPAN}/*.csv"}, schema_dir=schema_dir,
        schema_metadata={"origin": "curated", "schema_version": 0}, module=PENGUIN_MODULE,
        training={**trained_model[1], "contract": "build_model"}, decision=decision,
        hyperparameters='{"hidden_units": [16, 16]}', custom_config={"owner": "birds"})


def second(decision):
    """The same candidate decided against version 1 (as evaluate decides once version 1 serves)."""
    return {**decision, "baseline_version": 1, "baseline": "serving/penguins/1",
            "reasons": [*decision["reasons"][:1], "sparse_categorical_accuracy: candidate 0.97, serving model "
                        "version 1 0.97, tolerance 0.01: passes"]}


@pytest.mark.slow
def test_the_record_inside_a_published_version_names_its_inputs(first_decision, trained_model, examples_dir,
                                                                  schema_dir, tmp_path):
    root = str(tmp_path / "serving")
    result = push_model(trained_model[0], first_decision, root, "penguins",
                        record(first_decision, trained_model, examples_dir, schema_dir, "run-a"))
    assert result["pushed"] and result["provenance"] == f"{root}/penguins/1/{WARMUP_FOLDER}/{PROVENANCE_FILE}"
    saved = read_provenance(result["path"])
    assert saved["schema"]["sha256"] == sha256(os.path.join(schema_dir, "schema.pbtxt"))
    assert saved["module"]["sha256"] == sha256(os.path.join(REPO, "components", "penguins", "module.py"))
    assert saved["data"]["row_counts"] == examples_dir[1]["row_counts"]
    assert saved["data"]["pattern"] == "data/span-{SPAN}/*.csv" and saved["data"]["span"] == 0
    assert saved["training"]["hyperparameters"] == {"hidden_units": [16, 16]}
    assert saved["training"]["custom_config"] == {"owner": "birds"}
    assert saved["training"]["metrics"] == trained_model[1]["final"]
    assert saved["evaluation"]["overall"] == first_decision["overall"]["candidate"]
    assert set(saved["evaluation"]["slices"]) >= {"Overall", "island:Biscoe", "sex:female"}
    assert saved["blessing"] == {"blessed": True, "reasons": first_decision["reasons"], "baseline_version": 0,
                                 "baseline": ""}
    assert saved["run"]["name"] == "run-a" and saved["pipeline"]["package_version"] == "0.1.0"
    # The model artifact itself is left as it was: the record is in the published copy only.
    assert not os.path.exists(os.path.join(trained_model[0], WARMUP_FOLDER, PROVENANCE_FILE))


@pytest.mark.slow
def test_models_lists_the_published_versions_newest_first(first_decision, trained_model, examples_dir, schema_dir,
                                                          tmp_path, capsys):
    root = str(tmp_path / "serving")
    publish_model(trained_model[0], root, "penguins")  # published before versions had records
    push_model(trained_model[0], {**first_decision, "baseline_version": 1}, root, "penguins",
               record(first_decision, trained_model, examples_dir, schema_dir, "run-a"))
    push_model(trained_model[0], {**second(first_decision), "baseline_version": 2}, root, "penguins",
               record(second(first_decision), trained_model, examples_dir, schema_dir, "run-b"))
    assert main(["models", "--serving-root", root]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["version", "published", "(UTC)", "span", "metric", "baseline", "blessing", "reason"]
    assert [line.split()[0] for line in lines[1:]] == ["3", "2", "1"]
    accuracy = first_decision["overall"]["candidate"]["sparse_categorical_accuracy"]
    assert f"sparse_categorical_accuracy {accuracy:.4f}  version 1" in lines[1]
    assert f"sparse_categorical_accuracy {accuracy:.4f}  none" in lines[2]
    assert lines[1].endswith("; ".join(second(first_decision)["reasons"]))
    assert lines[3].split()[1:] == ["no", "provenance", "record"]
    assert main(["models", "--serving-root", root, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(row["version"], (row["record"] or {}).get("run", {}).get("name")) for row in listed] == [
        (3, "run-b"), (2, "run-a"), (1, None)]


def test_models_with_nothing_published(tmp_path, capsys):
    assert main(["models", "--serving-root", str(tmp_path), "--model-name", "owls"]) == 0
    assert capsys.readouterr().out.strip() == f"No published versions of 'owls' under {tmp_path}."


@pytest.mark.slow
def test_models_lists_versions_in_a_bucket(first_decision, trained_model, examples_dir, schema_dir, tmp_path,
                                           monkeypatch, capsys):
    with seaweedfs(str(tmp_path)) as endpoint:
        s3_client(endpoint).create_bucket(Bucket="models")
        for name, value in s3_environment(endpoint).items():
            monkeypatch.setenv(name, value)
        root = "s3://models/serving"
        for decision, run_name in ((first_decision, "run-a"), (second(first_decision), "run-b")):
            result = push_model(trained_model[0], decision, root, "penguins",
                                record(decision, trained_model, examples_dir, schema_dir, run_name))
            assert result["pushed"], result["reason"]
        assert read_provenance(f"{root}/penguins/2")["run"]["name"] == "run-b"
        assert main(["models", "--serving-root", root]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in lines[1:]] == ["2", "1"]
        assert "version 1" in lines[1] and "none" in lines[2]
