"""The two training contracts: TFX's run_fn (a TFX penguin-style module) and build_model, with
hyperparameters, custom config, TensorBoard logs, the serving-signature check and warm-up requests."""
import hashlib
import os
import tempfile

import pytest
import tensorflow as tf

from components.errors import StageError
from components.penguins import curated_schema_path
from components.stage_logic.evaluate import evaluate_model
from components.stage_logic.ingest import ingest_examples
from components.stage_logic.schema import make_schema
from components.stage_logic.statistics import generate_statistics
from components.stage_logic.train import SERVING_SIGNATURE, train_model
from components.stage_logic.transform import transform_examples
from components.tf_serving.warmup import raw_examples, read_warmup_requests

# Every test here trains a model, or runs on a trained one.
pytestmark = pytest.mark.slow

HERE = os.path.dirname(os.path.abspath(__file__))
TFX_MODULE = os.path.join(HERE, "tfx_penguin_module.py")
DEMO_MODULE = "components.penguins.module"


@pytest.fixture(scope="module")
def tfx_inputs(tmp_path_factory):
    """The demo data ingested and transformed by the TFX-style module's preprocessing_fn."""
    root = tmp_path_factory.mktemp("tfx")
    paths = {name: str(root / name) for name in ("examples", "statistics", "schema", "graph", "transformed")}
    ingest_examples("", paths["examples"])
    generate_statistics(paths["examples"], paths["statistics"])
    make_schema(paths["statistics"], paths["schema"], curated_schema_path())
    transform_examples(paths["examples"], paths["schema"], TFX_MODULE, paths["graph"], paths["transformed"])
    return paths


def train(paths, module, model_dir, steps, **options):
    return train_model(paths["transformed"], paths["graph"], module, str(model_dir), steps,
                       examples_dir=paths["examples"], schema_dir=paths["schema"], **options)


def dense_layer_count(model_dir):
    """How many Dense layers a saved model has: each has one kernel among its trainable variables."""
    return sum(variable.name.split("/")[-1].startswith("kernel")
               for variable in tf.saved_model.load(model_dir).trainable_variables)


def test_tfx_style_module_trains_serves_and_is_evaluated(tfx_inputs, tmp_path):
    model_dir, runs = tmp_path / "model", tmp_path / "runs"
    result = train(tfx_inputs, TFX_MODULE, model_dir, 300, model_run_dir=str(runs))
    assert result["contract"] == "run_fn"
    assert result["prediction_key"] == "outputs" and result["output"] == "softmax"
    assert result["hyperparameters"] == {} and result["class_count"] == 3
    with open(TFX_MODULE, "rb") as source:
        assert result["module_sha256"] == hashlib.sha256(source.read()).hexdigest()
    # The module's TensorBoard callback wrote to model_run_dir; the final metrics are read back from it.
    assert tf.io.gfile.glob(str(runs / "train" / "events.out.tfevents.*"))
    assert result["final"]["val_sparse_categorical_accuracy"] > 0.8
    # Its own serving signature answers raw tf.Examples.
    served = tf.saved_model.load(str(model_dir)).signatures[SERVING_SIGNATURE](
        examples=tf.constant(raw_examples(tfx_inputs["examples"], count=8)))
    assert served["outputs"].shape == (8, 3)
    decision = evaluate_model(str(model_dir), tfx_inputs["examples"], tfx_inputs["schema"], TFX_MODULE,
                              str(tmp_path / "evaluation"), output_kind=result["output"])
    assert decision["blessed"], decision["reasons"]
    assert decision["overall"]["candidate"]["sparse_categorical_accuracy"] > 0.8
    # The metrics evaluate configures, and no others (not the Keras model's own loss and metrics).
    assert set(decision["overall"]["candidate"]) == {"example_count", "sparse_categorical_accuracy"}
    assert decision["classes"] == ["Adelie", "Gentoo", "Chinstrap"]
    assert {"island:Biscoe", "island:Dream", "island:Torgersen"} <= set(decision["slices"])


def test_warmup_requests_parse_as_prediction_logs_and_serve(tfx_inputs, tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    train(tfx_inputs, TFX_MODULE, model_dir, 5)
    left = [path.name for path in scratch.iterdir() if path.name.startswith("living-pipeline-model-run-")]
    assert not left, "run_fn's folder for logs, given none, is removed after training"
    logs = read_warmup_requests(str(model_dir))
    assert len(logs) == 5
    model = tf.saved_model.load(str(model_dir))
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.signature_name == SERVING_SIGNATURE
        examples = tf.make_ndarray(request.inputs["examples"])
        parsed = tf.train.Example.FromString(examples[0])
        assert "species" not in parsed.features.feature and "island" in parsed.features.feature
        assert model.signatures[SERVING_SIGNATURE](examples=tf.constant(examples))["outputs"].shape == (1, 3)


def test_hyperparameters_change_the_run_fn_model(tfx_inputs, tmp_path):
    one = train(tfx_inputs, TFX_MODULE, tmp_path / "one", 5,
                hyperparameters='{"num_layers": 1, "learning_rate": 0.01}', custom_config={"team": "birds"})
    train(tfx_inputs, TFX_MODULE, tmp_path / "three", 5,
          hyperparameters={"num_layers": 3, "learning_rate": 0.01})
    assert one["hyperparameters"] == {"num_layers": 1, "learning_rate": 0.01}
    assert one["custom_config"] == {"team": "birds"}
    assert dense_layer_count(str(tmp_path / "one")) == 2
    assert dense_layer_count(str(tmp_path / "three")) == 4


def test_hyperparameters_reach_build_model(transform_dirs, examples_dir, tmp_path):
    graph, transformed = transform_dirs
    result = train_model(transformed, graph, DEMO_MODULE, str(tmp_path / "deep"), 5,
                         hyperparameters={"hidden_units": [8, 8, 8]}, examples_dir=examples_dir[0])
    assert result["contract"] == "build_model" and result["hyperparameters"] == {"hidden_units": [8, 8, 8]}
    assert dense_layer_count(str(tmp_path / "deep")) == 4
    assert result["serving_input"] == "examples" and len(read_warmup_requests(str(tmp_path / "deep"))) == 5


def test_build_model_without_a_hyperparameters_argument_is_named(transform_dirs, tmp_path):
    graph, transformed = transform_dirs
    module = tmp_path / "plain.py"
    with open(os.path.join(HERE, "binary_module.py")) as source:
        module.write_text(source.read())
    with pytest.raises(StageError, match=r"^--hyperparameters is given but build_model of --module .*plain\.py' "
                                         r"takes no hyperparameters: define build_model\(tf_transform_output, "
                                         r"hyperparameters=None\)"):
        train_model(transformed, graph, str(module), str(tmp_path / "model"), 5, hyperparameters={"units": 3})


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", r"^--hyperparameters '\[1, 2\]' is not a JSON object"),
    ("{num_layers: 2}", r"^--hyperparameters '\{num_layers: 2\}' is not JSON"),
])
def test_hyperparameters_that_are_not_a_json_object(transform_dirs, tmp_path, text, message):
    graph, transformed = transform_dirs
    with pytest.raises(StageError, match=message):
        train_model(transformed, graph, DEMO_MODULE, str(tmp_path / "model"), 5, hyperparameters=text)


FLOAT_SIGNATURE = """
import tensorflow as tf

LABEL_KEY = "species"
PROBLEM_TYPE = "classification"


def preprocessing_fn(inputs):
    return inputs


def run_fn(fn_args):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="bill_length_mm")])
    def serve(bill_length_mm):
        return {"outputs": tf.expand_dims(bill_length_mm, 1)}

    tf.saved_model.save(tf.Module(), fn_args.serving_model_dir,
                        signatures={"serving_default": serve, "transform_features": serve})
"""


def test_run_fn_whose_serving_signature_takes_no_serialized_examples(tfx_inputs, tmp_path):
    module = tmp_path / "floats.py"
    module.write_text(FLOAT_SIGNATURE)
    with pytest.raises(StageError, match=r"^run_fn of --module .*floats\.py': serving_default takes bill_length_mm "
                                         r"float32\(None,\); it must take one string tensor of serialized raw "
                                         r"tf.Examples"):
        train(tfx_inputs, str(module), tmp_path / "model", 2)


def test_run_fn_that_saves_no_model(tfx_inputs, tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text(FLOAT_SIGNATURE.split("def run_fn")[0] + "def run_fn(fn_args):\n    pass\n")
    with pytest.raises(StageError, match=r"^run_fn of --module .*lazy\.py' saved no model in "
                                         r"fn_args.serving_model_dir"):
        train(tfx_inputs, str(module), tmp_path / "model", 2)


@pytest.mark.slow
def test_tfx_style_module_runs_end_to_end_and_its_version_says_where_it_came_from(tmp_path):
    """The whole pipeline with the TFX-style module and --hyperparameters: published with its provenance record,
    whose digests are those of the module, the schema and the spec, and listed by `models`."""
    import glob
    import json
    import subprocess
    import sys

    from kfp import compiler

    from pipeline import create_pipeline

    repo = os.path.dirname(HERE)
    process = subprocess.run(
        [sys.executable, os.path.join(repo, "pipeline.py"), "run", "--module", TFX_MODULE,
         "--hyperparameters", '{"num_layers": 3, "learning_rate": 0.01}', "--custom-config", '{"owner": "birds"}',
         "--serving-root", str(tmp_path / "serving"), "--pipeline-root", str(tmp_path / "outputs"),
         "--statistics-root", str(tmp_path / "statistics")], capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stdout[-3000:]
    assert "Traceback" not in process.stdout + process.stderr
    # No --model-name and no MODEL_NAME in the module: the model is named after the module's file.
    assert f"Published: version 1 at {tmp_path / 'serving' / 'tfx_penguin_module' / '1'}" in process.stdout
    version = str(tmp_path / "serving" / "tfx_penguin_module" / "1")
    record = json.load(open(os.path.join(version, "assets.extra", "provenance.json")))

    def sha256(path):
        with open(path, "rb") as source:
            return hashlib.sha256(source.read()).hexdigest()

    assert record["module"] == {"name": TFX_MODULE, "path": TFX_MODULE, "sha256": sha256(TFX_MODULE),
                                "contract": "run_fn", "label_key": "species", "problem_type": "classification"}
    assert record["schema"]["sha256"] == sha256(record["schema"]["location"])
    unsigned = tmp_path / "unsigned.yaml"
    compiler.Compiler().compile(create_pipeline(record["pipeline"]["image"], build_info=json.dumps(
        {"image": record["pipeline"]["image"], "git_revision": record["pipeline"]["git_revision"]},
        sort_keys=True)), package_path=str(unsigned))
    assert record["pipeline"]["spec_sha256"] == sha256(unsigned)
    assert record["training"]["hyperparameters"] == {"num_layers": 3, "learning_rate": 0.01}
    assert record["training"]["custom_config"] == {"owner": "birds"}
    assert record["training"]["metrics"]["val_sparse_categorical_accuracy"] > 0.8
    assert record["evaluation"]["overall"]["sparse_categorical_accuracy"] > 0.8
    assert record["data"]["row_counts"]["train"] + record["data"]["row_counts"]["eval"] == 344
    assert record["run"]["name"].startswith("living-pipeline-") and record["blessing"]["blessed"]
    assert dense_layer_count(version) == 4, "three hidden layers, as --hyperparameters asked, and the output"
    assert len(read_warmup_requests(version)) == 5
    assert glob.glob(str(tmp_path / "outputs" / "*" / "train" / "tensorboard_logs" / "train" / "events.out.*"))
    listing = subprocess.run([sys.executable, os.path.join(repo, "pipeline.py"), "models", "--serving-root",
                              str(tmp_path / "serving")], capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and listing.stderr == ""
    row = listing.stdout.splitlines()[1]
    assert row.startswith("1 ") and record["run"]["published_at"] in row and "none" in row
