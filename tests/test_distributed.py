"""The Beam stages on Beam's portable runner, with the project image as the worker (docs/distributed.md).

Beam's job service and an SDK worker pool run in two containers of the project image that mount no
host folder (host network only, to reach the job service and SeaweedFS on loopback); the data, the
Beam stages' outputs and Beam's temp files are in SeaweedFS (`s3://`), the keys only in the containers'
and the stages' environment. Ingest and statistics run there and must give exactly the examples and
statistics of an in-process run. Transform is where it stops on this machine, with one line: TensorFlow
writes the transform graph itself and has no s3:// file system, and no GCS emulator speaks to
TensorFlow's own GCS client (on Dataflow the temp root is gs://).
"""
import contextlib
import os
import subprocess
import sys
import uuid

import pytest

from components.stage_logic.statistics import load_statistics
from components.state.storage import Storage, StorageSettings, join
from helpers import REPO, free_port
from object_stores import WRITER, s3_client, s3_environment, seaweedfs

# Containers of the project image (make test-docker builds it), SeaweedFS and pipeline runs.
pytestmark = [pytest.mark.slow, pytest.mark.docker]

IMAGE = os.environ.get("LIVING_PIPELINE_IMAGE", "living-pipeline:0.1.0")


def _docker(*args, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _require_docker_and_image():
    try:
        info = _docker("info", "--format", "{{.ServerVersion}}", timeout=30)
    except FileNotFoundError:
        pytest.fail("test_distributed needs Docker: no docker client on PATH (CI installs docker.io)", pytrace=False)
    if info.returncode != 0:
        pytest.fail(f"test_distributed needs a Docker engine: none answers ({info.stderr.strip().splitlines()[-1]}): "
                    "start dockerd", pytrace=False)
    if _docker("image", "inspect", IMAGE).returncode != 0:
        pytest.fail(f"test_distributed needs the project image {IMAGE}: build it with make image", pytrace=False)


@contextlib.contextmanager
def _container(name, environment, *command):
    """A container of the project image on the host network, no volume, no bind mount."""
    env_args = [arg for key, value in environment.items() for arg in ("-e", f"{key}={value}")]
    started = _docker("run", "-d", "--rm", "--name", name, "--network", "host", *env_args, IMAGE, *command)
    assert started.returncode == 0, started.stderr
    try:
        mounts = _docker("inspect", "--format", "{{len .Mounts}}", name).stdout.strip()
        assert mounts == "0", f"{name} mounts {mounts} host folders or volumes"
        yield name
    finally:
        _docker("rm", "-f", name)


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    with seaweedfs(str(tmp_path_factory.mktemp("seaweedfs"))) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def beam_cluster(s3_endpoint):
    """Beam's job service and a worker pool of the project image; yields (job endpoint, worker pool)."""
    _require_docker_and_image()
    job_port, pool_port = free_port(), free_port()
    suffix = uuid.uuid4().hex[:6]
    keys = {"AWS_ACCESS_KEY_ID": WRITER[0], "AWS_SECRET_ACCESS_KEY": WRITER[1], "AWS_REGION": "us-east-1"}
    with _container(f"lp-beam-jobs-{suffix}", {}, "python", "-m",
                    "apache_beam.runners.portability.local_job_service_main", f"--port={job_port}") as jobs, \
            _container(f"lp-beam-workers-{suffix}", keys, "python", "-m",
                       "components.platform.beam_boot", "--worker_pool", f"--service_port={pool_port}") as workers:
        yield f"localhost:{job_port}", f"localhost:{pool_port}", jobs, workers


def _run(args, environment, timeout=900):
    return subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "run", *args], cwd=REPO,
                          env={**os.environ, **environment}, capture_output=True, text=True, timeout=timeout)


def test_beam_stages_run_on_the_portable_runner_with_the_project_image_as_worker(beam_cluster, s3_endpoint, tmp_path,
                                                                                  monkeypatch):
    job_endpoint, worker_pool, _, workers = beam_cluster
    environment = s3_environment(s3_endpoint)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    storage = Storage(StorageSettings(s3_endpoint_url=s3_endpoint))
    bucket = f"lp-{uuid.uuid4().hex[:8]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    from components.stage_logic.ingest import demo_data_pattern

    data = f"s3://{bucket}/landing/penguins.csv"
    with open(storage.match(demo_data_pattern(), "--data")[0], "rb") as source:
        storage.write_bytes(data, source.read(), "--data")

    common = ["--data", data, "--schema", os.path.join(REPO, "components", "penguins", "schema.pbtxt"),
              "--statistics-root", "", "--stage-processes", "fresh"]
    local = _run([*common, "--pipeline-root", str(tmp_path / "local"),
                  "--serving-root", str(tmp_path / "local-serving"),
                  f"--beam-args=--s3_endpoint_url={s3_endpoint}"], environment)
    assert local.returncode == 0, local.stderr[-3000:]

    temp_root = f"s3://{bucket}/beam"
    remote = _run([*common, "--pipeline-root", str(tmp_path / "remote"), "--serving-root",
                   str(tmp_path / "remote-serving"), "--beam-runner", "portable", "--beam-temp-root", temp_root,
                   "--beam-job-endpoint", job_endpoint, "--beam-worker-pool", worker_pool,
                   f"--beam-args=--s3_endpoint_url={s3_endpoint}"], environment)
    # Ingest and statistics ran on the workers: their outputs are in the bucket, and equal the in-process ones.
    run_dirs = {name: next(path for path in (tmp_path / name).iterdir() if path.name.startswith("living-pipeline-"))
                for name in ("local", "remote")}
    remote_examples = join(temp_root, "artifacts", run_dirs["remote"].name, "ingest", "examples")
    remote_files = storage.files_under(remote_examples, "--test")
    assert {relative.split("/")[0] for _, relative in remote_files} >= {"Split-train", "Split-eval"}, \
        remote.stdout[-3000:] + remote.stderr[-3000:]
    assert not list((run_dirs["remote"] / "ingest" / "examples").glob("Split-*")), "examples written to the pod"
    for split in ("train", "eval"):
        ours = load_statistics(str(run_dirs["remote"] / "statistics" / "statistics"), split)
        theirs = load_statistics(str(run_dirs["local"] / "statistics" / "statistics"), split)
        assert ours.datasets[0].num_examples == theirs.datasets[0].num_examples > 0
        assert ({f.path.step[0]: f.num_stats.mean for f in ours.datasets[0].features if f.HasField("num_stats")}
                == pytest.approx({f.path.step[0]: f.num_stats.mean for f in theirs.datasets[0].features
                                  if f.HasField("num_stats")}))
    logged = _docker("logs", workers)
    logs = logged.stdout + logged.stderr
    # The work ran in the worker-pool container: each SDK worker started there says so.
    assert "living-pipeline beam_boot: SDK worker" in logs, logs[-2000:]
    # Transform stops with one line naming the stage, the flag and what to do.
    assert remote.returncode != 0
    errors = [line for line in (remote.stdout + remote.stderr).splitlines() if "TensorFlow 2.16 has no s3://" in line]
    assert errors and errors[0].startswith("Error: transform: TensorFlow itself reads and writes this stage's "
                                           "transform_graph on the workers"), remote.stderr[-3000:]
    assert "give --beam-temp-root gs://BUCKET/PATH, or run this stage in process" in errors[0]
    assert WRITER[1] not in remote.stdout + remote.stderr


def test_without_a_docker_engine_the_test_fails_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")
    with pytest.raises(pytest.fail.Exception) as failure:
        _require_docker_and_image()
    message = str(failure.value)
    assert message.startswith("test_distributed needs a Docker engine: none answers (") and message.endswith(
        "start dockerd") and "\n" not in message
