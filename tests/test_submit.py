"""Submitting to clusters: one spec for KFP and Vertex AI, version names from git, and failures that
are one clear line with nothing sent: an unreachable KFP, missing Google credentials, bad arguments."""
import os
import subprocess
import sys

import pytest
import yaml

from components.platform.cluster import KEY_VARIABLES, KFP_OBJECT_STORE, STATE_MOUNT_PATH
from components.platform.submit import (
    SubmissionError,
    check_schedule,
    git_revision,
    kfp_cron,
    pipeline_arguments,
    read_spec,
    version_name,
)
from components.stage_table import BY_NAME, STAGES
from helpers import REPO, free_port
from pipeline_cli import main


def cli(*args, env=None):
    """Runs pipeline.py as a user does; returns (exit code, stdout, stderr)."""
    result = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), *args], capture_output=True,
                            text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=300)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specs")
    portable, kfp = str(folder / "portable.yaml"), str(folder / "kfp.yaml")
    object_store = str(folder / "kfp-object-store.yaml")
    assert main(["compile", "--output", portable]) == 0
    assert main(["compile", "--output", kfp, "--kfp-volume", "living-pipeline-state"]) == 0
    assert main(["compile", "--output", object_store, "--kfp-s3-endpoint", KFP_OBJECT_STORE.endpoint]) == 0
    return portable, kfp, object_store


def executors(spec):
    return spec["deploymentSpec"]["executors"]


def test_portable_spec_has_no_kubernetes_settings_and_every_stage_has_resources(specs):
    with open(specs[0]) as source:
        documents = [document for document in yaml.safe_load_all(source) if document]
    assert len(documents) == 1 and "platforms" not in documents[0]
    for name, executor in executors(documents[0]).items():
        expected = BY_NAME[name.removeprefix("exec-")].resources
        resources = executor["container"]["resources"]
        assert (resources["resourceCpuRequest"], resources["resourceCpuLimit"],
                resources["resourceMemoryRequest"], resources["resourceMemoryLimit"]) == expected


def test_kfp_spec_mounts_the_state_volume_in_the_state_stages_only(specs):
    spec, platform = read_spec(specs[1])
    assert executors(spec) == executors(read_spec(specs[0])[0])  # the same stages, images and resources
    # Every executor has a pod deadline there (tests/test_stage_time_limits.py); the state stages also the volume.
    mounts = {name: config for name, config in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
              .items() if "pvcMount" in config}
    assert sorted(mounts) == sorted(f"exec-{stage.name}" for stage in STAGES if stage.kept_state)
    for config in mounts.values():
        assert [(m["pvcNameParameter"]["runtimeValue"]["constant"], m["mountPath"]) for m in config["pvcMount"]] \
            == [("living-pipeline-state", STATE_MOUNT_PATH)]


def test_kfp_object_store_spec_gives_every_stage_the_endpoint_and_the_secrets_keys_as_environment(specs):
    spec, platform = read_spec(specs[2])
    portable = executors(read_spec(specs[0])[0])
    secrets = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert sorted(secrets) == sorted(portable)  # every stage: any may read or write a bucket
    for name, executor in executors(spec).items():
        container = executor["container"]
        assert container["env"] == [{"name": "AWS_ENDPOINT_URL", "value": KFP_OBJECT_STORE.endpoint}]
        assert {k: v for k, v in container.items() if k != "env"} == portable[name]["container"]
        (secret,) = secrets[name]["secretAsEnv"]
        assert secret["secretNameParameter"]["runtimeValue"]["constant"] == "mlpipeline-minio-artifact"
        assert sorted((pair["secretKey"], pair["envVar"]) for pair in secret["keyToEnv"]) == [
            ("accesskey", KEY_VARIABLES[0]), ("secretkey", KEY_VARIABLES[1])]
        assert "pvcMount" not in secrets[name]
    # Credentials are never parameters: the spec names the Secret, not its keys' values.
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert not [name for name in parameters if "key" in name or "secret" in name or "endpoint" in name]


def test_the_object_store_secret_can_be_another(tmp_path):
    path = str(tmp_path / "spec.yaml")
    assert main(["compile", "--output", path, "--kfp-s3-endpoint", "http://s3.storage:8333",
                 "--kfp-s3-secret", "pipeline-s3"]) == 0
    spec, platform = read_spec(path)
    for config in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
        assert config["secretAsEnv"][0]["secretNameParameter"]["runtimeValue"]["constant"] == "pipeline-s3"
    assert {executor["container"]["env"][0]["value"] for executor in executors(spec).values()} == {
        "http://s3.storage:8333"}


def test_a_schedule_is_five_cron_fields_and_takes_the_latest_span():
    check_schedule("0 6 * * *", {"serving_root": "s3://b/s"}, 1)
    check_schedule("*/30 * * * 1-5", {"span": 0}, 2)
    assert kfp_cron("0 6 * * *") == "0 0 6 * * *"  # KFP's cron has seconds first
    with pytest.raises(SubmissionError, match=r"--schedule '0 0 6 \* \* \*': give a cron expression of 5 fields"):
        check_schedule("0 0 6 * * *", {}, 1)
    with pytest.raises(SubmissionError, match=r"--param span=2: scheduled runs take the latest span"):
        check_schedule("0 6 * * *", {"span": 2}, 1)
    with pytest.raises(SubmissionError, match=r"--max-concurrency 0: give 1 or more"):
        check_schedule("0 6 * * *", {}, 0)


def test_a_schedule_with_wait_or_a_bad_cron_stops_before_contacting_kfp(specs):
    host = f"http://127.0.0.1:{free_port()}"
    code, _, stderr = cli("submit", "--host", host, "--spec", specs[0], "--param", "serving_root=s3://b/s",
                          "--schedule", "0 6 * * *", "--wait")
    assert code == 2 and stderr.strip() == ("Error: --wait waits for one run; a --schedule starts runs later: "
                                            "leave out one of them")
    code, _, stderr = cli("submit", "--host", host, "--spec", specs[0], "--param", "serving_root=s3://b/s",
                          "--schedule", "daily")
    assert code == 1 and stderr.strip().splitlines() == [stderr.strip()]
    assert stderr.startswith("Error: --schedule 'daily': give a cron expression of 5 fields")


def test_version_name_is_the_git_revision_and_a_dirty_tree_gets_the_time(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "pipeline.py").write_text("one\n")
    git("add", "pipeline.py")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    revision = git("rev-parse", "--short=12", "HEAD")
    assert git_revision(str(tmp_path)) == revision
    assert version_name(git_revision(str(tmp_path))) == revision

    (tmp_path / "pipeline.py").write_text("two\n")
    dirty = git_revision(str(tmp_path))
    assert dirty == f"{revision}-dirty"
    first = version_name(dirty)
    assert first.startswith(f"{revision}-dirty-") and len(first) == len(f"{revision}-dirty-20260101-000000")


def test_not_a_git_checkout_is_one_clear_error(tmp_path):
    with pytest.raises(SubmissionError, match=r"is not a git checkout .*--version-name"):
        git_revision(str(tmp_path))


def test_arguments_are_typed_by_the_spec_and_checked_before_anything_is_sent(specs):
    spec, _ = read_spec(specs[0])
    assert pipeline_arguments(spec, ["serving_root=/mnt/s", "train_steps=5", "threshold=0.5",
                                     "block_on_anomalies=false"]) == {
        "serving_root": "/mnt/s", "train_steps": 5, "threshold": 0.5, "block_on_anomalies": False}
    with pytest.raises(SubmissionError, match=r"--param train_step: the pipeline has no such parameter"):
        pipeline_arguments(spec, ["serving_root=/s", "train_step=5"])
    with pytest.raises(SubmissionError, match=r"--param train_steps=many: not a number integer"):
        pipeline_arguments(spec, ["serving_root=/s", "train_steps=many"])
    with pytest.raises(SubmissionError, match=r"the pipeline needs serving_root: pass --param serving_root="):
        pipeline_arguments(spec, [])


def test_unreachable_kfp_is_one_clear_error(specs):
    host = f"http://127.0.0.1:{free_port()}"
    code, stdout, stderr = cli("submit", "--host", host, "--spec", specs[0], "--param", "serving_root=/mnt/s")
    assert code == 1
    assert stderr.strip().splitlines() == [stderr.strip()]  # one line, no traceback
    assert stderr.startswith(f"Error: KFP API at {host} cannot be reached (")
    assert "scripts/kind-up.sh" in stderr and "Run " not in stdout


def test_a_missing_argument_stops_before_contacting_kfp(specs):
    host = f"http://127.0.0.1:{free_port()}"
    code, _, stderr = cli("submit", "--host", host, "--spec", specs[0])
    assert code == 1
    assert stderr.strip() == "Error: the pipeline needs serving_root: pass --param serving_root=VALUE " \
                             "(e.g. serving_root=/mnt/living-pipeline/serving)"


def test_an_unknown_csv_delimiter_is_refused_before_contacting_kfp(specs):
    host = f"http://127.0.0.1:{free_port()}"
    code, _, stderr = cli("submit", "--host", host, "--spec", specs[0], "--param", "serving_root=/mnt/s",
                          "--param", "csv_delimiter=:")
    assert code == 1 and stderr.strip().splitlines() == [stderr.strip()]
    assert stderr.startswith("Error: --param csv_delimiter ':' is not a delimiter ingest reads: give ',', ';', ")


def test_a_credential_in_beam_args_is_refused_before_contacting_kfp(specs):
    host = f"http://127.0.0.1:{free_port()}"
    code, stdout, stderr = cli("submit", "--host", host, "--spec", specs[0], "--param", "serving_root=s3://models",
                               "--param", "beam_args=--s3_endpoint_url=http://s3:8333 --s3_secret_access_key=k3y-9f")
    assert code == 1
    assert stderr.strip().splitlines() == [stderr.strip()]
    assert stderr.startswith("Error: --param beam_args holds --s3_secret_access_key, a credential: ")
    assert "k3y-9f" not in stdout + stderr and "cannot be reached" not in stderr


def test_vertex_without_credentials_is_one_clear_error(specs, tmp_path):
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-such-key.json"),
           "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}
    code, _, stderr = cli("submit", "--vertex", "--project", "p", "--region", "europe-west4", "--pipeline-root",
                          "gs://bucket/root", "--spec", specs[0], "--param", "serving_root=gs://bucket/serving",
                          env=env)
    assert code == 1
    assert stderr.strip().splitlines() == [stderr.strip()]
    assert stderr.startswith("Error: no Google Cloud credentials for Vertex AI: run `gcloud auth "
                             "application-default login`")
    assert "no-such-key.json" in stderr


def test_vertex_refuses_the_kfp_flavoured_spec(specs, tmp_path):
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-such-key.json")}
    code, _, stderr = cli("submit", "--vertex", "--project", "p", "--region", "europe-west4", "--pipeline-root",
                          "gs://bucket/root", "--spec", specs[1], "--param", "serving_root=gs://bucket/serving",
                          env=env)
    assert code == 1
    assert "carries KFP-only platform settings (kfp-kubernetes)" in stderr


def test_vertex_needs_project_region_and_a_gcs_pipeline_root(specs):
    code, _, stderr = cli("submit", "--vertex", "--spec", specs[0])
    assert code == 2 and stderr.strip() == "Error: submit --vertex needs --project, --region, --pipeline-root"
    code, _, stderr = cli("submit", "--vertex", "--project", "p", "--region", "r", "--pipeline-root", "/tmp/x",
                          "--spec", specs[0], "--param", "serving_root=/s")
    assert code == 1 and "--pipeline-root /tmp/x: Vertex AI needs a Cloud Storage URI" in stderr


@pytest.mark.parametrize("flag, value", [("--kfp-volume", "living-pipeline-state"),
                                         ("--kfp-s3-endpoint", KFP_OBJECT_STORE.endpoint)])
def test_vertex_refuses_the_kfp_only_flags(specs, flag, value):
    code, _, stderr = cli("submit", "--vertex", "--project", "p", "--region", "r", "--pipeline-root", "gs://b/r",
                          flag, value, "--param", "serving_root=/s")
    assert code == 2 and stderr.strip() == (f"Error: {flag} is for open-source KFP only: Vertex AI runs the "
                                            "portable spec; leave it out")


def test_vertex_refuses_the_object_store_spec(specs, tmp_path):
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-such-key.json")}
    code, _, stderr = cli("submit", "--vertex", "--project", "p", "--region", "europe-west4", "--pipeline-root",
                          "gs://bucket/root", "--spec", specs[2], "--param", "serving_root=gs://bucket/serving",
                          env=env)
    assert code == 1 and "carries KFP-only platform settings (kfp-kubernetes)" in stderr


def test_a_vertex_schedule_without_credentials_is_one_clear_error_and_creates_nothing(specs, tmp_path):
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-such-key.json"),
           "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}
    code, _, stderr = cli("submit", "--vertex", "--project", "p", "--region", "europe-west4", "--pipeline-root",
                          "gs://bucket/root", "--spec", specs[0], "--param", "serving_root=gs://bucket/serving",
                          "--schedule", "0 6 * * *", env=env)
    assert code == 1 and stderr.strip().splitlines() == [stderr.strip()]
    assert stderr.startswith("Error: no Google Cloud credentials for Vertex AI")
