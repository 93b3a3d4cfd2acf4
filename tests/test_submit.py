"""Submitting to clusters: one spec for KFP and Vertex AI, version names from git, and failures that
are one clear line with nothing sent: an unreachable KFP, missing Google credentials, bad arguments."""
import os
import socket
import subprocess
import sys

import pytest
import yaml

from components.cluster import STAGE_RESOURCES, STATE_MOUNT_PATH, STATE_STAGES
from components.submit import SubmissionError, git_revision, pipeline_arguments, read_spec, version_name
from pipeline import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, env=None):
    """Runs pipeline.py as a user does; returns (exit code, stdout, stderr)."""
    result = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), *args], capture_output=True,
                            text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=300)
    return result.returncode, result.stdout, result.stderr


def unused_loopback_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specs")
    portable, kfp = str(folder / "portable.yaml"), str(folder / "kfp.yaml")
    assert main(["compile", "--output", portable]) == 0
    assert main(["compile", "--output", kfp, "--kfp-volume", "living-pipeline-state"]) == 0
    return portable, kfp


def executors(spec):
    return spec["deploymentSpec"]["executors"]


def test_portable_spec_has_no_kubernetes_settings_and_every_stage_has_resources(specs):
    with open(specs[0]) as source:
        documents = [document for document in yaml.safe_load_all(source) if document]
    assert len(documents) == 1 and "platforms" not in documents[0]
    for name, executor in executors(documents[0]).items():
        expected = STAGE_RESOURCES[name.removeprefix("exec-")]
        resources = executor["container"]["resources"]
        assert (resources["resourceCpuRequest"], resources["resourceCpuLimit"],
                resources["resourceMemoryRequest"], resources["resourceMemoryLimit"]) == expected


def test_kfp_spec_mounts_the_state_volume_in_the_state_stages_only(specs):
    spec, platform = read_spec(specs[1])
    assert executors(spec) == executors(read_spec(specs[0])[0])  # the same stages, images and resources
    mounts = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert sorted(mounts) == sorted(f"exec-{stage}" for stage in STATE_STAGES)
    for config in mounts.values():
        assert [(m["pvcNameParameter"]["runtimeValue"]["constant"], m["mountPath"]) for m in config["pvcMount"]] \
            == [("living-pipeline-state", STATE_MOUNT_PATH)]


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
    first, second = version_name(dirty), version_name(dirty)
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
    host = f"http://127.0.0.1:{unused_loopback_port()}"
    code, stdout, stderr = cli("submit", "--host", host, "--spec", specs[0], "--param", "serving_root=/mnt/s")
    assert code == 1
    assert stderr.strip().splitlines() == [stderr.strip()]  # one line, no traceback
    assert stderr.startswith(f"Error: KFP API at {host} cannot be reached (")
    assert "scripts/kind-up.sh" in stderr and "Run " not in stdout


def test_a_missing_argument_stops_before_contacting_kfp(specs):
    host = f"http://127.0.0.1:{unused_loopback_port()}"
    code, _, stderr = cli("submit", "--host", host, "--spec", specs[0])
    assert code == 1
    assert stderr.strip() == "Error: the pipeline needs serving_root: pass --param serving_root=VALUE " \
                             "(e.g. serving_root=/mnt/living-pipeline/serving)"


def test_a_credential_in_beam_args_is_refused_before_contacting_kfp(specs):
    host = f"http://127.0.0.1:{unused_loopback_port()}"
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


def test_vertex_refuses_the_kfp_volume_flag(specs):
    code, _, stderr = cli("submit", "--vertex", "--project", "p", "--region", "r", "--pipeline-root", "gs://b/r",
                          "--kfp-volume", "living-pipeline-state", "--param", "serving_root=/s")
    assert code == 2 and stderr.strip() == ("Error: --kfp-volume is for open-source KFP only: Vertex AI runs the "
                                            "portable spec; leave it out")
