"""The cluster's serving path without a cluster: push publishes to an S3 bucket (SeaweedFS on loopback),
the model mirror copies each whole new version into a local folder with nothing but environment
credentials, and a request built by `components.tf_serving.serving_request` gets predictions from that folder's
model through a stand-in for TF Serving's REST `predict` API (the real SavedModel answers)."""
import base64
import filecmp
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import tensorflow as tf

from components.penguins import curated_schema_path
from components.state.serving_root import publish_model
from components.tf_serving.serving_request import demo_csv, feature_types, request_body
from helpers import REPO, free_port
from object_stores import s3_client, s3_environment, seaweedfs


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    with seaweedfs(str(tmp_path_factory.mktemp("seaweedfs"))) as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint, monkeypatch, request):
    name = f"mirror-{request.node.name[-20:].replace('_', '-').lower()}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    for variable, value in s3_environment(s3_endpoint).items():
        monkeypatch.setenv(variable, value)
    return name


def mirror(s3_endpoint, serving_root, local_root, *flags):
    """Runs the mirror as its container does: only PATH and the S3 environment (no profile, no flags)."""
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
                   **s3_environment(s3_endpoint)}
    return subprocess.run([sys.executable, "-m", "components.tf_serving.model_mirror", "--serving-root", serving_root,
                           "--model-name", "penguins", "--to", str(local_root), "--once", *flags],
                          cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)


def same_files(left, right):
    comparison = filecmp.dircmp(left, right)
    return (not comparison.left_only and not comparison.right_only and not comparison.diff_files
            and all(same_files(os.path.join(left, d), os.path.join(right, d)) for d in comparison.common_dirs))


@pytest.mark.slow
def test_the_mirror_copies_the_newest_whole_version_and_skips_an_unfinished_one(
        s3_endpoint, bucket, trained_model, tmp_path):
    serving_root = f"s3://{bucket}/living-pipeline/serving"
    local_root = tmp_path / "models" / "penguins"
    result = mirror(s3_endpoint, serving_root, local_root)
    assert result.returncode == 0, result.stderr
    assert os.listdir(local_root) == []  # nothing published yet: nothing to serve, and no error

    publish_model(trained_model[0], serving_root, "penguins")
    result = mirror(s3_endpoint, serving_root, local_root)
    assert result.returncode == 0, result.stderr
    assert f"Mirrored version 1 of penguins from {serving_root}" in result.stdout
    assert sorted(os.listdir(local_root)) == ["1"] and same_files(trained_model[0], local_root / "1")

    # A version whose saved_model.pb is not there yet is not published: it is not mirrored.
    client = s3_client(s3_endpoint)
    client.put_object(Bucket=bucket, Key="living-pipeline/serving/penguins/2/variables/variables.index", Body=b"x")
    result = mirror(s3_endpoint, serving_root, local_root)
    assert result.returncode == 0 and sorted(os.listdir(local_root)) == ["1"]

    publish_model(trained_model[0], serving_root, "penguins")  # version 3: numbered past the unfinished 2
    result = mirror(s3_endpoint, serving_root, local_root)
    assert sorted(os.listdir(local_root)) == ["1", "3"] and same_files(trained_model[0], local_root / "3")
    assert not [name for name in os.listdir(local_root) if name.startswith(".")]  # no half-copied folder left


@pytest.mark.slow
def test_a_mirror_without_the_keys_is_one_line_naming_the_serving_root(s3_endpoint, bucket, tmp_path):
    serving_root = f"s3://{bucket}/living-pipeline/serving"
    environment = {"PATH": os.environ["PATH"], **s3_environment(s3_endpoint)}
    environment["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
    result = subprocess.run([sys.executable, "-m", "components.tf_serving.model_mirror", "--serving-root", serving_root,
                             "--model-name", "penguins", "--to", str(tmp_path / "models"), "--once"],
                            cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("Error: --serving-root") and serving_root in result.stderr
    assert "not-the-secret" not in result.stderr


class _StandInTfServing(BaseHTTPRequestHandler):
    """TF Serving's REST `predict` in the row format, answered by the real SavedModel."""
    model_folder = None

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        versions = sorted(int(name) for name in os.listdir(self.model_folder) if name.isdigit())
        model = tf.saved_model.load(os.path.join(self.model_folder, str(versions[-1])))
        signature = model.signatures[body["signature_name"]]
        examples = tf.constant([base64.b64decode(instance["b64"]) for instance in body["instances"]])
        outputs = {name: value.numpy().tolist() for name, value in signature(examples=examples).items()}
        predictions = [{name: (values[i].decode() if isinstance(values[i], bytes) else values[i])
                        for name, values in outputs.items()} for i in range(len(body["instances"]))]
        data = json.dumps({"predictions": predictions}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def tf_serving(trained_model, tmp_path):
    folder = tmp_path / "models" / "penguins"
    os.makedirs(folder)
    os.symlink(trained_model[0], folder / "1")
    handler = type("Handler", (_StandInTfServing,), {"model_folder": str(folder)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def serving_request(*flags):
    return subprocess.run([sys.executable, "-m", "components.tf_serving.serving_request", *flags], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_the_request_is_raw_examples_typed_by_the_schema_without_the_label():
    rows = [{"species": "Adelie", "island": "Torgersen", "bill_length_mm": "39", "body_mass_g": "3750",
             "sex": "NA", "year": "2007"}]
    body = request_body(rows, feature_types(curated_schema_path()), "species")
    assert body["signature_name"] == "serving_default"
    example = tf.train.Example.FromString(base64.b64decode(body["instances"][0]["b64"]))
    features = example.features.feature
    assert sorted(features) == ["bill_length_mm", "body_mass_g", "island", "year"]  # no label, no NA
    assert features["bill_length_mm"].float_list.value == [39.0]  # FLOAT in the schema, though it looks whole
    assert features["body_mass_g"].int64_list.value == [3750]
    assert features["island"].bytes_list.value == [b"Torgersen"]


@pytest.mark.slow
def test_the_published_model_answers_the_request_with_the_rows_species(tf_serving):
    result = serving_request("--url", tf_serving, "--model-name", "penguins", "--rows", "40")
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.strip().rsplit(" ", 1)[1])
    assert result.stdout.startswith("TF Serving predicted 40 rows of the demo data") and accuracy >= 0.8
    assert os.path.exists(demo_csv())


def test_an_unreachable_tf_serving_is_one_clear_line():
    result = serving_request("--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "cannot be reached" in result.stderr and "kubectl -n kubeflow port-forward svc/tf-serving" in result.stderr
