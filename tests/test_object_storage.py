"""The pipeline against object storage: spans, module, schema, serving sample, statistics store and
serving root in `s3://` (SeaweedFS) and `gs://` (a GCS emulator), real servers on loopback.

Two full runs through the command line read everything from buckets and publish to them; the
published model is downloaded and predicts (the S3 run gives its endpoint in --beam-args only, and its
secret key shows nowhere). The bucket publishing protocol (eight concurrent publishers, stale
baselines, a 2.5 GB model streamed), the refusal of credentials in --beam-args, and the errors for a
missing bucket, a missing object, denied access and an unreachable endpoint are checked directly.
"""
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import tensorflow as tf

from components.errors import StageError
from components.penguins import curated_schema_path
from components.penguins.demo import write_demo_spans
from components.state.serving_root import BaselineChanged, latest_published_model, publish_model, published_versions
from components.state.statistics_store import model_store, record_span_verdict, store_span_statistics, stored_spans
from components.state.storage import GCS_SCHEME, S3_SCHEME, Storage, StorageSettings, refuse_credentials
from helpers import REPO, free_port
from object_stores import READER, WRITER, gcs_client, gcs_emulator, s3_client, s3_environment, seaweedfs
from publish_child import run_one, run_together, write_fake_model
from test_end_to_end import example_from_row
from test_sources import read_all, write_avro, write_parquet, write_tfrecord

# SeaweedFS and the GCS emulator, whole runs on buckets and publishes in processes of their own.
pytestmark = pytest.mark.slow

MODULE_FILE = os.path.join(REPO, "components", "penguins", "module.py")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    with seaweedfs(str(tmp_path_factory.mktemp("seaweedfs"))) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def gcs_host(tmp_path_factory):
    with gcs_emulator(str(tmp_path_factory.mktemp("gcs"))) as host:
        yield host


class Store:
    """One object store as the tests see it: its scheme, environment and an admin client."""

    def __init__(self, scheme, environment, make_bucket, list_keys):
        self.scheme, self.environment = scheme, environment
        self._make_bucket, self._list_keys = make_bucket, list_keys

    def bucket(self, name):
        bucket = f"{name}-{uuid.uuid4().hex[:8]}"
        self._make_bucket(bucket)
        return bucket

    def uri(self, bucket, *parts):
        return "/".join([f"{self.scheme}{bucket}", *parts])

    def keys(self, bucket):
        return sorted(self._list_keys(bucket))


@pytest.fixture(scope="session")
def s3_store(s3_endpoint):
    client = s3_client(s3_endpoint)

    def list_keys(bucket):
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    return Store(S3_SCHEME, s3_environment(s3_endpoint),
                 lambda bucket: client.create_bucket(Bucket=bucket), list_keys)


@pytest.fixture(scope="session")
def gcs_store(gcs_host):
    client = gcs_client(gcs_host)
    return Store(GCS_SCHEME, {"STORAGE_EMULATOR_HOST": gcs_host},
                 client.create_bucket, lambda bucket: [blob.name for blob in client.list_blobs(bucket)])


@pytest.fixture(params=["s3_store", "gcs_store"], ids=["s3", "gs"])
def store(request, monkeypatch):
    """Each object store in turn, with this process's environment pointing at it."""
    chosen = request.getfixturevalue(request.param)
    for name, value in chosen.environment.items():
        monkeypatch.setenv(name, value)
    return chosen


def upload(path, uri, storage=None):
    with open(path, "rb") as source:
        (storage or Storage()).write_bytes(uri, source.read(), "--test")


def published_model_accuracy(uri, csv_path, storage=None):
    """The accuracy on `csv_path`'s rows of the model published at `uri`, downloaded and loaded."""
    with open(csv_path, newline="") as source:
        rows = [row for row in csv.DictReader(source) if row["species"] != "NA"]
    examples = tf.constant([example_from_row(row).SerializeToString() for row in rows])
    with (storage or Storage()).local_folder(uri, "--test") as local:
        model = tf.saved_model.load(local)
        predicted = model.signatures["serving_default"](examples=examples)["classes"].numpy()
    return sum(p.decode() == row["species"] for p, row in zip(predicted, rows)) / len(rows)


def run_cli(tmp_path, environment, *flags):
    summary = tmp_path / "summary.json"
    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--pipeline-root", str(tmp_path / "outputs"),
         "--summary-json", str(summary), *flags],
        capture_output=True, text=True, timeout=900, env={**os.environ, **environment})
    return process, json.loads(summary.read_text()) if summary.exists() else None


def stage_up_landing_zone(store, tmp_path, storage=None):
    """Demo spans 1 and 2, a serving sample (span 2 without labels), the module and the curated schema."""
    lake, code = store.bucket("lake"), store.bucket("code")
    spans = write_demo_spans(str(tmp_path / "spans"))
    for span in (1, 2):
        upload(spans[span], store.uri(lake, f"penguins/span-{span}/penguins.csv"), storage)
    serving = tmp_path / "serving.csv"
    with open(spans[2], newline="") as source, open(serving, "w", newline="") as sink:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(sink, [name for name in reader.fieldnames if name != "species"])
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if k != "species"} for row in reader)
    upload(serving, store.uri(lake, "serving/requests.csv"), storage)
    upload(MODULE_FILE, store.uri(code, "penguin_module.py"), storage)
    upload(curated_schema_path(), store.uri(code, "schema.pbtxt"), storage)
    return {
        "--data": store.uri(lake, "penguins/span-{SPAN}/*.csv"),
        "--serving-data": store.uri(lake, "serving/*.csv"),
        "--module": store.uri(code, "penguin_module.py"),
        "--schema": store.uri(code, "schema.pbtxt"),
    }, spans


def assert_no_secret_anywhere(secret, process, pipeline_root):
    assert secret not in process.stdout and secret not in process.stderr
    for folder, _, names in os.walk(pipeline_root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as artifact:
                assert secret.encode() not in artifact.read(), os.path.join(folder, name)


def test_a_run_on_s3_reads_its_spans_drift_and_baseline_from_buckets_and_publishes_there(
        s3_store, tmp_path, monkeypatch, trained_model, statistics_dir):
    """The S3 endpoint is given once, in --beam-args, and reaches every stage (schema, validate, train and
    push touch buckets too); the keys come from the environment and show nowhere."""
    endpoint = s3_store.environment["AWS_ENDPOINT_URL"]
    for name, value in s3_store.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    storage = Storage(StorageSettings(s3_endpoint_url=endpoint))
    flags, spans = stage_up_landing_zone(s3_store, tmp_path, storage)
    models, stats = s3_store.bucket("models"), s3_store.bucket("stats")
    serving_root, statistics_root = s3_store.uri(models), s3_store.uri(stats, "penguins")
    # What earlier runs left: span 1's statistics, accepted as the drift baseline, and version 1 serving.
    store_span_statistics(statistics_dir, model_store(statistics_root, "penguins"), 1, ["train", "eval"], storage)
    record_span_verdict(model_store(statistics_root, "penguins"), 1, storage, validation="passed", accepted=True,
                        reason="its data passed validation and its model was blessed, published as version 1")
    publish_model(trained_model[0], serving_root, "penguins", storage=storage)

    environment = {name: value for name, value in s3_store.environment.items() if name != "AWS_ENDPOINT_URL"}
    process, result = run_cli(tmp_path, environment, *[item for pair in flags.items() for item in pair],
                              "--serving-root", serving_root, "--statistics-root", statistics_root,
                              "--train-steps", "300", "--tolerance", "0.3",
                              f"--beam-args=--s3_endpoint_url={endpoint}")

    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert result["outputs"]["blessing"]["baseline_version"] == 1
    outputs = result["outputs"]
    checks = outputs["anomalies"]["checks"]
    assert checks["drift"].startswith("7 of 8 features checked against span 1"), checks
    assert checks["skew"].startswith("6 of 8 features checked against the serving sample"), checks
    assert outputs["blessing"]["baseline"] == f"{serving_root}/penguins/1"
    assert outputs["pushed_model"]["path"] == f"{serving_root}/penguins/2"
    assert published_versions(serving_root, "penguins", storage) == [1, 2]
    assert stored_spans(model_store(statistics_root, "penguins"), storage) == [1, 2]
    assert not [key for key in s3_store.keys(models) if ".incoming-" in key]
    assert published_model_accuracy(f"{serving_root}/penguins/2", spans[2], storage) >= 0.8
    # Not in the compiled spec, the run's parameters, its logs, reports or artifact metadata, nor the summary.
    assert_no_secret_anywhere(WRITER[1], process, str(tmp_path / "outputs"))
    assert WRITER[1] not in (tmp_path / "summary.json").read_text()


def test_a_run_on_gcs_reads_and_publishes_through_buckets(gcs_store, tmp_path, monkeypatch):
    for name, value in gcs_store.environment.items():
        monkeypatch.setenv(name, value)
    flags, spans = stage_up_landing_zone(gcs_store, tmp_path)
    serving_root = gcs_store.uri(gcs_store.bucket("models"))
    statistics_root = gcs_store.uri(gcs_store.bucket("stats"), "penguins")

    process, result = run_cli(tmp_path, gcs_store.environment, *[item for pair in flags.items() for item in pair],
                              "--serving-root", serving_root, "--statistics-root", statistics_root,
                              "--train-steps", "300")

    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert result["outputs"]["pushed_model"]["path"] == f"{serving_root}/penguins/1"
    assert stored_spans(model_store(statistics_root, "penguins")) == [2]
    assert latest_published_model(serving_root, "penguins") == f"{serving_root}/penguins/1"
    assert published_model_accuracy(f"{serving_root}/penguins/1", spans[2]) >= 0.8


def test_publishing_to_a_bucket_numbers_versions_past_unfinished_ones_and_cleans_up(store, trained_model):
    bucket = store.bucket("models")
    root = store.uri(bucket)
    assert published_versions(root, "penguins") == []
    assert publish_model(trained_model[0], root, "penguins") == (1, store.uri(bucket, "penguins/1"))
    # A publish that died half-way: a numbered prefix without saved_model.pb.
    Storage().write_bytes(store.uri(bucket, "penguins/2/variables/variables.index"), b"partial", "--test")
    assert published_versions(root, "penguins") == [1]
    assert publish_model(trained_model[0], root, "penguins")[0] == 3
    assert published_versions(root, "penguins") == [1, 3]
    keys = store.keys(bucket)
    assert not [key for key in keys if ".incoming-" in key]
    local_files = Storage().files_under(trained_model[0], "--test")
    assert sorted(key[len("penguins/3/"):] for key in keys if key.startswith("penguins/3/")) == sorted(
        relative for _, relative in local_files)
    for path, relative in local_files:
        with open(path, "rb") as local:
            assert Storage().read_bytes(store.uri(bucket, "penguins/3", relative), "--test") == local.read(), relative


def test_an_empty_file_reaches_a_bucket_as_an_empty_object(store, trained_model, tmp_path):
    """S3 refuses to complete a multipart upload without parts, which is how Beam's S3 writer writes everything."""
    bucket = store.bucket("empty")
    empty = tmp_path / "EMPTY"
    empty.write_bytes(b"")
    Storage().upload_file(str(empty), store.uri(bucket, "marker/EMPTY"), "--test")
    Storage().write_bytes(store.uri(bucket, "written/EMPTY"), b"", "--test")
    assert [Storage().read_bytes(store.uri(bucket, key), "--test") for key in ("marker/EMPTY", "written/EMPTY")] == [
        b"", b""]
    model = tmp_path / "model"
    shutil.copytree(trained_model[0], model)
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "empty_vocabulary.txt").write_bytes(b"")
    _, path = publish_model(str(model), store.uri(bucket), "penguins")
    assert Storage().read_bytes(f"{path}/assets/empty_vocabulary.txt", "--test") == b""


def bucket_checksums(folder_uri):
    """{relative path: sha256} of the objects under a bucket folder."""
    return {relative: hashlib.sha256(Storage().read_bytes(path, "--test")).hexdigest()
            for path, relative in Storage().files_under(folder_uri, "--test")}


def test_concurrent_publishers_to_one_bucket_never_share_a_version(store, tmp_path):
    """Eight processes publish eight different models under one model name at the same moment."""
    bucket = store.bucket("models")
    root = store.uri(bucket)
    models = {str(tmp_path / f"model{i}"): write_fake_model(str(tmp_path / f"model{i}"), f"model {i}")
              for i in range(8)}
    started = time.monotonic()
    results = run_together([["publish", model, root, "m"] for model in models], str(tmp_path / "barrier"))
    print(f"8 concurrent publishes: {time.monotonic() - started:.1f} s with the processes' start, the longest "
          f"publish {max(r['seconds'] for r in results):.1f} s; versions {[r['version'] for r in results]}")

    versions = [result["version"] for result in results]
    assert sorted(versions) == list(range(1, 9)), "distinct and without gaps (only a dead claim leaves one)"
    assert published_versions(root, "m") == list(range(1, 9))
    for (model, files), result in zip(models.items(), results):
        assert bucket_checksums(result["path"]) == files, f"version {result['version']} is not only {model}"
    assert not [key for key in store.keys(bucket) if ".incoming-" in key or ".claims/" in key]


def test_concurrent_runs_compared_with_the_same_version_publish_once_to_a_bucket(store, tmp_path):
    """Eight runs, all blessed against version 1, push at once: one publishes version 2, seven are refused."""
    bucket = store.bucket("models")
    root = store.uri(bucket)
    write_fake_model(str(tmp_path / "first"), "first")
    publish_model(str(tmp_path / "first"), root, "m", compared_with=0)
    models = {str(tmp_path / f"model{i}"): write_fake_model(str(tmp_path / f"model{i}"), f"model {i}")
              for i in range(8)}
    results = run_together([["publish", model, root, "m", "--compared-with", "1"] for model in models],
                           str(tmp_path / "barrier"))

    published = [(model, result) for model, result in zip(models, results) if "version" in result]
    refused = [result["refused"] for result in results if "refused" in result]
    assert [result["version"] for _, result in published] == [2] and len(refused) == 7, results
    assert all(reason.startswith(("version 2 is now the newest published version",
                                  "another run is publishing version 2")) for reason in refused), refused
    assert bucket_checksums(published[0][1]["path"]) == models[published[0][0]]
    assert published_versions(root, "m") == [1, 2]
    assert not [key for key in store.keys(bucket) if ".incoming-" in key or ".claims/" in key]


def test_a_candidate_compared_with_an_old_version_is_not_published_to_a_bucket(store, tmp_path):
    bucket = store.bucket("models")
    root = store.uri(bucket)
    first, second, third = (str(tmp_path / name) for name in ("first", "second", "third"))
    for model in (first, second, third):
        write_fake_model(model, model)
    assert publish_model(first, root, "m", compared_with=0)[0] == 1
    assert publish_model(second, root, "m", compared_with=1)[0] == 2
    with pytest.raises(BaselineChanged, match=r"^version 2 is now the newest published version at .*/m; the "
                                              r"candidate was compared with version 1: nothing was published"):
        publish_model(third, root, "m", compared_with=1)
    assert published_versions(root, "m") == [1, 2]
    assert not [key for key in store.keys(bucket) if ".incoming-" in key or ".claims/" in key]


def test_publishing_streams_a_model_larger_than_the_push_stages_memory(s3_store, tmp_path, monkeypatch):
    """A 2.5 GB asset (sparse here) goes to a bucket and a local root; the publisher's memory stays small."""
    from components.stage_table import BY_NAME

    big = int(2.5 * 1024 ** 3)
    assert big > int(BY_NAME["push"].resources.memory_limit.rstrip("G")) * 1000 ** 3
    for name, value in s3_store.environment.items():
        monkeypatch.setenv(name, value)
    model = str(tmp_path / "model")
    files = write_fake_model(model, "big", big_asset_bytes=big)
    bucket = s3_store.bucket("models")
    for root in (s3_store.uri(bucket), str(tmp_path / "serving")):
        started = time.monotonic()
        result = run_one(["publish", model, root, "m"])
        print(f"published 2.5 GB to {root} in {time.monotonic() - started:.1f} s, peak {result['peak_mb']:.0f} MB")
        assert result["version"] == 1
        assert result["peak_mb"] < 400, "the publisher read the file whole"
    sizes = {key: s3_client(s3_store.environment["AWS_ENDPOINT_URL"]).head_object(Bucket=bucket, Key=key)
             ["ContentLength"] for key in s3_store.keys(bucket)}
    assert sizes["m/1/assets/big.bin"] == big
    assert sorted(sizes) == sorted(f"m/1/{relative}" for relative in files)
    assert os.path.getsize(tmp_path / "serving" / "m" / "1" / "assets" / "big.bin") == big


@pytest.mark.parametrize("flag", ["--s3_secret_access_key", "--s3_access_key_id", "--s3_session_token",
                                  "--azure_connection_string", "--my_db_password"])
def test_credentials_in_beam_args_are_refused_before_anything_runs(tmp_path, flag):
    secret = "refused-secret-" + uuid.uuid4().hex
    with pytest.raises(StageError, match=rf"^--beam-args holds {flag}, a credential: .* environment variables"):
        refuse_credentials(f"--s3_endpoint_url=http://127.0.0.1:1 {flag}={secret}")

    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--pipeline-root", str(tmp_path / "outputs"),
         "--beam-args", f"--s3_endpoint_url=http://127.0.0.1:1 {flag} {secret}"],
        capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        f"Error: --beam-args holds {flag}, a credential: credentials are never pipeline parameters (they would be "
        "in the compiled spec, the run's parameters and logs); give the stages AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or GOOGLE_APPLICATION_CREDENTIALS) as environment variables, "
        "on KFP from a Kubernetes secret, or use the workload's identity."]
    assert secret not in process.stdout + process.stderr
    assert not (tmp_path / "outputs").exists(), "nothing compiled or run"


def test_a_missing_bucket_names_the_uri(store):
    from components.stage_logic.ingest import resolve_input

    missing = store.uri(f"no-such-bucket-{uuid.uuid4().hex[:8]}", "spans/span-{SPAN}/*.csv")
    with pytest.raises(StageError, match=r"^--data '.*no-such-bucket-\w+/spans/span-\{SPAN\}/\*\.csv': "
                                         r"bucket 'no-such-bucket-\w+' does not exist"):
        resolve_input(missing)


def test_a_missing_object_names_the_uri(store):
    from components.stage_logic.ingest import resolve_input
    from components.stage_logic.schema import read_curated_schema
    from components.training.user_module import load_user_module

    bucket = store.bucket("code")
    with pytest.raises(StageError, match=r"^--schema '.*/schema.pbtxt' does not exist"):
        read_curated_schema(store.uri(bucket, "schema.pbtxt"))
    with pytest.raises(StageError, match=r"^--module '.*/module.py': no such file"):
        load_user_module(store.uri(bucket, "module.py"))
    with pytest.raises(StageError, match=r"^No file matches --data '.*/span-\{SPAN\}/\*.csv'"):
        resolve_input(store.uri(bucket, "span-{SPAN}/*.csv"))


def test_a_user_module_and_schema_load_from_a_bucket(store):
    from components.stage_logic.schema import read_curated_schema
    from components.training.user_module import load_user_module

    bucket = store.bucket("code")
    upload(MODULE_FILE, store.uri(bucket, "module.py"))
    upload(curated_schema_path(), store.uri(bucket, "schema.pbtxt"))
    assert load_user_module(store.uri(bucket, "module.py")).LABEL_KEY == "species"
    assert "species" in [feature.name for feature in read_curated_schema(store.uri(bucket, "schema.pbtxt")).feature]


def test_denied_access_names_the_uri_and_publishes_nothing(s3_store, monkeypatch, trained_model):
    bucket = s3_store.bucket("models")
    for name, value in s3_environment(s3_store.environment["AWS_ENDPOINT_URL"], READER).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StageError, match=rf"^--serving-root 's3://{bucket}/penguins(/.*)?': access denied"):
        publish_model(trained_model[0], f"s3://{bucket}", "penguins")
    assert s3_store.keys(bucket) == []

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StageError, match=rf"^--serving-root 's3://{bucket}/penguins/\*/saved_model.pb': "
                                         rf"access denied to bucket '{bucket}'"):
        published_versions(f"s3://{bucket}", "penguins")


@pytest.mark.parametrize("scheme,variable,expected", [
    ("s3://", "AWS_ENDPOINT_URL", "cannot reach the S3 endpoint"),
    ("gs://", "STORAGE_EMULATOR_HOST", "cannot reach Google Cloud Storage"),
])
def test_an_unreachable_endpoint_fails_fast_naming_the_uri(scheme, variable, expected, monkeypatch):
    from components.stage_logic.ingest import resolve_input

    monkeypatch.setenv(variable, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "any")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "any")
    with pytest.raises(StageError, match=rf"^--data '{scheme}lake/span-\{{SPAN\}}/\*.csv': {expected}"):
        resolve_input(f"{scheme}lake/span-{{SPAN}}/*.csv")


def test_a_run_against_a_missing_bucket_stops_at_ingest_with_one_line(s3_store, tmp_path):
    missing = f"s3://no-such-lake-{uuid.uuid4().hex[:8]}/span-{{SPAN}}/*.csv"
    models = s3_store.bucket("models")
    process, result = run_cli(tmp_path, s3_store.environment, "--data", missing,
                              "--serving-root", f"s3://{models}", "--statistics-root", "")
    assert process.returncode != 0
    assert result["stages"]["ingest"]["status"] == "FAILURE"
    [error] = result["errors"]
    assert error.startswith(f"ingest: --data {missing!r}: bucket '{missing.split('/')[2]}' does not exist: "
                            "create it or correct the URI. (log: ")
    assert s3_store.keys(models) == []


@pytest.mark.parametrize("extension,write", [
    ("parquet", write_parquet), ("avro", write_avro), ("tfrecord.gz", write_tfrecord)])
def test_typed_sources_in_a_bucket_ingest_like_local_files(store, tmp_path, extension, write):
    """Parquet, Avro and TFRecords read through Beam's readers from a bucket, spans and given splits included."""
    from components.stage_logic.ingest import ingest_examples

    bucket = store.bucket("lake")
    for split in ("train", "eval"):
        local = write(str(tmp_path / "local" / "span-3" / split / f"part.{extension}"))
        upload(local, store.uri(bucket, f"span-3/{split}/part.{extension}"))
    pattern = f"span-{{SPAN}}/{{SPLIT}}/*.{extension}"
    local_metadata = ingest_examples(str(tmp_path / "local" / pattern), str(tmp_path / "from_local"))
    bucket_metadata = ingest_examples(store.uri(bucket, pattern), str(tmp_path / "from_bucket"))

    assert bucket_metadata["span"] == local_metadata["span"] == 3
    assert bucket_metadata["row_counts"] == local_metadata["row_counts"]
    assert bucket_metadata["column_types"] == local_metadata["column_types"]
    assert read_all(str(tmp_path / "from_bucket")) == read_all(str(tmp_path / "from_local"))
