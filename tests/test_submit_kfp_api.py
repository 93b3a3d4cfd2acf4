"""`submit --host` against a small stand-in for KFP's v2beta1 REST API, on loopback.

The stand-in answers the calls kfp.Client (the real one) makes to upload a pipeline, add a version,
find or create an experiment and start and watch a run, and keeps what it was sent, so the tests
see what a KFP server would have stored: a pipeline, a version named after the git revision, a run
of that version with typed arguments."""
import json
import os
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = "/apis/v2beta1"


class KfpApi:
    """What the stand-in server holds, and how its runs end."""

    def __init__(self, run_state="SUCCEEDED"):
        self.pipelines, self.versions, self.experiments, self.runs = [], [], [], []
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
            return yaml.safe_load(upload.get_payload(decode=True))

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
                    {k: v for k, v in version.items() if k != "spec"} for version in api.versions
                    if version["pipeline_id"] == versions[1] and version["display_name"] == name]})
            if url.path == f"{API}/experiments":
                name = _name_filter(query)
                return self._reply({"experiments": [e for e in api.experiments if e["display_name"] == name]})
            if run := re.fullmatch(f"{API}/runs/([^/]+)", url.path):
                return self._reply({"run_id": run[1], "state": api.run_state})
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
            return self._reply({"error": "not found"}, 404)

        def _add_version(self, pipeline_id, name, spec):
            version = {"pipeline_id": pipeline_id, "pipeline_version_id": f"v{len(api.versions) + 1}",
                       "display_name": name, "spec": spec}
            api.versions.append(version)
            return {k: v for k, v in version.items() if k != "spec"}

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
