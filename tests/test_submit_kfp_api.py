"""`submit --host` against a small stand-in for KFP's v2beta1 REST API, on loopback.

The stand-in answers the calls kfp.Client (the real one) makes to upload a pipeline, add a version,
find or create an experiment, start and watch a run, and create, list and delete recurring runs, and
keeps what it was sent, so the tests see what a KFP server would have stored: a pipeline, a version
named after the git revision, a run of that version with typed arguments, a schedule."""
import json
import re
import subprocess
import sys
import threading
import urllib.parse
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from helpers import REPO

API = "/apis/v2beta1"


class KfpApi:
    """What the stand-in server holds, and how its runs end."""

    def __init__(self, run_state="SUCCEEDED"):
        self.pipelines, self.versions, self.experiments, self.runs = [], [], [], []
        self.recurring_runs, self.deleted_recurring_runs = [], []
        self.run_state = run_state


def _name_filter(query):
    predicates = json.loads(query.get("filter", ["{}"])[0]).get("predicates", [])
    return next((p.get("string_value", p.get("stringValue")) for p in predicates), None)


def _handler(api):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, body, status=200):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _uploaded_spec(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            form = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
            (upload,) = [part for part in form.iter_parts()
                         if part.get_param("name", header="content-disposition") == "uploadfile"]
            # The pipeline spec, then the platform spec (kfp-kubernetes settings) when there is one.
            return [document for document in yaml.safe_load_all(upload.get_payload(decode=True)) if document]

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path == f"{API}/healthz":
                return self._reply({"multi_user": False})
            if url.path == f"{API}/pipelines":
                name = _name_filter(query)
                return self._reply({"pipelines": [p for p in api.pipelines if p["display_name"] == name]})
            if versions := re.fullmatch(f"{API}/pipelines/([^/]+)/versions", url.path):
                name = _name_filter(query)
                return self._reply({"pipeline_versions": [
                    {k: v for k, v in version.items() if k not in ("spec", "platform_spec")} for version in api.versions
                    if version["pipeline_id"] == versions[1] and version["display_name"] == name]})
            if url.path == f"{API}/experiments":
                name = _name_filter(query)
                return self._reply({"experiments": [e for e in api.experiments if e["display_name"] == name]})
            if run := re.fullmatch(f"{API}/runs/([^/]+)", url.path):
                return self._reply({"run_id": run[1], "state": api.run_state})
            if url.path == f"{API}/recurringruns":
                name, experiment = _name_filter(query), query.get("experiment_id", [None])[0]
                return self._reply({"recurringRuns": [
                    r for r in api.recurring_runs if r["display_name"] == name and r["experiment_id"] == experiment]})
            return self._reply({"error": "not found"}, 404)

        def do_DELETE(self):
            url = urllib.parse.urlparse(self.path)
            if recurring := re.fullmatch(f"{API}/recurringruns/([^/]+)", url.path):
                api.deleted_recurring_runs.append(recurring[1])
                api.recurring_runs[:] = [r for r in api.recurring_runs if r["recurring_run_id"] != recurring[1]]
                return self._reply({})
            return self._reply({"error": "not found"}, 404)

        def do_POST(self):
            url = urllib.parse.urlparse(self.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            if url.path == f"{API}/pipelines/upload":
                pipeline = {"pipeline_id": f"p{len(api.pipelines) + 1}", "display_name": query["name"]}
                api.pipelines.append(pipeline)
                # KFP makes the upload the pipeline's first version, named after the pipeline.
                self._add_version(pipeline["pipeline_id"], query["name"], self._uploaded_spec())
                return self._reply(pipeline)
            if url.path == f"{API}/pipelines/upload_version":
                return self._reply(self._add_version(query["pipelineid"], query["name"], self._uploaded_spec()))
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if url.path == f"{API}/experiments":
                experiment = {"experiment_id": f"e{len(api.experiments) + 1}", "display_name": body["display_name"]}
                api.experiments.append(experiment)
                return self._reply(experiment)
            if url.path == f"{API}/runs":
                run = {"run_id": f"r{len(api.runs) + 1}", **body, "state": "PENDING"}
                api.runs.append(run)
                return self._reply(run)
            if url.path == f"{API}/recurringruns":
                count = len(api.recurring_runs) + len(api.deleted_recurring_runs)
                recurring_run = {"recurring_run_id": f"rr{count + 1}", **body, "status": "ENABLED"}
                api.recurring_runs.append(recurring_run)
                return self._reply(recurring_run)
            return self._reply({"error": "not found"}, 404)

        def _add_version(self, pipeline_id, name, documents):
            version = {"pipeline_id": pipeline_id, "pipeline_version_id": f"v{len(api.versions) + 1}",
                       "display_name": name, "spec": documents[0],
                       "platform_spec": documents[1] if len(documents) > 1 else None}
            api.versions.append(version)
            return {k: v for k, v in version.items() if k not in ("spec", "platform_spec")}

    return Handler


@pytest.fixture
def kfp_api():
    api = KfpApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.host = f"http://127.0.0.1:{server.server_address[1]}"
    yield api
    server.shutdown()
    server.server_close()


def submit(host, *flags):
    result = subprocess.run([sys.executable, "pipeline.py", "submit", "--host", host, *flags], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout, result.stderr


def test_first_submission_creates_the_pipeline_a_revision_version_and_a_run(kfp_api):
    code, stdout, stderr = submit(kfp_api.host, "--version-name", "3125482a1b2c", "--experiment", "ci",
                                  "--param", "serving_root=/mnt/living-pipeline/serving", "--param",
                                  "train_steps=50", "--wait")
    assert code == 0, stderr
    assert [p["display_name"] for p in kfp_api.pipelines] == ["living-pipeline"]
    assert [v["display_name"] for v in kfp_api.versions] == ["living-pipeline", "3125482a1b2c"]
    assert kfp_api.versions[1]["spec"]["pipelineInfo"]["name"] == "living-pipeline"
    assert [e["display_name"] for e in kfp_api.experiments] == ["ci"]
    (run,) = kfp_api.runs
    assert run["pipeline_version_reference"] == {"pipeline_id": "p1", "pipeline_version_id": "v2"}
    assert run["experiment_id"] == "e1"
    assert run["runtime_config"]["parameters"] == {"serving_root": "/mnt/living-pipeline/serving",
                                                   "train_steps": 50}
    assert "Run r1 of living-pipeline version 3125482a1b2c started" in stdout and stdout.rstrip().endswith(
        ": SUCCEEDED")


def test_a_new_revision_adds_a_version_and_the_same_revision_reuses_it(kfp_api):
    for revision in ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "bbbbbbbbbbbb"]:
        code, _, stderr = submit(kfp_api.host, "--version-name", revision, "--param", "serving_root=/s")
        assert code == 0, stderr
    assert len(kfp_api.pipelines) == 1
    assert [v["display_name"] for v in kfp_api.versions] == ["living-pipeline", "aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    assert [r["pipeline_version_reference"]["pipeline_version_id"] for r in kfp_api.runs] == ["v2", "v3", "v3"]
    assert len(kfp_api.experiments) == 1


def test_without_a_version_name_the_version_is_named_after_the_checkouts_revision(kfp_api):
    code, _, stderr = submit(kfp_api.host, "--param", "serving_root=/s")
    assert code == 0, stderr
    revision = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    assert kfp_api.versions[-1]["display_name"].startswith(revision)


def test_a_failed_run_fails_the_submission_with_one_line(kfp_api):
    kfp_api.run_state = "FAILED"
    code, _, stderr = submit(kfp_api.host, "--version-name", "cccccccccccc", "--param", "serving_root=/s", "--wait")
    assert code == 1
    assert stderr.strip() == (f"Error: run r1 ended FAILED: see {kfp_api.host}/#/runs/details/r1 for the "
                              "failing stage's log")


def test_a_schedule_creates_a_recurring_run_of_the_revisions_version_one_at_a_time(kfp_api):
    code, stdout, stderr = submit(kfp_api.host, "--version-name", "3125482a1b2c", "--experiment", "nightly",
                                  "--kfp-s3-endpoint", "http://minio-service.kubeflow:9000",
                                  "--param", "serving_root=s3://mlpipeline/living-pipeline/serving",
                                  "--schedule", "0 6 * * *")
    assert code == 0, stderr
    assert kfp_api.runs == []  # a schedule, not a run now
    (recurring_run,) = kfp_api.recurring_runs
    assert recurring_run["display_name"] == "living-pipeline schedule"
    assert recurring_run["experiment_id"] == "e1"
    assert recurring_run["pipeline_version_reference"] == {"pipeline_id": "p1", "pipeline_version_id": "v2"}
    assert [v["display_name"] for v in kfp_api.versions] == ["living-pipeline", "3125482a1b2c"]
    assert recurring_run["trigger"] == {"cron_schedule": {"cron": "0 0 6 * * *"}}
    assert int(recurring_run["max_concurrency"]) == 1 and recurring_run["no_catchup"] is True
    assert recurring_run["mode"] == "ENABLE"
    # The latest span each time: no span argument, so the spec's default (0, the latest) holds.
    assert recurring_run["runtime_config"]["parameters"] == {
        "serving_root": "s3://mlpipeline/living-pipeline/serving"}
    # The version it runs gives every stage the object store through the environment, not parameters:
    # the endpoint in the spec, the keys from KFP's Secret in the platform spec.
    spec, platform = kfp_api.versions[1]["spec"], kfp_api.versions[1]["platform_spec"]
    executors = spec["deploymentSpec"]["executors"]
    assert all(e["container"]["env"] == [{"name": "AWS_ENDPOINT_URL", "value": "http://minio-service.kubeflow:9000"}]
               for e in executors.values())
    secrets = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert sorted(secrets) == sorted(executors)
    assert all(config["secretAsEnv"][0]["secretNameParameter"]["runtimeValue"]["constant"]
               == "mlpipeline-minio-artifact" for config in secrets.values())
    assert stdout.strip().splitlines()[-1] == ("Recurring run rr1 of living-pipeline version 3125482a1b2c on "
                              f"{kfp_api.host}: '0 6 * * *' (the latest span each time), at most 1 at once")


def test_a_new_schedule_replaces_the_previous_one_and_runs_the_new_revision(kfp_api):
    for revision, concurrency in [("aaaaaaaaaaaa", "1"), ("bbbbbbbbbbbb", "2")]:
        code, stdout, stderr = submit(kfp_api.host, "--version-name", revision, "--param", "serving_root=/s",
                                      "--schedule", "30 2 * * 1-5", "--max-concurrency", concurrency)
        assert code == 0, stderr
    (recurring_run,) = kfp_api.recurring_runs
    assert kfp_api.deleted_recurring_runs == ["rr1"]
    assert recurring_run["recurring_run_id"] == "rr2"
    assert recurring_run["pipeline_version_reference"]["pipeline_version_id"] == "v3"
    assert int(recurring_run["max_concurrency"]) == 2
    assert "Replaced the previous schedule rr1" in stdout


def test_a_schedule_in_another_experiment_is_left_alone(kfp_api):
    for experiment in ["nightly", "weekly"]:
        code, _, stderr = submit(kfp_api.host, "--version-name", "aaaaaaaaaaaa", "--experiment", experiment,
                                 "--param", "serving_root=/s", "--schedule", "0 6 * * *")
        assert code == 0, stderr
    assert len(kfp_api.recurring_runs) == 2 and kfp_api.deleted_recurring_runs == []


def test_a_schedule_with_a_span_is_refused_before_anything_is_sent(kfp_api):
    code, _, stderr = submit(kfp_api.host, "--version-name", "aaaaaaaaaaaa", "--param", "serving_root=/s",
                             "--param", "span=3", "--schedule", "0 6 * * *")
    assert code == 1
    assert stderr.strip() == ("Error: --param span=3: scheduled runs take the latest span; leave out --param "
                              "span with --schedule")
    assert kfp_api.pipelines == [] and kfp_api.recurring_runs == []


def test_storage_options_become_the_runs_storage_settings_and_leave_beam_args(kfp_api):
    """Storage options given as Beam flags (the documented --param beam_args=--s3_endpoint_url=...) and the
    storage flags reach the run as one typed parameter, storage_settings; beam_args keeps the rest."""
    code, _, stderr = submit(kfp_api.host, "--version-name", "5a1b2c3d4e5f", "--s3-region", "eu-west-1",
                             "--param", "serving_root=s3://mlpipeline/serving", "--param",
                             "beam_args=--s3_endpoint_url=http://minio-service.kubeflow:9000 --direct_num_workers=2")
    assert code == 0, stderr
    (run,) = kfp_api.runs
    parameters = run["runtime_config"]["parameters"]
    assert json.loads(parameters.pop("storage_settings")) == {
        "s3_endpoint_url": "http://minio-service.kubeflow:9000", "s3_region_name": "eu-west-1"}
    assert parameters == {"serving_root": "s3://mlpipeline/serving", "beam_args": "--direct_num_workers=2"}


def test_a_submitted_time_limit_reaches_the_run_and_the_pods_of_the_spec_it_compiles(kfp_api):
    """`--param stage_timeouts` goes over the spec's defaults; the spec submit compiles for KFP gives the pods
    deadlines a little after those limits, so a longer limit is not cut short by the platform."""
    code, _, stderr = submit(kfp_api.host, "--version-name", "7c1b2c3d4e5f", "--kfp-volume", "state",
                             "--param", "serving_root=/mnt/living-pipeline/serving",
                             "--param", "stage_timeouts=train=30h,transform=10m")
    assert code == 0, stderr
    (run,) = kfp_api.runs
    limits = dict(pair.split("=") for pair in run["runtime_config"]["parameters"]["stage_timeouts"].split(","))
    assert {stage: int(seconds) for stage, seconds in limits.items()} == {
        "ingest": 7200, "statistics": 7200, "schema": 1800, "validate": 1800, "transform": 600, "tune": 21600,
        "train": 108000, "evaluate": 7200, "push": 14400}
    executors = kfp_api.versions[-1]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert int(executors["exec-train"]["activeDeadlineSeconds"]) == 108000 + 300
    assert int(executors["exec-transform"]["activeDeadlineSeconds"]) == 600 + 300
