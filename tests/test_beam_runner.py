"""Runner presets and the URIs the Beam stages hand Beam (components/platform/beam_runner.py).

Each stage's options for Dataflow and for the portable runner are validated offline by Beam's own
PipelineOptionsValidator (for Dataflow against a GCS emulator: Beam looks at the temp bucket); the database
URL must be in neither the options nor the compiled spec; a stage whose runner is not in process must
give Beam bucket URIs, never its artifact folders.
"""
import concurrent.futures
import os
import shlex
import subprocess
import sys

import pytest
from kfp.dsl import Artifact

from components.errors import StageError
from components.platform import beam_runner
from components.platform.beam_runner import RunnerPreset, combine
from helpers import REPO, free_port

BEAM_STAGES = ("ingest", "statistics", "transform", "evaluate")
DATAFLOW = RunnerPreset(runner="dataflow", temp_root="gs://lp-dataflow-temp/runs", project="my-project",
                        region="europe-west4", service_account="beam-workers@my-project.iam.gserviceaccount.com",
                        machine_type="n2-standard-4", max_workers=8,
                        worker_image="europe-docker.pkg.dev/my-project/ml/living-pipeline:0.1.0-dataflow")
PORTABLE = RunnerPreset(runner="portable", temp_root="s3://lp-beam/runs", job_endpoint="localhost:8099",
                        worker_pool="localhost:50000")
DATABASE_URL = "postgresql://ingest:db-pass-5d2f@db.internal:5432/penguins"


def _options(args):
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(shlex.split(args))


@pytest.mark.slow  # starts a GCS emulator
def test_dataflow_options_of_every_stage_pass_beams_validation(tmp_path, monkeypatch):
    from apache_beam.options.pipeline_options import GoogleCloudOptions, WorkerOptions

    from object_stores import gcs_client, gcs_emulator

    with gcs_emulator(str(tmp_path)) as host:
        gcs_client(host).create_bucket("lp-dataflow-temp")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        monkeypatch.setenv(beam_runner_database_variable(), DATABASE_URL)
        job_names = set()
        for stage in BEAM_STAGES:
            args = beam_runner.validate(combine(DATAFLOW.args(), "--experiments=shuffle_mode=service"), stage)
            assert DATABASE_URL not in args and "db-pass" not in args
            options = _options(args)
            cloud, workers = options.view_as(GoogleCloudOptions), options.view_as(WorkerOptions)
            assert (cloud.project, cloud.region) == ("my-project", "europe-west4")
            assert cloud.temp_location == "gs://lp-dataflow-temp/runs/tmp"
            assert cloud.staging_location == "gs://lp-dataflow-temp/runs/staging"
            assert cloud.service_account_email == DATAFLOW.service_account
            assert cloud.job_name.startswith(f"living-pipeline-{stage}-")
            job_names.add(cloud.job_name)
            assert workers.sdk_container_image == DATAFLOW.worker_image
            assert (workers.machine_type, workers.max_num_workers) == ("n2-standard-4", 8)
        assert len(job_names) == len(BEAM_STAGES)

        # The same validation refuses what Dataflow would: a job name it cannot take, a negative worker count.
        with pytest.raises(StageError, match=r"^evaluate: Beam refuses .*job_name"):
            beam_runner.validate(combine(DATAFLOW.args(), "--job_name=Not_A_Dataflow_Name"), "evaluate")
        with pytest.raises(StageError, match=r"^transform: Beam refuses .*num_workers"):
            beam_runner.validate(combine(DATAFLOW.args(), "--num_workers=-1"), "transform")


def beam_runner_database_variable():
    from components.data.database import DATABASE_URL_VARIABLE

    return DATABASE_URL_VARIABLE


def test_portable_options_of_every_stage_pass_beams_validation(monkeypatch):
    from apache_beam.options.pipeline_options import PortableOptions, S3Options

    monkeypatch.setenv(beam_runner_database_variable(), DATABASE_URL)
    for stage in BEAM_STAGES:
        args = beam_runner.validate(combine(PORTABLE.args(), "--s3_endpoint_url=http://seaweedfs:8333"), stage)
        assert "db-pass" not in args
        options = _options(args)
        portable = options.view_as(PortableOptions)
        assert (portable.job_endpoint, portable.environment_type, portable.environment_config) == (
            "localhost:8099", "EXTERNAL", "localhost:50000")
        assert options.view_as(S3Options).s3_endpoint_url == "http://seaweedfs:8333"
        assert not beam_runner.in_process(args)
    with pytest.raises(StageError, match=r"^statistics: Beam refuses .*environment"):
        beam_runner.validate(combine(PORTABLE.args(), "--environment_options=docker_container_image=x"),
                             "statistics")


def test_presets_name_the_missing_flag():
    cases = [
        (RunnerPreset(runner="portable", job_endpoint="localhost:8099", worker_pool="localhost:50000"),
         r"^--beam-runner portable needs --beam-temp-root gs://BUCKET/PATH or s3://BUCKET/PATH"),
        (RunnerPreset(runner="portable", temp_root="s3://b/p", worker_pool="localhost:50000"),
         r"^--beam-runner portable needs --beam-job-endpoint: see docs/distributed.md"),
        (RunnerPreset(runner="dataflow", temp_root="gs://b/p", region="europe-west4", worker_image="i"),
         r"^--beam-runner dataflow needs --dataflow-project: "),
        (RunnerPreset(runner="dataflow", temp_root="s3://b/p", project="p", region="r", worker_image="i"),
         r"^--beam-runner dataflow needs --beam-temp-root gs://BUCKET/PATH \(got 's3://b/p'\)"),
        (RunnerPreset(runner="flink"), r"^--beam-runner 'flink': choose one of direct, portable, dataflow"),
    ]
    for preset, message in cases:
        with pytest.raises(StageError, match=message):
            preset.args()
    with pytest.raises(StageError, match=r"^--beam-args sets --runner, which --beam-runner already sets"):
        combine(PORTABLE.args(), "--runner=DirectRunner")
    assert RunnerPreset().args() == [] and beam_runner.in_process(combine([], ""))


def _artifact(uri, metadata=None):
    return Artifact(name="examples", uri=uri, metadata=dict(metadata or {}))


def test_beam_gets_artifact_folders_in_process_and_bucket_uris_otherwise(tmp_path):
    local = _artifact(str(tmp_path / "living-pipeline-2026" / "ingest" / "examples"))
    assert beam_runner.output_uri(local, "") == local.path
    assert beam_runner.BEAM_URI_KEY not in local.metadata

    remote_args = combine(PORTABLE.args(), "")
    assert beam_runner.output_uri(local, remote_args) == \
        "s3://lp-beam/runs/artifacts/living-pipeline-2026/ingest/examples"
    assert local.metadata[beam_runner.BEAM_URI_KEY] == "s3://lp-beam/runs/artifacts/living-pipeline-2026/ingest/examples"
    # The stage that reads it takes it from where it was written, whatever its own runner.
    assert beam_runner.input_uri(_artifact(local.uri, local.metadata), "") == \
        local.metadata[beam_runner.BEAM_URI_KEY]

    vertex = _artifact("gs://vertex-root/123/ingest_456/examples")
    assert vertex.path.startswith("/gcs/")
    assert beam_runner.output_uri(vertex, remote_args) == "gs://vertex-root/123/ingest_456/examples"
    kfp = _artifact("minio://mlpipeline/v2/artifacts/run/ingest/examples")
    assert beam_runner.output_uri(kfp, remote_args) == "s3://mlpipeline/v2/artifacts/run/ingest/examples"
    assert beam_runner.input_uri(_artifact(kfp.uri), remote_args) == \
        "s3://mlpipeline/v2/artifacts/run/ingest/examples"

    without_root = "--runner=PortableRunner --job_endpoint=localhost:8099"
    with pytest.raises(StageError, match=r"^The Beam runner PortableRunner runs its workers elsewhere "
                                         r"and the artifacts of this run are local folders .*--beam-temp-root"):
        beam_runner.output_uri(_artifact(str(tmp_path / "a" / "b" / "c")), without_root)
    # TensorFlow writes the transform graph itself, and has no s3:// file system: a gs:// temp root, or one line.
    with pytest.raises(StageError, match=r"^TensorFlow itself reads and writes this stage's transform_graph "
                                         r"on the workers, and TensorFlow 2.16 has no s3:// file system"):
        beam_runner.output_uri(_artifact(str(tmp_path / "run" / "transform" / "transform_graph")), remote_args,
                               tensorflow=True)
    gcs_args = combine(RunnerPreset(runner="portable", temp_root="gs://lp-beam/runs", job_endpoint="j:1",
                                    worker_pool="w:2").args(), "")
    assert beam_runner.output_uri(_artifact("minio://mlpipeline/v2/artifacts/r/transform/transform_graph"), gcs_args,
                                  tensorflow=True) == "gs://lp-beam/runs/artifacts/r/transform/transform_graph"
    with pytest.raises(StageError, match=r"^--data '/data/x.csv' is on this machine"):
        beam_runner.check_readable("/data/x.csv", "--data", remote_args)
    beam_runner.check_readable("s3://landing/x.csv", "--data", remote_args)


@pytest.mark.slow  # starts pipeline.py run (refused before any stage runs)
def test_database_url_is_in_neither_the_options_nor_the_spec(tmp_path):
    """The URL is in the environment of the CLI that compiles and runs; it must reach nothing it writes."""
    spec = tmp_path / "pipeline.yaml"
    environment = {**os.environ, beam_runner_database_variable(): DATABASE_URL}
    subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "compile", "--output", str(spec)],
                   check=True, cwd=REPO, env=environment, capture_output=True, timeout=120)
    text = spec.read_text()
    assert "db-pass-5d2f" not in text and "db.internal" not in text
    # Given as a Beam option anyway, it is refused with one line, before anything runs.
    result = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--query", "SELECT 1",
                             f"--beam-args=--database_url={DATABASE_URL}", "--pipeline-root", str(tmp_path)],
                            cwd=REPO, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: --beam-args holds a URL with a password (--database_url): a database URL reaches ingest and Beam's "
        "workers only through their environment (LIVING_PIPELINE_DATABASE_URL, from a Kubernetes secret on a "
        "cluster), never the job's options."]
    assert "db-pass-5d2f" not in result.stderr + result.stdout


def test_run_and_submit_take_the_preset_flags():
    from pipeline_cli import beam_runner_args, parse_args

    flags = ["--beam-runner", "dataflow", "--dataflow-project", "my-project", "--dataflow-region", "europe-west4",
             "--beam-temp-root", "gs://lp-dataflow-temp/runs", "--worker-image", DATAFLOW.worker_image,
             "--dataflow-service-account", DATAFLOW.service_account, "--dataflow-machine-type", "n2-standard-4",
             "--dataflow-max-workers", "8"]
    for command in (["run"], ["submit", "--vertex"]):
        args = parse_args([*command, *flags])
        assert shlex.split(beam_runner_args(args, "--experiments=shuffle_mode=service")) == [
            *DATAFLOW.args(), "--experiments=shuffle_mode=service"]
    with pytest.raises(StageError, match="^--beam-runner portable needs --beam-job-endpoint and --beam-worker-pool"):
        beam_runner_args(parse_args(["run", "--beam-runner", "portable", "--beam-temp-root", "s3://b/p"]), "")


@pytest.mark.slow  # starts SeaweedFS
def test_local_artifacts_reach_remote_workers_and_their_outputs_come_back(tmp_path, monkeypatch):
    """A pod-local artifact is uploaded under the temp root for remote workers; what they wrote there is read
    back as files (train's download, the mirror into the artifact's folder), and nothing is fetched twice."""
    from components.state.storage import Storage, StorageSettings
    from object_stores import s3_client, s3_environment, seaweedfs

    (tmp_path / "weed").mkdir()
    with seaweedfs(str(tmp_path / "weed")) as endpoint:
        for name, value in s3_environment(endpoint).items():
            monkeypatch.setenv(name, value)
        s3_client(endpoint).create_bucket(Bucket="lp-beam")
        remote_args = combine(PORTABLE.args(), f"--s3_endpoint_url={endpoint}")
        storage = Storage(StorageSettings(s3_endpoint_url=endpoint))

        folder = tmp_path / "run-1" / "ingest" / "examples"
        (folder / "Split-train").mkdir(parents=True)
        (folder / "Split-train" / "data.gz").write_bytes(b"examples")
        uri = beam_runner.input_uri(_artifact(str(folder)), remote_args, storage=storage)
        assert uri == "s3://lp-beam/runs/artifacts/run-1/ingest/examples"
        assert storage.read_bytes(uri + "/Split-train/data.gz", "--test") == b"examples"

        written = _artifact(str(tmp_path / "run-1" / "transform" / "transformed_examples"))
        out = beam_runner.output_uri(written, remote_args)
        storage.write_bytes(out + "/Split-eval/part.gz", b"transformed", "--test")
        with beam_runner.local_view(written, storage) as local:
            assert open(os.path.join(local, "Split-eval", "part.gz"), "rb").read() == b"transformed"
        beam_runner.mirror(out, written.path, storage)
        assert open(os.path.join(written.path, "Split-eval", "part.gz"), "rb").read() == b"transformed"
        # A file already in the artifact's folder (Vertex AI's /gcs view of the bucket) is left as it is.
        with open(os.path.join(written.path, "Split-eval", "part.gz"), "wb") as sink:
            sink.write(b"kept")
        beam_runner.mirror(out, written.path, storage)
        assert open(os.path.join(written.path, "Split-eval", "part.gz"), "rb").read() == b"kept"


def test_a_portable_stage_waits_its_own_time_limit_for_the_job_and_names_a_silent_job_service(monkeypatch):
    """Beam's PortableRunner reads the job's state with --job_server_timeout (60 s by default), which ended
    any longer job with DEADLINE_EXCEEDED; a stage gives it its own limit, once the job service answers."""
    import grpc

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        args = combine(RunnerPreset(runner="portable", temp_root="gs://b/p", job_endpoint=f"127.0.0.1:{port}",
                                    worker_pool="localhost:50000").args(), "")
        assert "--job_server_timeout=7200" in beam_runner.stage_beam_args(args, "transform", time_limit=7200)
        assert "--job_server_timeout" not in beam_runner.stage_beam_args(args, "transform")
        given = beam_runner.stage_beam_args(combine(args, "--job_server_timeout=30"), "transform", time_limit=7200)
        assert "--job_server_timeout=30" in given and "--job_server_timeout=7200" not in given
    finally:
        server.stop(0)
    silent = combine(RunnerPreset(runner="portable", temp_root="gs://b/p", job_endpoint=f"127.0.0.1:{free_port()}",
                                  worker_pool="localhost:50000").args(), "")
    monkeypatch.setattr(beam_runner, "JOB_SERVICE_WAIT_S", 1)
    with pytest.raises(StageError, match=r"^evaluate: Beam's job service at 127\.0\.0\.1:\d+ \(--beam-job-endpoint\) "
                                         r"did not answer within 1 s: start it, or give the address it listens on\.$"):
        beam_runner.stage_beam_args(silent, "evaluate", time_limit=7200)
