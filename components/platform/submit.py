"""Submitting the compiled pipeline spec to a cluster: open-source KFP (kfp.Client) or Vertex AI Pipelines.

The same YAML goes to both. On KFP the spec is uploaded as a pipeline version named after the git
revision (the pipeline is created on first upload) and a run of that version starts; on Vertex AI it
is submitted as a `PipelineJob`. With a schedule (a cron expression), a KFP recurring run of that
version, or a Vertex AI pipeline schedule, takes the run's place: each of its runs takes the latest
span, at most `max_concurrency` at once (1 by default, so two runs never race to publish one model),
and it replaces the pipeline's previous schedule in that experiment (or project and region), so one
schedule runs the newest submitted revision. Everything that can be checked before anything is sent is checked
first (the arguments against the spec's parameters, the endpoint answering, credentials existing),
so a failure leaves nothing half-submitted, and says in one line what to do.
"""
import datetime
import json
import subprocess
import time
import urllib.error
import urllib.request
import warnings

import yaml

from components.platform.cluster import STATE_MOUNT_PATH

# KFP's healthz endpoint: answers without authentication on standalone KFP.
_HEALTHZ_PATH = "/apis/v2beta1/healthz"
_FINISHED_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED", "CANCELING"}
VERSION_NAME_MAX = 100
CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


class SubmissionError(Exception):
    """A submission that cannot go on; the message is one line naming the thing and what to do."""


def git_revision(directory="."):
    """The short git revision of `directory`'s checkout, with `-dirty` when it has uncommitted changes."""
    try:
        revision = subprocess.run(["git", "-C", directory, "rev-parse", "--short=12", "HEAD"], check=True,
                                  capture_output=True, text=True).stdout.strip()
        changes = subprocess.run(["git", "-C", directory, "status", "--porcelain", "--untracked-files=no"],
                                 check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as error:
        raise SubmissionError(f"{directory} is not a git checkout ({error}): submit from a clone, or "
                              "name the version with --version-name") from error
    return f"{revision}-dirty" if changes else revision


def version_name(revision, now=None):
    """The pipeline version's name for a revision. A dirty tree is not that revision: the time is added,
    so each upload from it is a version of its own."""
    if revision.endswith("-dirty"):
        now = now or datetime.datetime.now(datetime.timezone.utc)
        revision = f"{revision}-{now:%Y%m%d-%H%M%S}"
    return revision[:VERSION_NAME_MAX]


def read_spec(spec_path):
    """The pipeline spec (the first YAML document) and the platform spec, if the file has one."""
    try:
        with open(spec_path) as source:
            documents = [document for document in yaml.safe_load_all(source) if document]
    except (OSError, yaml.YAMLError) as error:
        raise SubmissionError(f"pipeline spec {spec_path} cannot be read ({error}): compile it with "
                              "`python pipeline.py compile --output PATH`") from error
    if not documents or "root" not in documents[0]:
        raise SubmissionError(f"{spec_path} is not a compiled pipeline spec: compile it with "
                              "`python pipeline.py compile --output PATH`")
    platform_spec = documents[1] if len(documents) > 1 else documents[0].get("platforms")
    return documents[0], platform_spec


def pipeline_arguments(spec, assignments):
    """Turns `k=v` assignments into the pipeline's typed arguments; every required parameter must be set."""
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    converters = {"NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "STRING": str,
                  "BOOLEAN": lambda text: {"true": True, "false": False}[text.lower()]}
    arguments = {}
    for assignment in assignments:
        name, separator, text = assignment.partition("=")
        if not separator:
            raise SubmissionError(f"--param {assignment!r} is not NAME=VALUE: write e.g. --param train_steps=500")
        if name not in parameters:
            raise SubmissionError(f"--param {name}: the pipeline has no such parameter; it has "
                                  f"{', '.join(sorted(parameters))}")
        kind = parameters[name]["parameterType"]
        try:
            arguments[name] = converters.get(kind, json.loads)(text)
        except (ValueError, KeyError) as error:
            raise SubmissionError(f"--param {name}={text}: not a {kind.lower().replace('_', ' ')}") from error
    missing = sorted(name for name, parameter in parameters.items()
                     if name not in arguments and "defaultValue" not in parameter
                     and not parameter.get("isOptional"))
    if missing:
        raise SubmissionError(f"the pipeline needs {', '.join(missing)}: pass --param "
                              f"{missing[0]}=VALUE (e.g. serving_root={STATE_MOUNT_PATH}/serving)")
    return arguments


def check_schedule(cron, arguments, max_concurrency):
    """Checks a schedule before anything is sent: a five-field cron expression, runs that take the latest span."""
    fields = cron.split()
    if len(fields) != len(CRON_FIELDS):
        raise SubmissionError(f"--schedule {cron!r}: give a cron expression of {len(CRON_FIELDS)} fields "
                              f"({', '.join(CRON_FIELDS)}), e.g. --schedule '0 6 * * *' for 06:00 every day")
    if arguments.get("span"):
        raise SubmissionError(f"--param span={arguments['span']}: scheduled runs take the latest span; "
                              "leave out --param span with --schedule")
    if max_concurrency < 1:
        raise SubmissionError(f"--max-concurrency {max_concurrency}: give 1 or more")


def kfp_cron(cron):
    """KFP's cron format has a seconds field first: a five-field expression runs at second 0."""
    return f"0 {cron}"


def schedule_name(pipeline_name):
    """The one schedule of a pipeline (per KFP experiment, or Vertex AI project and region)."""
    return f"{pipeline_name} schedule"


def check_kfp_endpoint(host, timeout=10):
    """Raises a SubmissionError unless KFP's API answers at `host`."""
    url = host.rstrip("/") + _HEALTHZ_PATH
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        raise SubmissionError(f"KFP API at {host} answered {error.code} {error.reason} on {_HEALTHZ_PATH}: "
                              "is --host the KFP API (ml-pipeline) and not the UI?") from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise SubmissionError(f"KFP API at {host} cannot be reached ({reason}): start it (scripts/kind-up.sh "
                              "forwards it to http://localhost:8888) or pass the right --host") from error


def submit_to_kfp(spec_path, host, arguments, experiment, pipeline_name, revision, wait=False,
                  pipeline_root=None, timeout_s=3600, client=None, log=print, schedule=None, max_concurrency=1):
    """Uploads the spec as version `revision` of `pipeline_name` on KFP at `host` and starts a run, or
    with `schedule` (a five-field cron expression) makes a recurring run of it the pipeline's schedule.

    Returns {"pipeline_id", "version_id", "version_name", "run_id", "state"} (with a schedule,
    "recurring_run_id" and "replaced", the ids of the schedules it replaced, instead of "run_id");
    state is None unless `wait`. A failing run raises SubmissionError after it ends.
    """
    import kfp
    from kfp_server_api.exceptions import ApiException

    check_kfp_endpoint(host)
    # kfp.Client warns that it needs a KFP backend of 2.0.0-beta.2 or later; manifests/kfp installs 2.5.0.
    warnings.filterwarnings("ignore", message="This client only works with Kubeflow Pipeline", category=FutureWarning)
    client = client or kfp.Client(host=host)
    step = "the pipeline lookup"
    try:
        pipeline_id = client.get_pipeline_id(pipeline_name)
        if pipeline_id is None:
            step = "the pipeline upload"
            pipeline_id = client.upload_pipeline(spec_path, pipeline_name=pipeline_name).pipeline_id
        step = f"the upload of version {revision}"
        version = _existing_version(client, pipeline_id, revision)
        if version is None:
            version = client.upload_pipeline_version(spec_path, pipeline_version_name=revision,
                                                     pipeline_id=pipeline_id)
        else:
            log(f"Version {revision} of {pipeline_name} is already uploaded: running it")
        step = f"experiment {experiment}"
        experiment_id = client.create_experiment(experiment).experiment_id
        if schedule:
            return _schedule_on_kfp(client, experiment_id, pipeline_name, pipeline_id, version, revision,
                                    arguments, schedule, max_concurrency, pipeline_root, log)
        step = "the run"
        run = client.run_pipeline(experiment_id, job_name=f"{pipeline_name} {revision}", params=arguments,
                                  pipeline_id=pipeline_id, version_id=version.pipeline_version_id,
                                  pipeline_root=pipeline_root or None)
        result = {"pipeline_id": pipeline_id, "version_id": version.pipeline_version_id,
                  "version_name": revision, "run_id": run.run_id, "state": None}
        if wait:
            step = f"waiting for run {run.run_id}"
            result["state"] = _wait_for_kfp_run(client, run.run_id, timeout_s)
    except ApiException as error:
        raise SubmissionError(f"KFP at {host} refused {step}: {error.status} {error.reason} "
                              f"{_api_message(error)}".rstrip()) from error
    if wait and result["state"] != "SUCCEEDED":
        raise SubmissionError(f"run {result['run_id']} ended {result['state']}: see {host}/#/runs/details/"
                              f"{result['run_id']} for the failing stage's log")
    return result


def _schedule_on_kfp(client, experiment_id, pipeline_name, pipeline_id, version, revision, arguments, schedule,
                     max_concurrency, pipeline_root, log):
    """Replaces the pipeline's recurring run in the experiment with one of `version` (ApiException passes)."""
    name = schedule_name(pipeline_name)
    filter_json = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": name}]})
    previous = client.list_recurring_runs(experiment_id=experiment_id, page_size=100,
                                          filter=filter_json).recurring_runs or []
    recurring_run = client.create_recurring_run(
        experiment_id, job_name=name, description=f"{pipeline_name} version {revision}, every {schedule!r} "
        "(the latest span each time)", cron_expression=kfp_cron(schedule), max_concurrency=max_concurrency,
        no_catchup=True, params=arguments, pipeline_id=pipeline_id, version_id=version.pipeline_version_id,
        pipeline_root=pipeline_root or None)
    for old in previous:
        client.delete_recurring_run(old.recurring_run_id)
        log(f"Replaced the previous schedule {old.recurring_run_id}")
    return {"pipeline_id": pipeline_id, "version_id": version.pipeline_version_id, "version_name": revision,
            "recurring_run_id": recurring_run.recurring_run_id, "state": None,
            "replaced": [old.recurring_run_id for old in previous]}


def _existing_version(client, pipeline_id, name):
    filter_json = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name",
                                              "string_value": name}]})
    versions = client.list_pipeline_versions(pipeline_id, page_size=1, filter=filter_json).pipeline_versions
    return versions[0] if versions else None


def _wait_for_kfp_run(client, run_id, timeout_s, poll_s=10):
    deadline = time.monotonic() + timeout_s
    while True:
        state = str(client.get_run(run_id).state or "").upper()
        if state in _FINISHED_STATES:
            return state
        if time.monotonic() > deadline:
            raise SubmissionError(f"run {run_id} is still {state or 'pending'} after {timeout_s} s: "
                                  "look at it in the KFP UI, or raise --timeout")
        time.sleep(poll_s)


def _api_message(error):
    try:
        return json.loads(error.body).get("message", "")
    except (TypeError, ValueError, AttributeError):
        return ""


def submit_to_vertex(spec_path, project, region, pipeline_root, arguments, display_name, wait=False,
                     service_account=None, log=print, schedule=None, max_concurrency=1, schedule_display_name=None):
    """Submits the spec to Vertex AI Pipelines as a PipelineJob, or with `schedule` (a five-field cron
    expression) as the pipeline schedule `schedule_display_name`, replacing one of that name.
    Returns {"job", "state"} (with a schedule, {"schedule", "state": None, "replaced"})."""
    _, platform_spec = read_spec(spec_path)
    if platform_spec:
        raise SubmissionError(f"{spec_path} carries KFP-only platform settings (kfp-kubernetes): submit the "
                              "portable spec of `python pipeline.py compile` to Vertex AI")
    if not pipeline_root.startswith("gs://"):
        raise SubmissionError(f"--pipeline-root {pipeline_root}: Vertex AI needs a Cloud Storage URI, "
                              "gs://BUCKET/PATH")
    # Google's client libraries warn on import about future Python and google-cloud-storage support:
    # nothing about this job.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\.|$)")
    try:
        import google.auth
        import google.auth.exceptions
        from google.api_core import exceptions as api_exceptions
    except ImportError as error:
        raise SubmissionError(f"the Google auth client is not installed ({error.name}): "
                              "pip install -c constraints.txt '.[vertex]'") from error
    try:
        google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except google.auth.exceptions.DefaultCredentialsError as error:
        raise SubmissionError("no Google Cloud credentials for Vertex AI: run `gcloud auth application-default "
                              "login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key "
                              f"({str(error).splitlines()[0]})") from error
    try:
        from google.cloud import aiplatform
    except ImportError as error:
        raise SubmissionError(f"the Vertex AI client is not installed ({error.name}): "
                              "pip install -c constraints.txt '.[vertex]'") from error
    try:
        job = aiplatform.PipelineJob(display_name=display_name, template_path=spec_path,
                                     pipeline_root=pipeline_root, parameter_values=arguments,
                                     project=project, location=region)
        if schedule:
            previous = aiplatform.PipelineJobSchedule.list(filter=f'display_name="{schedule_display_name}"',
                                                           project=project, location=region)
            created = job.create_schedule(cron=schedule, display_name=schedule_display_name,
                                          max_concurrent_run_count=max_concurrency,
                                          service_account=service_account)
            for old in previous:
                old.delete()
                log(f"Replaced the previous schedule {old.resource_name}")
            log(f"Vertex AI pipeline schedule: {created.resource_name}")
            return {"schedule": created.resource_name, "state": None,
                    "replaced": [old.resource_name for old in previous]}
        job.submit(service_account=service_account)
        log(f"Vertex AI pipeline job: {job.resource_name}")
        state = None
        if wait:
            job.wait()
            state = job.state.name
    except (api_exceptions.GoogleAPIError, google.auth.exceptions.GoogleAuthError) as error:
        raise SubmissionError(f"Vertex AI in {project}/{region} refused the pipeline job: "
                              f"{str(error).splitlines()[0]}") from error
    except RuntimeError as error:  # PipelineJob.wait raises RuntimeError when the job fails.
        raise SubmissionError(f"Vertex AI pipeline job failed: {str(error).splitlines()[0]}") from error
    return {"job": job.resource_name, "state": state}
