"""The whole pipeline on Beam's portable runner, with the project image as the worker (docs/distributed.md).

Beam's job service (`components.platform.beam_job_service`) and two worker pools run in three containers
of the project image that mount no host folder (host network only, to reach the job service, the
buckets and each other on loopback). Everything the run reads and writes outside kfp.local's own
folders is in a bucket: the data, the Beam stages' outputs, Beam's temp files, every file TensorFlow
reads or writes on the workers (the transform graph, TFT's temp files, the models, the evaluation), the
kept schema and statistics, and the published models, in `gs://` on a GCS emulator that TensorFlow's
own GCS client reaches through a TLS-terminating proxy (`tests/tensorflow_gcs.py`). Ingest, statistics,
transform and evaluate run on the workers, two SDK workers per job, started by both pools. A second run then
evaluates its model against the first, which is serving, on the workers too.

The S3 mode of open-source KFP (artifacts in MinIO or SeaweedFS, `minio://`): the stages run one after
another as KFP's launcher runs them (`tests/kfp_launcher.py`: inputs downloaded, outputs uploaded, each
stage in its own process), with the Beam stages' outputs in `s3://` and what TensorFlow writes under a
`gs://` `--beam-temp-root`.
"""
import json
import os
import subprocess
import sys
import uuid

import pytest

from beam_cluster import DEFAULT_IMAGE, IMAGE_ENVIRONMENT, beam_cluster, docker, require_docker_and_image
from components.stage_logic.statistics import load_statistics
from components.state.storage import Storage, StorageSettings
from helpers import REPO
from object_stores import WRITER, s3_client, s3_environment, seaweedfs
from tensorflow_gcs import create_bucket, tensorflow_gcs

# Containers of the project image (make test-docker builds it), a GCS emulator, SeaweedFS and pipeline runs.
pytestmark = [pytest.mark.slow, pytest.mark.docker]

IMAGE = os.environ.get(IMAGE_ENVIRONMENT, DEFAULT_IMAGE)
CA_IN_CONTAINER = "/tmp/living-pipeline-test-ca.pem"
# Two runs of the same data and seed give the same examples, statistics and transform graph wherever they
# run; training on the workers' transformed examples can still differ in the last bits of a float (the
# analyzers' sums are combined in another order over two workers), so evaluation metrics agree within this.
METRIC_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    with tensorflow_gcs(str(tmp_path_factory.mktemp("gcs"))) as started:
        yield started


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    with seaweedfs(str(tmp_path_factory.mktemp("seaweedfs"))) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def cluster(gcs, s3_endpoint):
    """The job service and two worker pools; the pools have the buckets' settings and keys, nothing else."""
    require_docker_and_image(IMAGE, "test_distributed")
    environment = {**gcs.environment(CA_IN_CONTAINER), "AWS_ACCESS_KEY_ID": WRITER[0],
                   "AWS_SECRET_ACCESS_KEY": WRITER[1], "AWS_REGION": "us-east-1"}
    with beam_cluster(IMAGE, environment, {gcs.ca_path: CA_IN_CONTAINER}, pools=2) as started:
        yield started


def _run(args, environment, summary, timeout=1500):
    process = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "run", *args,
                              "--summary-json", str(summary)], cwd=REPO, env={**os.environ, **environment},
                             capture_output=True, text=True, timeout=timeout)
    return process, json.loads(summary.read_text()) if summary.exists() else {}


def _container_log(name):
    logged = docker("logs", name)
    return logged.stdout + logged.stderr


def _run_folder(root):
    return next(path for path in root.iterdir() if path.name.startswith("living-pipeline-"))


def _demo_csv():
    from components.stage_logic.ingest import demo_data_pattern

    return Storage().match(demo_data_pattern(), "--data")[0]


def test_whole_pipeline_runs_on_the_portable_runner_with_tensorflow_files_in_gcs(cluster, gcs, tmp_path,
                                                                                 monkeypatch):
    environment = gcs.environment()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    bucket = f"lp-{uuid.uuid4().hex[:8]}"
    create_bucket(gcs, bucket)
    storage = Storage(StorageSettings())
    data = f"gs://{bucket}/landing/penguins.csv"
    with open(_demo_csv(), "rb") as source:
        storage.write_bytes(data, source.read(), "--data")

    local, local_summary = _run(["--data", _demo_csv(), "--pipeline-root", str(tmp_path / "local"),
                                 "--serving-root", str(tmp_path / "local-serving"), "--statistics-root", ""],
                                {}, tmp_path / "local.json")
    assert local.returncode == 0, local.stderr[-3000:]

    temp_root = f"gs://{bucket}/beam"
    remote_args = ["--data", data, "--serving-root", f"gs://{bucket}/serving", "--statistics-root",
                   f"gs://{bucket}/statistics", "--beam-runner", "portable", "--beam-temp-root", temp_root,
                   "--beam-job-endpoint", cluster.job_endpoint, "--beam-worker-pool", cluster.worker_pool,
                   "--beam-args=--direct_num_workers=2"]
    first, first_summary = _run([*remote_args, "--pipeline-root", str(tmp_path / "remote")], environment,
                                tmp_path / "remote.json")
    output = first.stdout + first.stderr
    assert first.returncode == 0, output[-5000:]
    assert "Traceback" not in output
    assert first_summary["outputs"]["pushed_model"]["path"] == f"gs://{bucket}/serving/penguins/1"
    assert storage.match(f"gs://{bucket}/serving/penguins/1/saved_model.pb", "--test")
    assert storage.match(f"gs://{bucket}/statistics/penguins/schema/1/schema.pbtxt", "--test")

    # What each Beam stage gave its workers is in the bucket, and the stage's own folder holds no examples.
    run_dir = _run_folder(tmp_path / "remote")
    artifacts = f"{temp_root}/artifacts/{run_dir.name}"
    for stage, output_name, marker in (("ingest", "examples", "Split-train/"),
                                       ("statistics", "statistics", "Split-eval/"),
                                       ("transform", "transformed_examples", "Split-train/"),
                                       ("transform", "transform_graph", "transform_fn/saved_model.pb"),
                                       ("evaluate", "evaluation", "")):
        found = [relative for _, relative in storage.files_under(f"{artifacts}/{stage}/{output_name}", "--test")]
        assert any(relative.startswith(marker) for relative in found), (stage, output_name, found[:10])
    assert not list((run_dir / "ingest" / "examples").glob("Split-*")), "examples written to the stage's folder"
    assert not list((run_dir / "transform" / "transformed_examples").glob("Split-*"))

    # The four jobs ran on two SDK workers each, all eight started by the pools, each pool starting some. Not four
    # each: Beam asks for a job's two workers at once, and gRPC may carry both requests on one connection (the
    # front hands out connections), so one pool may start both (a 5/3 split was seen).
    jobs_log = _container_log(cluster.job_service)
    assert jobs_log.count("on 2 SDK worker(s)") == 4, jobs_log[-3000:]
    starts = [_container_log(pool).count("living-pipeline beam_boot: SDK worker") for pool in cluster.pools]
    assert sum(starts) >= 8 and min(starts) >= 1, starts

    # The same examples, statistics and, within METRIC_TOLERANCE, the same model as in process.
    local_dir = _run_folder(tmp_path / "local")
    for split in ("train", "eval"):
        ours = load_statistics(str(run_dir / "statistics" / "statistics"), split).datasets[0]
        theirs = load_statistics(str(local_dir / "statistics" / "statistics"), split).datasets[0]
        assert ours.num_examples == theirs.num_examples > 0
        assert ({f.path.step[0]: f.num_stats.mean for f in ours.features if f.HasField("num_stats")}
                == pytest.approx({f.path.step[0]: f.num_stats.mean for f in theirs.features
                                  if f.HasField("num_stats")}))
    ours, theirs = first_summary["outputs"]["eval_metrics"], local_summary["outputs"]["eval_metrics"]
    assert ours["example_count"] == theirs["example_count"] > 0
    assert ours["sparse_categorical_accuracy"] == pytest.approx(theirs["sparse_categorical_accuracy"],
                                                                abs=METRIC_TOLERANCE)
    assert ours["sparse_categorical_accuracy"] >= 0.9

    # A second run is measured against version 1, which its workers load from the serving root in the bucket.
    second, second_summary = _run([*remote_args, "--pipeline-root", str(tmp_path / "remote-2")], environment,
                                  tmp_path / "remote-2.json")
    assert second.returncode in (0, 3), (second.stdout + second.stderr)[-5000:]
    blessing = second_summary["outputs"]["blessing"]
    assert blessing["baseline_version"] == 1
    overall = blessing["slices"]["Overall"]
    assert overall["baseline"] == pytest.approx(ours["sparse_categorical_accuracy"])
    assert overall["candidate"] is not None and overall["examples"] == ours["example_count"]
    assert "Traceback" not in second.stdout + second.stderr


def test_kfp_s3_artifacts_with_tensorflow_files_under_a_gcs_temp_root(cluster, gcs, s3_endpoint, tmp_path,
                                                                       monkeypatch):
    from kfp_launcher import run_like_kfp

    environment = {**gcs.environment(), **s3_environment(s3_endpoint)}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    bucket = f"lp-{uuid.uuid4().hex[:8]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    create_bucket(gcs, bucket)
    storage = Storage(StorageSettings(s3_endpoint_url=s3_endpoint))
    data = f"s3://{bucket}/landing/penguins.csv"
    with open(_demo_csv(), "rb") as source:
        storage.write_bytes(data, source.read(), "--data")

    outputs = run_like_kfp(
        ["--data", data, "--serving-root", f"s3://{bucket}/serving", "--statistics-root", f"s3://{bucket}/statistics",
         "--s3-endpoint-url", s3_endpoint, "--beam-runner", "portable", "--beam-temp-root", f"gs://{bucket}/beam",
         "--beam-job-endpoint", cluster.job_endpoint, "--beam-worker-pool", cluster.worker_pool,
         "--beam-args=--direct_num_workers=2"],
        pipeline_root=f"minio://{bucket}/v2/artifacts", local_mounts=tmp_path / "launcher", storage=storage,
        environment=environment)

    run = outputs["run"]
    # The Beam stages' outputs are the artifacts themselves, in S3; what TensorFlow writes is under the gs:// root.
    assert outputs["ingest"]["examples"]["metadata"]["beam_uri"] == f"s3://{bucket}/v2/artifacts/{run}/ingest/examples"
    assert outputs["transform"]["transformed_examples"]["metadata"]["beam_uri"].startswith(f"s3://{bucket}/")
    assert outputs["transform"]["transform_graph"]["metadata"]["beam_uri"].startswith(f"gs://{bucket}/beam/")
    assert outputs["evaluate"]["evaluation"]["metadata"]["beam_uri"].startswith(f"gs://{bucket}/beam/")
    assert storage.match(f"s3://{bucket}/v2/artifacts/{run}/ingest/examples/Split-train/*", "--test")
    pushed = outputs["push"]["pushed_model"]["metadata"]
    assert pushed["pushed"] and pushed["path"] == f"s3://{bucket}/serving/penguins/1", pushed
    assert storage.match(f"s3://{bucket}/serving/penguins/1/saved_model.pb", "--test")
    assert outputs["evaluate"]["metrics"]["metadata"]["sparse_categorical_accuracy"] >= 0.9
    assert WRITER[1] not in outputs["printed"]
    assert "Traceback" not in outputs["printed"]


def test_without_a_docker_engine_the_test_fails_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")
    with pytest.raises(pytest.fail.Exception) as failure:
        require_docker_and_image(IMAGE, "test_distributed")
    message = str(failure.value)
    assert message.startswith("test_distributed needs a Docker engine: none answers (") and message.endswith(
        "start dockerd") and "\n" not in message
