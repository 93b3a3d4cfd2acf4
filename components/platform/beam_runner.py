"""Where the Beam stages run: runner presets, each stage's options, and the URIs Beam is given.

Ingest, statistics, transform and evaluate run Beam pipelines. With the DirectRunner (the default)
Beam runs inside the stage's process and reads and writes the stage's artifact folders. Any other
runner (Beam's portable runner with a worker pool, Dataflow) runs the work in other containers, which
cannot see the stage's folders: there every path handed to Beam is an object-store URI
(`gs://`, `s3://`) that the workers can reach:

- the artifact's own URI where the platform keeps artifacts in a bucket (Vertex AI: `gs://...`;
  open-source KFP: `minio://...`, which is its S3 store, read as `s3://` at the run's S3 endpoint);
- otherwise (kfp.local, where artifacts are local folders) a place under the run's Beam temp root,
  `--beam-temp-root` (Beam's `--temp_location`): `<root>/artifacts/<run>/<stage>/<output>`.

The stage records that URI in the artifact's metadata (`beam_uri`), so the stages that read the
artifact read it from the same place; small outputs that later stages or reports read with plain file
I/O (statistics, the transform graph, the evaluation) are also copied into the artifact's own folder.
Nothing depends on a filesystem shared by the stage and the workers.

Presets (`--beam-runner direct|portable|dataflow` on the CLI) turn a few flags into the Beam options
each runner needs; every stage adds its own job name. Credentials and the database URL are never
options: workers take them from their environment (see docs/distributed.md).
"""
import contextlib
import dataclasses
import datetime
import os
import uuid

from components.errors import StageError
from components.platform.flags import join_flags, split_flags
from components.state.storage import (
    GCS_SCHEME,
    S3_SCHEME,
    Storage,
    StorageSettings,
    _use_anonymous_gcs_credentials,
    is_remote,
    join,
    refuse_credentials,
)

RUNNERS = ("direct", "portable", "dataflow")
TEMP_ROOT_FLAG = "--beam-temp-root"
BEAM_URI_KEY = "beam_uri"
# The runners that execute in the stage's own process (or its children), on its filesystem.
_IN_PROCESS = {"direct", "directrunner", "bundlebaseddirectrunner", "switchingdirectrunner"}
_KFP_MINIO = "minio://"
JOB_SERVICE_WAIT_S = 60


@dataclasses.dataclass(frozen=True)
class RunnerPreset:
    """The flags of one runner preset; `args()` turns them into Beam options."""
    runner: str = "direct"
    temp_root: str = ""
    job_endpoint: str = ""            # portable: Beam's job service, host:port
    worker_pool: str = ""             # portable: the SDK worker pool, host:port (environment EXTERNAL)
    environment_type: str = "EXTERNAL"
    project: str = ""                 # dataflow
    region: str = ""
    service_account: str = ""
    machine_type: str = ""
    max_workers: int = 0
    worker_image: str = ""

    def args(self):
        """The Beam options of this preset, as a list of `--flag=value`; raises StageError on a missing flag."""
        if self.runner not in RUNNERS:
            raise StageError(f"--beam-runner {self.runner!r}: choose one of {', '.join(RUNNERS)}.")
        if self.runner == "direct":
            return [f"--temp_location={self.temp_root}"] if self.temp_root else []
        if not is_remote(self.temp_root):
            raise StageError(f"--beam-runner {self.runner} needs {TEMP_ROOT_FLAG} gs://BUCKET/PATH or "
                             f"s3://BUCKET/PATH (got {self.temp_root!r}): the workers keep temp files and the "
                             "stages' outputs there, and cannot see this machine's folders.")
        if self.runner == "portable":
            _require(self.runner, ("--beam-job-endpoint", self.job_endpoint),
                     ("--beam-worker-pool", self.worker_pool if self.environment_type == "EXTERNAL" else "-"))
            environment = self.worker_pool if self.environment_type == "EXTERNAL" else self.worker_image
            return ["--runner=PortableRunner", f"--job_endpoint={self.job_endpoint}",
                    f"--environment_type={self.environment_type}", f"--environment_config={environment}",
                    f"--temp_location={self.temp_root}"]
        _require(self.runner, ("--dataflow-project", self.project), ("--dataflow-region", self.region),
                 ("--worker-image", self.worker_image))
        if not self.temp_root.startswith(GCS_SCHEME):
            raise StageError(f"--beam-runner dataflow needs {TEMP_ROOT_FLAG} gs://BUCKET/PATH (got "
                             f"{self.temp_root!r}): Dataflow stages and reads its files in Cloud Storage.")
        args = ["--runner=DataflowRunner", f"--project={self.project}", f"--region={self.region}",
                f"--temp_location={join(self.temp_root, 'tmp')}",
                f"--staging_location={join(self.temp_root, 'staging')}",
                f"--sdk_container_image={self.worker_image}", "--sdk_location=container",
                "--experiments=use_runner_v2"]
        if self.service_account:
            args.append(f"--service_account_email={self.service_account}")
        if self.machine_type:
            args.append(f"--machine_type={self.machine_type}")
        if self.max_workers:
            args.append(f"--max_num_workers={self.max_workers}")
        return args


def _require(runner, *flags):
    missing = [flag for flag, value in flags if not value]
    if missing:
        raise StageError(f"--beam-runner {runner} needs {' and '.join(missing)}: see docs/distributed.md.")


def combine(preset_args, beam_args):
    """The preset's options followed by the user's `--beam-args`; a runner set by both is refused."""
    user = split_flags(beam_args)
    user_flags = {arg.split("=", 1)[0] for arg in user}
    preset_flags = {arg.split("=", 1)[0] for arg in preset_args}
    clash = sorted(flag for flag in user_flags & preset_flags
                   if flag in ("--runner", "--job_endpoint", "--environment_type", "--environment_config",
                               "--project", "--region", "--temp_location", "--sdk_container_image"))
    if clash:
        raise StageError(f"--beam-args sets {', '.join(clash)}, which --beam-runner already sets: "
                         "leave it out of --beam-args.")
    return join_flags([*preset_args, *user])


def beam_arg_list(beam_args):
    from components.platform.beam_options import beam_arg_list as split  # Beam's options: imported only when used

    return split(beam_args)


def _flag(args, name):
    values = [arg.split("=", 1)[1] for arg in args if arg.startswith(name + "=")]
    return values[-1] if values else ""


def runner_name(beam_args):
    return _flag(beam_arg_list(beam_args), "--runner")


def in_process(beam_args):
    """Whether Beam runs in the stage's own process (and sees its folders)."""
    return runner_name(beam_args).lower() in _IN_PROCESS


def temp_root(beam_args):
    return _flag(beam_arg_list(beam_args), "--temp_location")


def stage_beam_args(beam_args, stage, settings=StorageSettings(), time_limit=0):
    """The Beam arguments a stage runs with: the run's storage settings as Beam options, the run's Beam
    arguments (never a credential: refused), on Dataflow the stage's own job name, and on the portable
    runner, given the stage's `time_limit`, a job service that answers and waits that long for the job."""
    refuse_credentials(beam_args)
    args = beam_arg_list([*settings.beam_flags(), *split_flags(beam_args)])
    if _flag(args, "--runner") == "DataflowRunner" and not _flag(args, "--job_name"):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        args.append(f"--job_name=living-pipeline-{stage}-{stamp}-{uuid.uuid4().hex[:6]}")
    if time_limit and _flag(args, "--runner") == "PortableRunner" and not _flag(args, "--job_server_timeout"):
        _check_job_service(_flag(args, "--job_endpoint"), stage)
        # Beam's PortableRunner reads the job's state stream with this timeout (60 s by default), which ends
        # any job that runs longer; the stage's own limit (its watchdog) is the one that should apply.
        args.append(f"--job_server_timeout={int(time_limit)}")
    return join_flags(args)


def _check_job_service(endpoint, stage):
    import grpc

    seconds = JOB_SERVICE_WAIT_S

    with grpc.insecure_channel(endpoint) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=seconds)
        except grpc.FutureTimeoutError:
            raise StageError(f"{stage}: Beam's job service at {endpoint} (--beam-job-endpoint) did not answer "
                             f"within {seconds} s: start it, or give the address it listens on.") from None


def _bucket_form(uri):
    """An artifact URI as Beam names it (`minio://` is KFP's S3 store), or '' for a local one."""
    if uri.startswith(_KFP_MINIO):
        return S3_SCHEME + uri[len(_KFP_MINIO):]
    return uri if is_remote(uri) else ""


def _under_temp_root(path, beam_args):
    root = temp_root(beam_args)
    if not is_remote(root):
        raise StageError(f"The Beam runner {runner_name(beam_args)} runs its workers elsewhere and the "
                         f"artifacts of this run are local folders ({path}): give {TEMP_ROOT_FLAG} "
                         "s3://BUCKET/PATH or gs://BUCKET/PATH (Beam's --temp_location), a bucket the workers "
                         "can reach.")
    tail = os.path.normpath(path).split(os.sep)[-3:]
    return join(root, "artifacts", *tail)


def _for_tensorflow(uri, beam_args, path):
    """`uri`, if TensorFlow's own file I/O can use it; else the place under the temp root, if that is gs://."""
    if not uri.startswith(S3_SCHEME):
        return uri
    fallback = _under_temp_root(path, beam_args)
    if fallback.startswith(GCS_SCHEME):
        return fallback
    raise StageError(f"TensorFlow itself reads and writes this stage's {uri.split('/')[-1]} on the workers, "
                     f"and TensorFlow 2.16 has no s3:// file system ({uri}): give {TEMP_ROOT_FLAG} gs://BUCKET/PATH, "
                     "or run this stage in process (--beam-runner direct).")


def output_uri(artifact, beam_args, tensorflow=False):
    """Where Beam writes `artifact`: its local folder in process, else a bucket URI the workers can reach
    (with `tensorflow`, one TensorFlow's own file I/O can also use: gs://)."""
    if in_process(beam_args):
        return artifact.path
    uri = _bucket_form(artifact.uri) or _under_temp_root(artifact.path, beam_args)
    if tensorflow:
        uri = _for_tensorflow(uri, beam_args, artifact.path)
    artifact.metadata[BEAM_URI_KEY] = uri
    return uri


def input_uri(artifact, beam_args, tensorflow=False, storage=None):
    """Where Beam reads `artifact`: where its stage had Beam write it, or its own folder, uploaded to a
    bucket first if this stage's workers run elsewhere and the folder is local."""
    storage = storage or Storage()
    recorded = artifact.metadata.get(BEAM_URI_KEY, "")
    if recorded and not (tensorflow and not in_process(beam_args)):
        return recorded
    if in_process(beam_args):
        return artifact.path
    own = recorded or _bucket_form(artifact.uri)
    if own and (not tensorflow or own.startswith(GCS_SCHEME)):
        return own
    uri = _under_temp_root(artifact.path, beam_args)
    if tensorflow:
        uri = _for_tensorflow(uri, beam_args, artifact.path)
    with local_view(artifact, storage) as folder:
        storage.upload_folder(folder, uri, TEMP_ROOT_FLAG)
    return uri


def mirror(uri, local_dir, storage=None):
    """Copies the files under `uri` into `local_dir` where they are not there already (on Vertex AI the
    artifact's folder is the bucket itself), so plain file I/O reads what the workers wrote."""
    storage = storage or Storage()
    if uri == local_dir or not is_remote(uri):
        return
    for remote, relative in storage.files_under(uri, TEMP_ROOT_FLAG, folder_markers=True):
        local = os.path.join(local_dir, relative)
        if not os.path.exists(local):
            os.makedirs(os.path.dirname(local), exist_ok=True)
            if not remote.endswith("/"):  # a folder marker (TensorFlow writes them) only makes its folder
                storage.download_file(remote, local, TEMP_ROOT_FLAG)


def beam_dirs_for_evaluate(model, examples, evaluation, baseline, local_baseline, beam_args, storage=None):
    """The bucket URIs evaluate's workers read the models and eval split from and write the evaluation to;
    empty in process (evaluate then uses the local folders)."""
    storage = storage or Storage()
    if in_process(beam_args):
        return {}
    dirs = {"model": input_uri(model, beam_args, tensorflow=True, storage=storage),
            "examples": input_uri(examples, beam_args, storage=storage),
            "output": output_uri(evaluation, beam_args, tensorflow=True)}
    if local_baseline:
        if baseline.startswith(GCS_SCHEME):
            dirs["baseline"] = baseline
        else:
            dirs["baseline"] = _for_tensorflow(_under_temp_root(local_baseline, beam_args), beam_args,
                                               local_baseline)
            storage.upload_folder(local_baseline, dirs["baseline"], TEMP_ROOT_FLAG)
    return dirs


def mirror_file(uri, local_path, storage=None):
    """Copies one file the workers wrote into the artifact's folder, unless it is there already."""
    storage = storage or Storage()
    if uri != local_path and is_remote(uri) and not os.path.exists(local_path):
        os.makedirs(os.path.dirname(local_path), exist_ok=True)
        storage.download_file(uri, local_path, TEMP_ROOT_FLAG)


def check_readable(location, flag, beam_args):
    """Raises StageError if Beam's workers run elsewhere and `location` is a local path (or empty: the demo
    data inside this machine's package)."""
    if in_process(beam_args) or is_remote(location):
        return
    raise StageError(f"{flag} {location or '(the demo data)'!r} is on this machine, and the Beam runner "
                     f"{runner_name(beam_args)} runs its workers elsewhere: put it in a bucket (gs://, s3://) "
                     "and pass that URI.")


@contextlib.contextmanager
def local_view(artifact, storage=None):
    """A local folder with the artifact's files, for stages that read it with plain file I/O: its own
    folder, unless Beam's workers wrote it under the temp root (then a download)."""
    storage = storage or Storage()
    recorded = artifact.metadata.get(BEAM_URI_KEY, "")
    if not recorded or recorded == _bucket_form(artifact.uri):  # Vertex AI's /gcs or KFP's download
        yield artifact.path
        return
    with storage.local_folder(recorded, TEMP_ROOT_FLAG) as folder:
        yield folder


@contextlib.contextmanager
def scratch(next_to, storage=None):
    """A scratch folder beside `next_to`: local when it is local, else in its bucket; removed afterwards."""
    storage = storage or Storage()
    import tempfile

    if not is_remote(next_to):
        with tempfile.TemporaryDirectory(prefix="living-pipeline-") as folder:
            yield folder
        return
    folder = f"{next_to.rstrip('/')}-scratch-{uuid.uuid4().hex[:8]}"
    try:
        yield folder
    finally:
        found = [path for path, _ in storage.files_under(folder, TEMP_ROOT_FLAG, folder_markers=True)]
        storage.delete(found, TEMP_ROOT_FLAG, folder)


def validate(beam_args, stage, settings=StorageSettings()):
    """Beam's own validation of the options `stage` runs with (for Dataflow: project, region, job name,
    temp and staging locations in Cloud Storage, worker settings); raises StageError with the first problem."""
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners.runner import create_runner

    from components.platform.beam_options import pipeline_options

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        _use_anonymous_gcs_credentials()  # a GCS emulator takes none (Beam checks the temp bucket)
    args = stage_beam_args(beam_args, stage, settings)
    errors = PipelineOptionsValidator(pipeline_options(args), create_runner(runner_name(args))).validate()
    if errors:
        raise StageError(f"{stage}: Beam refuses the options of --beam-runner/--beam-args: {errors[0].strip()}"
                         + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    return args
