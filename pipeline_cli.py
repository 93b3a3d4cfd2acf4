"""The command line of the living pipeline: compile, run, submit, models, demo-data, demo-living.

    python pipeline.py compile [--output pipeline.yaml] [--image IMAGE] [--kfp-s3-endpoint URL | --kfp-volume PVC]
    python pipeline.py run [--runner docker] [--data PATTERN] [--span N] [--module M] [--serving-root DIR] ...
    python pipeline.py submit --host URL [--experiment NAME] [--wait] [--schedule CRON] [--param k=v ...]
    python pipeline.py submit --vertex --project P --region R --pipeline-root gs://... [--wait] [--schedule CRON]
    python pipeline.py models [--serving-root R] [--model-name M] [--json]

`compile` writes the pipeline spec (KFP IR YAML) that Kubeflow Pipelines and Vertex AI run. `run`
compiles the same spec and runs it on this machine with kfp.local: each stage in its own process in
this Python environment, or with `--runner docker` in a container of the project image. `submit`
sends the spec to open-source KFP or Vertex AI Pipelines and starts a run, or with `--schedule`
creates a schedule whose runs take the latest span. `models` lists the published versions, newest first,
from the provenance record inside each. The pipeline itself is pipeline.py; `python pipeline.py` and the
`living-pipeline` command both run this.
"""
import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import time

from components import json_values
from components.data import table_width
from components.data.cell_limits import DEFAULT_MAX_CELL_BYTES
from components.data.csv_dialect import DEFAULT_DELIMITER, delimiter, delimiter_name
from components.data.database import DATABASE_URL_VARIABLE, DEFAULT_QUERY_PARTITIONS, DEFAULT_QUERY_TIMEOUT_SECONDS
from components.data.layout import DEFAULT_SPLIT_RATIOS
from components.errors import StageError
from components.evaluation.blessing import (
    DEFAULT_MIN_SLICE_EXAMPLES,
    DEFAULT_THRESHOLD,
    DEFAULT_THRESHOLDS,
    check_thresholds,
)
from components.penguins import curated_schema_path
from components.platform import time_limits
from components.platform.argument_checks import (
    OneLineParser,
    check_arguments,
    check_command_flags,
    check_run_paths,
    param_flag,
    run_flag,
)
from components.platform.beam_runner import RUNNERS, RunnerPreset, combine
from components.platform.cluster import KFP_OBJECT_STORE, STATE_MOUNT_PATH, ObjectStore
from components.platform.flags import join_flags, split_flags
from components.platform.local_run import (
    LocalRunError,
    check_docker,
    container_arguments,
    quiet_stage_logs,
    run_compiled_spec,
    run_outcome,
    summary,
    summary_record,
)
from components.platform.warm_stages import FRESH, WARM, warm_stage_processes
from components.redaction import redacted_output
from components.stage_logic.schema import DEFAULT_DRIFT_THRESHOLD, DEFAULT_SKEW_THRESHOLD
from components.stage_logic.tune import (
    DEFAULT_TUNE_STEPS,
    DEFAULT_TUNE_TRIALS,
    check_tuning_flags,
)
from components.stage_table import STAGES, TIMEOUTS
from components.state.model_names import check_model_name, default_model_name
from components.state.storage import (
    Storage,
    StorageSettings,
    is_remote,
    refuse_credentials,
    refuse_password_in_url,
)
from components.training.user_module import declared_problem_type, declares_name
from components.validation.column_settings import columns_text, parse_threshold_flags, thresholds_text
from pipeline import (
    DEFAULT_MODULE,
    DEFAULT_TOLERANCE,
    DEFAULT_TRAIN_STEPS,
    PIPELINE_NAME,
    compile_pipeline,
    default_image,
)


def _object_store(args):
    """The KFP object store the flags name, or None."""
    return ObjectStore(args.kfp_s3_endpoint, args.kfp_s3_secret) if args.kfp_s3_endpoint else None


def run_locally(arguments, pipeline_root, runner="subprocess", image=None, stage_processes=WARM):
    """Compiles the pipeline into the pipeline root and runs that spec with kfp.local.

    With the subprocess runner and `stage_processes` "warm", the stages' processes are forked from a
    warm process that imports the libraries while the spec compiles (components/platform/warm_stages.py).
    Returns (outputs, stage log, path of the run report).
    """
    os.makedirs(pipeline_root, exist_ok=True)
    warm = runner == "subprocess" and stage_processes == WARM
    with warm_stage_processes() if warm else contextlib.nullcontext():
        spec_path = compile_pipeline(os.path.join(pipeline_root, "pipeline.yaml"), image or default_image())
        return run_compiled_spec(spec_path, arguments, pipeline_root, [stage.name for stage in STAGES], runner)


def _pipeline_arguments(args):
    """The pipeline's arguments from `run`'s flags; local paths made absolute for the stage processes. Raises
    StageError for Beam or storage flags that cannot be used (a credential among them, a runner preset
    without the flags it needs), and for a value threshold the module's blessing metric can never reach."""
    settings, beam_args = _storage_settings(args, args.beam_args)
    # Before any stage runs, where the module's PROBLEM_TYPE reads without importing it (evaluate checks again).
    check_thresholds(declared_problem_type(args.module), args.threshold, args.slice_threshold,
                     f"--module {args.module!r}")

    drift_threshold, drift_column_thresholds = parse_threshold_flags(args.drift_threshold, DEFAULT_DRIFT_THRESHOLD,
                                                                     "--drift-threshold")
    skew_threshold, skew_column_thresholds = parse_threshold_flags(args.skew_threshold, DEFAULT_SKEW_THRESHOLD,
                                                                   "--skew-threshold")

    def absolute(path):
        return os.path.abspath(path) if path and "://" not in path else path

    schema_path = args.schema if args.schema is not None else (
        "" if args.data or args.query else curated_schema_path())
    return {
        "serving_root": absolute(args.serving_root),
        "data_pattern": absolute(args.data),
        "data_format": args.data_format,
        "csv_delimiter": delimiter_name(args.csv_delimiter),
        "max_cell_bytes": args.max_cell_bytes,
        "query": args.query,
        "query_partition_column": args.query_partition_column,
        "query_partitions": args.query_partitions,
        "query_timeout": args.query_timeout,
        "allow_privileged_role": args.allow_privileged_role,
        "span": args.span,
        "split_ratios": args.split_ratios,
        "split_column": args.split_column,
        "split_cutoff": args.split_cutoff,
        "schema_path": absolute(schema_path),
        "update_schema": args.update_schema,
        "block_on_anomalies": not args.warn_on_anomalies,
        "statistics_root": absolute(args.statistics_root),
        "drift_threshold": drift_threshold,
        "skew_threshold": skew_threshold,
        "drift_ignore": columns_text(args.drift_ignore),
        "drift_column_thresholds": thresholds_text(drift_column_thresholds),
        "skew_column_thresholds": thresholds_text(skew_column_thresholds),
        "statistics_slices": args.statistics_slices,
        "serving_data": absolute(args.serving_data),
        "module": absolute(args.module) if args.module.endswith(".py") else args.module,
        "train_steps": args.train_steps,
        "tune": _tune(args),
        "tune_trials": args.tune_trials,
        "tune_steps": args.tune_steps,
        "hyperparameters": args.hyperparameters,
        "custom_config": args.custom_config,
        "model_name": _model_name(args, settings),
        "slice_columns": args.slice_columns,
        "threshold": args.threshold,
        "tolerance": args.tolerance,
        "slice_threshold": args.slice_threshold,
        "min_slice_examples": args.min_slice_examples,
        "beam_args": beam_runner_args(args, beam_args),
        "storage_settings": settings.to_json(),
        "stage_timeouts": time_limits.timeouts_text(time_limits.parse_timeouts(args.stage_timeout, TIMEOUTS)),
    }


def _tune(args):
    """--tune, once --tune-trials and --tune-steps are checked and the module is known to define tuner_fn
    (where its source can be read here)."""
    check_tuning_flags(args.tune_trials, args.tune_steps)
    if args.tune and not is_remote(args.module) and declares_name(args.module, "tuner_fn") is False:
        raise StageError(f"--tune is given but --module {args.module!r} defines no tuner_fn: define TFX's "
                         "tuner_fn(fn_args) returning TunerFnResult(tuner=..., fit_kwargs=...), or leave --tune out.")
    return args.tune


def _width_notice(args, arguments):
    """What a wide local CSV or Parquet table will cost, said before the run (components/data/table_width.py), or
    None; StageError when statistics, schema or validate would run past its time limit."""
    columns = table_width.local_columns(arguments["data_pattern"], args.data_format, delimiter(args.csv_delimiter))
    if columns is None:
        return None
    return table_width.width_notice(
        columns, table_width.split_count(args.split_ratios, args.split_column, args.split_cutoff),
        arguments[time_limits.PARAMETER], f"--data {args.data}")


def _model_name(args, settings):
    """--model-name (refused when it is not a model name, empty included), else the module's model name."""
    if args.model_name is not None:
        return check_model_name(args.model_name)
    return default_model_name(args.module, Storage(settings))


def _write_json(path, value):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    json_values.write(path, json_values.finite(value))  # valid JSON: an undefined number is null


def _storage_settings(args, beam_args, flag="--beam-args", given=StorageSettings()):
    """(the run's StorageSettings, the other Beam arguments): `given` with the storage flags, and the storage
    options given among the Beam arguments (e.g. --s3_endpoint_url) moved onto them; credentials refused."""
    refuse_credentials(beam_args, flag)
    flags = {"s3_endpoint_url": args.s3_endpoint_url, "s3_region_name": args.s3_region}
    settings, rest = dataclasses.replace(given, **{name: value for name, value in flags.items() if value}).taking(
        split_flags(beam_args, flag), flag)
    return settings, join_flags(rest)


def _run(args):
    try:
        arguments = _pipeline_arguments(args)
        check_arguments(arguments, run_flag)  # every value, before anything runs (docs/safety.md)
        check_run_paths(arguments)
        width_notice = _width_notice(args, arguments)
    except StageError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    if width_notice:
        print(width_notice, file=sys.stderr)
    quiet_stage_logs()
    started = time.monotonic()
    pipeline_root = os.path.abspath(args.pipeline_root)
    if args.runner == "docker":
        try:
            arguments = container_arguments(arguments, pipeline_root)
            check_docker(args.image)
        except LocalRunError as error:
            print(f"Error: {error}", file=sys.stderr)
            return 2
    outputs, stage_log, report = run_locally(arguments, pipeline_root, args.runner, args.image,
                                             args.stage_processes)
    print(summary(outputs, stage_log, time.monotonic() - started, report))
    if args.summary_json:
        _write_json(args.summary_json, summary_record(outputs, stage_log, report))
    return run_outcome(outputs)[1]  # the exit statuses: docs/safety.md


def _demo_data(args):
    from components.penguins.demo import demo_pattern, write_demo_spans

    for span, path in write_demo_spans(args.dir).items():
        print(f"span {span}: {path}")
    print(f"Run a span with: python pipeline.py run --data '{demo_pattern(args.dir)}' [--span N]")
    return 0


def _demo_living(args):
    quiet_stage_logs()  # before the scenario's modules import Beam (and Google's client libraries)
    from components.penguins.living import run_scenario

    def run_pipeline(flags):
        run_args = parse_args(["run", *flags])
        outputs, stage_log, _ = run_locally(_pipeline_arguments(run_args), run_args.pipeline_root)
        return outputs, stage_log

    with warm_stage_processes():  # one warm process for the scenario's six runs
        results = run_scenario(os.path.abspath(args.dir), run_pipeline)
    if args.summary_json:
        _write_json(args.summary_json, results)
    return 0


def _models(args):
    from components.state.provenance import models_table, published_models
    from components.state.serving_root import published_model_names

    quiet_stage_logs()
    try:
        settings, _ = _storage_settings(args, args.beam_args)
        storage = Storage(settings)
        names = ([_model_name(args, settings)] if args.model_name is not None or args.module is not None
                 else published_model_names(args.serving_root, storage))
        rows = {name: published_models(args.serving_root, name, storage) for name in names}
    except StageError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    if args.json:
        listed = [{"model": name, **row} for name, versions in rows.items() for row in versions]
        print(json_values.dumps(listed, indent=2, sort_keys=True))
    elif not names:
        print(f"No published models under {args.serving_root}.")
    for name, versions in ([] if args.json else rows.items()):
        if len(names) > 1:
            print(f"\n{name}")
        print(models_table(versions) if versions else f"No published versions of {name!r} under {args.serving_root}.")
    return 0


def _compile(args):
    try:
        timeouts = time_limits.parse_timeouts(args.stage_timeout, TIMEOUTS)
    except StageError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    path = compile_pipeline(args.output, args.image, args.kfp_volume or None, _object_store(args), timeouts)
    flavours = ([f"volume {args.kfp_volume} at {STATE_MOUNT_PATH}"] if args.kfp_volume else []) + (
        [f"object store {args.kfp_s3_endpoint} with the keys of Secret {args.kfp_s3_secret}"]
        if args.kfp_s3_endpoint else [])
    print(f"Wrote {path} (image {args.image}" + (f", KFP-only: {'; '.join(flavours)})" if flavours else ")"))
    return 0


def _submit(args):
    from components.platform import submit

    missing = [flag for flag, value in (("--project", args.project), ("--region", args.region),
                                        ("--pipeline-root", args.pipeline_root)) if not value]
    if args.vertex and missing:
        print(f"Error: submit --vertex needs {', '.join(missing)}", file=sys.stderr)
        return 2
    kfp_only = next((flag for flag, value in (("--kfp-volume", args.kfp_volume),
                                              ("--kfp-s3-endpoint", args.kfp_s3_endpoint)) if value), None)
    if args.vertex and kfp_only:
        print(f"Error: {kfp_only} is for open-source KFP only: Vertex AI runs the portable spec; leave it out",
              file=sys.stderr)
        return 2
    if args.schedule and args.wait:
        print("Error: --wait waits for one run; a --schedule starts runs later: leave out one of them",
              file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="living-pipeline-") as scratch:
            spec_path = args.spec or compile_pipeline(os.path.join(scratch, "pipeline.yaml"), args.image,
                                                      args.kfp_volume or None, _object_store(args),
                                                      _submitted_timeouts(args.param))
            _submit_spec(submit, spec_path, args)
    except submit.SubmissionError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return 0


def _submitted_timeouts(params, spec=None):
    """{stage: seconds} of `--param stage_timeouts=...` over the spec's default (or the table's), or None when
    the parameter is not given."""
    texts = [param.partition("=")[2] for param in params if param.partition("=")[0] == time_limits.PARAMETER]
    if not texts:
        return None
    compiled = (spec or {}).get("root", {}).get("inputDefinitions", {}).get("parameters", {}).get(
        time_limits.PARAMETER, {}).get("defaultValue", "")
    try:
        return time_limits.parse_timeouts([compiled, *texts], TIMEOUTS, f"--param {time_limits.PARAMETER}")
    except StageError as error:
        from components.platform.submit import SubmissionError

        raise SubmissionError(str(error)) from None


def _refuse_credentials_in_defaults(spec, spec_path):
    """A spec compiled elsewhere may carry Beam arguments or storage settings as defaults: checked as --param is."""
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    default = {name: parameters.get(name, {}).get("defaultValue") or "" for name in ("beam_args", "storage_settings")}
    refuse_credentials(default["beam_args"], f"the default beam_args of {spec_path}")
    StorageSettings.from_json(default["storage_settings"], f"the default storage_settings of {spec_path}")


def _submit_spec(submit, spec_path, args):
    spec, platform_spec = submit.read_spec(spec_path)
    arguments = submit.pipeline_arguments(spec, args.param)
    try:
        check_arguments(arguments, param_flag)  # every value, before anything is sent (docs/safety.md)
        if "model_name" in arguments:
            check_model_name(arguments["model_name"], "--param model_name")
        _refuse_credentials_in_defaults(spec, spec_path)
        given = StorageSettings.from_json(arguments.get("storage_settings", ""), "--param storage_settings")
        settings, beam_args = _storage_settings(args, arguments.get("beam_args", ""), "--param beam_args", given)
        if "csv_delimiter" in arguments:  # stored by name: ',', ';', '|' or tab
            arguments["csv_delimiter"] = delimiter_name(arguments["csv_delimiter"], "--param csv_delimiter")
        if beam_args or "beam_args" in arguments:
            arguments["beam_args"] = beam_args
        if settings.to_json():
            arguments["storage_settings"] = settings.to_json()
        if args.beam_runner != "direct" or args.beam_temp_root:
            arguments["beam_args"] = beam_runner_args(args, beam_args)
        timeouts = _submitted_timeouts(args.param, spec)
        if timeouts:
            time_limits.check_platform_deadlines(timeouts, platform_spec, spec_path)
            arguments[time_limits.PARAMETER] = time_limits.timeouts_text(timeouts)
    except StageError as error:
        raise submit.SubmissionError(str(error)) from None
    if args.schedule:
        submit.check_schedule(args.schedule, arguments, args.max_concurrency)
    revision = args.version_name or submit.version_name(submit.git_revision(os.path.dirname(
        os.path.abspath(__file__))))
    if args.vertex:
        result = submit.submit_to_vertex(spec_path, args.project, args.region, args.pipeline_root, arguments,
                                         display_name=f"{PIPELINE_NAME}-{revision}", wait=args.wait,
                                         service_account=args.service_account or None, schedule=args.schedule,
                                         max_concurrency=args.max_concurrency,
                                         schedule_display_name=submit.schedule_name(PIPELINE_NAME))
        if args.schedule:
            print(f"Scheduled {PIPELINE_NAME} version {revision} on Vertex AI as {result['schedule']}: "
                  f"{args.schedule!r}, at most {args.max_concurrency} at once")
        else:
            print(f"Submitted to Vertex AI as {result['job']}" + (f": {result['state']}" if result["state"] else ""))
    else:
        result = submit.submit_to_kfp(spec_path, args.host, arguments, args.experiment, PIPELINE_NAME, revision,
                                      wait=args.wait, pipeline_root=args.pipeline_root or None,
                                      timeout_s=args.timeout, schedule=args.schedule,
                                      max_concurrency=args.max_concurrency)
        if args.schedule:
            print(f"Recurring run {result['recurring_run_id']} of {PIPELINE_NAME} version {result['version_name']} "
                  f"on {args.host}: {args.schedule!r} (the latest span each time), at most "
                  f"{args.max_concurrency} at once")
        else:
            print(f"Run {result['run_id']} of {PIPELINE_NAME} version {result['version_name']} started on "
                  f"{args.host}" + (f": {result['state']}" if result["state"] else ""))


def _add_beam_runner_flags(parser):
    group = parser.add_argument_group("Beam runner (ingest, statistics, transform, evaluate; see docs/distributed.md)")
    group.add_argument("--beam-runner", choices=RUNNERS, default="direct", help="direct: Beam runs inside each "
                       "stage; portable: Beam's job service and a worker pool of the project image; dataflow: "
                       "Google Cloud Dataflow with the project image as the SDK container (default: %(default)s)")
    group.add_argument("--beam-temp-root", default="", metavar="URI", help="a bucket (gs://, s3://) for Beam's "
                       "temp and staging files and, where the artifacts are local folders, the Beam stages' "
                       "outputs; required by portable and dataflow (it becomes Beam's --temp_location)")
    group.add_argument("--beam-job-endpoint", default="", metavar="HOST:PORT", help="portable: Beam's job "
                       "service (python -m apache_beam.runners.portability.local_job_service_main, Flink, Spark)")
    group.add_argument("--beam-worker-pool", default="", metavar="HOST:PORT", help="portable: the SDK worker "
                       "pool (the project image running python -m apache_beam.runners.worker.worker_pool_main)")
    group.add_argument("--dataflow-project", default="", metavar="PROJECT", help="dataflow: the Google Cloud "
                       "project")
    group.add_argument("--dataflow-region", default="", metavar="REGION", help="dataflow: the region, e.g. "
                       "europe-west4")
    group.add_argument("--dataflow-service-account", default="", metavar="EMAIL", help="dataflow: the workers' "
                       "service account (default: Compute Engine's default one)")
    group.add_argument("--dataflow-machine-type", default="", metavar="TYPE", help="dataflow: the workers' "
                       "machine type, e.g. n2-standard-4")
    group.add_argument("--dataflow-max-workers", type=int, default=0, metavar="N", help="dataflow: at most N "
                       "workers (default: Dataflow's autoscaling limit)")
    group.add_argument("--worker-image", default="", metavar="IMAGE", help="dataflow: the project image built "
                       "with BEAM_BOOT=dataflow (make image BEAM_BOOT=dataflow), pushed where Dataflow can pull it")


def beam_runner_args(args, beam_args):
    """The Beam arguments of the run: the --beam-runner preset's options, then --beam-args."""
    preset = RunnerPreset(runner=args.beam_runner, temp_root=args.beam_temp_root,
                          job_endpoint=args.beam_job_endpoint, worker_pool=args.beam_worker_pool,
                          project=args.dataflow_project, region=args.dataflow_region,
                          service_account=args.dataflow_service_account, machine_type=args.dataflow_machine_type,
                          max_workers=args.dataflow_max_workers, worker_image=args.worker_image)
    return combine(preset.args(), beam_args)


def _add_storage_flags(parser):
    group = parser.add_argument_group("Storage settings (every stage's; see docs/buckets.md)")
    group.add_argument("--s3-endpoint-url", default="", metavar="URL", help="the S3 endpoint of an S3-compatible "
                       "store (SeaweedFS, MinIO) holding s3:// locations (default: AWS_ENDPOINT_URL, else AWS)")
    group.add_argument("--s3-region", default="", metavar="NAME", help="the S3 region (default: AWS_REGION, "
                       "AWS_DEFAULT_REGION or the profile's)")


def _add_object_store_flags(parser):
    parser.add_argument("--kfp-s3-endpoint", type=_url_without_password, default="", metavar="URL",
                        help="open-source KFP only: the S3 "
                        "endpoint of the object store that holds the serving root and statistics store (KFP "
                        f"2.5.0's MinIO: {KFP_OBJECT_STORE.endpoint}); every stage gets it as AWS_ENDPOINT_URL "
                        "and the keys of --kfp-s3-secret as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    parser.add_argument("--kfp-s3-secret", default=KFP_OBJECT_STORE.secret, metavar="SECRET", help="with "
                        f"--kfp-s3-endpoint: the Kubernetes Secret with the keys {KFP_OBJECT_STORE.access_key_key} "
                        f"and {KFP_OBJECT_STORE.secret_key_key} (default: %(default)s, KFP's own)")


def _add_time_limit_flag(parser, what):
    parser.add_argument(time_limits.FLAG, action="append", metavar="[STAGE=]SECONDS", help=f"{what}: STAGE=SECONDS "
                        "for one stage, SECONDS for every stage (or with m or h: 90m, 2h); repeatable, the later "
                        f"wins (defaults: {time_limits.describe(TIMEOUTS)}; docs/safety.md)")


def _url_without_password(text):
    """The flag's URL, once it is known to hold no password (it would be in the compiled spec)."""
    try:
        refuse_password_in_url(text)
    except StageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _json_object(text):
    """The flag's text, once it is known to hold a JSON object (or nothing)."""
    try:
        json_values.parse_object(text, "the value")
    except StageError as error:
        raise argparse.ArgumentTypeError(str(error).rstrip(".")) from None
    return text


def parse_args(argv):
    parser = OneLineParser(prog="pipeline.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{compile,run,submit,models,demo-data,demo-living}")

    compile_parser = commands.add_parser("compile", help="write the pipeline spec (KFP IR YAML)",
                                         description="Write the pipeline spec for KFP or Vertex AI.")
    compile_parser.add_argument("--output", default="pipeline.yaml", help="where to write the YAML "
                                "(default: %(default)s)")
    compile_parser.add_argument("--image", default=default_image(), help="the image every stage runs "
                                "(default: %(default)s)")
    compile_parser.add_argument("--kfp-volume", default="", metavar="PVC", help="open-source KFP only: mount "
                                f"this PersistentVolumeClaim at {STATE_MOUNT_PATH} in the stages that keep "
                                "state (kfp-kubernetes); the spec is then not for Vertex AI")
    _add_object_store_flags(compile_parser)
    _add_time_limit_flag(compile_parser, "the spec's default time limit of a stage, and on KFP (--kfp-s3-endpoint, "
                         "--kfp-volume) its pods' deadline, a few minutes later")
    compile_parser.set_defaults(handler=_compile)

    run_parser = commands.add_parser("run", help="run the pipeline on this machine (kfp.local)",
                                     description="Compile the pipeline and run it here with kfp.local. "
                                     "--data, --serving-data, --module (a .py file), --schema, --statistics-root and "
                                     "--serving-root may also be gs:// or s3:// URIs; credentials come from the "
                                     "environment (application default credentials; AWS_* variables or profile, "
                                     "AWS_ENDPOINT_URL for S3-compatible stores).")
    run_parser.add_argument("--data", default="", metavar="PATTERN", help="files to ingest (CSV, Parquet, "
                            "Avro, TFRecords of tf.Examples); may hold {SPAN}, {VERSION} and {SPLIT} "
                            "(default: the Palmer penguins demo data)")
    run_parser.add_argument("--data-format", default="", choices=["", "csv", "parquet", "avro", "tfrecord"],
                            metavar="FORMAT", help="the format of --data: csv, parquet, avro or tfrecord "
                            "(default: from its extension)")
    run_parser.add_argument("--csv-delimiter", default=DEFAULT_DELIMITER, metavar="CHAR", help="what separates "
                            "the fields of CSV files (--data, --serving-data): ',', ';', '|' or a tab (tab or "
                            "'\\t') (default: %(default)s)")
    run_parser.add_argument("--max-cell-bytes", type=int, default=DEFAULT_MAX_CELL_BYTES, metavar="N", help="the "
                            "most bytes one cell of --data or --serving-data may hold; a larger cell, or a NUL byte "
                            "in text, is refused with its file, line and column (default: %(default)s, 1 MiB)")
    run_parser.add_argument("--query", default="", metavar="SQL", help="ingest the rows of this PostgreSQL "
                            f"query instead of --data; the connection string comes from ${DATABASE_URL_VARIABLE} "
                            "or libpq's PG* variables, never from a flag")
    run_parser.add_argument("--query-partition-column", default="", metavar="COLUMN", help="an integer "
                            "column of the query's result to read it in parallel ranges of")
    run_parser.add_argument("--query-partitions", type=int, default=DEFAULT_QUERY_PARTITIONS, metavar="N",
                            help="how many ranges of --query-partition-column (default: %(default)s)")
    run_parser.add_argument("--query-timeout", type=int, default=DEFAULT_QUERY_TIMEOUT_SECONDS, metavar="SECONDS",
                            help="end any statement of --query (and any idle transaction) after this long: "
                            "PostgreSQL's statement_timeout (default: %(default)s)")
    run_parser.add_argument("--allow-privileged-role", action="store_true", help="query as a database role that "
                            "can do more than read (a superuser, a role that may write or owns objects); without "
                            "it, ingest refuses one (docs/sources.md, 'A read-only role')")
    run_parser.add_argument("--span", type=int, default=0, help="the span to ingest (default: the latest)")
    run_parser.add_argument("--module", default=DEFAULT_MODULE, help="the user module, by import path or "
                            ".py file path (default: %(default)s)")
    run_parser.add_argument("--schema", default=None, metavar="PATH", help="a curated schema.pbtxt "
                            "(default: the demo's curated schema with the demo data, else inferred; "
                            "'' to infer)")
    run_parser.add_argument("--serving-root", default="serving", metavar="DIR", help="where blessed "
                            "models are published, as <DIR>/<model-name>/<version>/ (default: %(default)s)")
    run_parser.add_argument("--pipeline-root", default="local_outputs", metavar="DIR", help="where the "
                            "run's artifacts go (default: %(default)s)")
    run_parser.add_argument("--model-name", default=None, metavar="NAME", help="the model's name: its folder in "
                            "the serving root and the statistics store (default: the module's MODEL_NAME, else "
                            "the module file's name)")
    run_parser.add_argument("--split-ratios", default=DEFAULT_SPLIT_RATIOS, help="train/eval split "
                            "weights of the hash split (default: %(default)s)")
    run_parser.add_argument("--split-column", default="", metavar="COLUMN", help="split by this column: "
                            "by --split-cutoff, or else by a hash of its value with --split-ratios")
    run_parser.add_argument("--split-cutoff", default="", metavar="VALUE", help="rows whose --split-column "
                            "is below VALUE train, the rest evaluate (a number, a string, or an ISO date "
                            "or time)")
    run_parser.add_argument("--train-steps", type=int, default=DEFAULT_TRAIN_STEPS, help="default: %(default)s")
    run_parser.add_argument("--hyperparameters", type=_json_object, default="", metavar="JSON", help="a JSON "
                            "object the module's build_model(..., hyperparameters=None) or run_fn "
                            "(fn_args.hyperparameters) gets, e.g. '{\"num_layers\": 3}'; shown in the train report "
                            "and kept in the published version's provenance record")
    run_parser.add_argument("--custom-config", type=_json_object, default="", metavar="JSON", help="a JSON object "
                            "for the module the same way (build_model's custom_config, fn_args.custom_config)")
    run_parser.add_argument("--tune", action="store_true", help="run the tune stage: the module's TFX "
                            "tuner_fn searches hyperparameters with keras-tuner and train uses the best (without "
                            "it the stage passes through)")
    run_parser.add_argument("--tune-trials", type=int, default=DEFAULT_TUNE_TRIALS, metavar="N", help="at most "
                            "this many trials (the tuner's own max_trials may be fewer; default: %(default)s)")
    run_parser.add_argument("--tune-steps", type=int, default=DEFAULT_TUNE_STEPS, metavar="N", help="training "
                            "steps per trial, tuner_fn's fn_args.train_steps (default: %(default)s)")
    run_parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="blessing needs the "
                            "overall accuracy (classification) or R² (regression: 1 - MSE / variance of the "
                            "label; 0 is no better than predicting the mean) to reach this; 0 for no value "
                            f"gate (default: {DEFAULT_THRESHOLDS['classification']} accuracy, "
                            f"{DEFAULT_THRESHOLDS['regression']} R²)")
    run_parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="how much worse "
                            "than the serving model the candidate's overall metric may be (default: %(default)s)")
    run_parser.add_argument("--slice-threshold", type=float, default=0.0, help="also require this of every "
                            "evaluation slice with at least --min-slice-examples examples (default: 0, slices "
                            "are reported but do not gate)")
    run_parser.add_argument("--min-slice-examples", type=int, default=DEFAULT_MIN_SLICE_EXAMPLES, metavar="N",
                            help="slices with fewer examples never gate (default: %(default)s)")
    run_parser.add_argument("--slice-columns", default="", help="comma-separated columns to slice the "
                            "evaluation by (default: the module's SLICE_COLUMNS)")
    run_parser.add_argument("--statistics-root", default="statistics", metavar="DIR", help="where each "
                            "validated span's statistics are kept, for the next span's drift check; '' for "
                            "none (default: %(default)s)")
    run_parser.add_argument("--statistics-slices", default="", metavar="COLUMNS", help="comma-separated "
                            "columns to also compute statistics per value of (e.g. island)")
    run_parser.add_argument("--serving-data", default="", metavar="PATTERN", help="a sample of serving "
                            "requests (CSV or TFRecord files of tf.Examples) to check for training-serving skew")
    run_parser.add_argument("--update-schema", action="store_true", help="accept this span's schema: infer "
                            "it again from this span and keep it in the statistics store as the next version "
                            "(default: validate against the kept schema)")
    run_parser.add_argument("--drift-threshold", action="append", metavar="X|COLUMN=X", help="drift threshold "
                            "of the features the schema sets none for (normalized Wasserstein distance for numbers, "
                            "L-infinity distance for categories; 0: no such check), or COLUMN=X for one column; "
                            f"repeatable (default: {DEFAULT_DRIFT_THRESHOLD}, calibrated in docs/drift.md)")
    run_parser.add_argument("--drift-ignore", action="append", metavar="COLUMN[,COLUMN]", help="columns not checked "
                            "for drift (e.g. a year that changes by design); the summary lists them")
    run_parser.add_argument("--skew-threshold", action="append", metavar="X|COLUMN=X", help="the same for "
                            f"training-serving skew (default: {DEFAULT_SKEW_THRESHOLD})")
    run_parser.add_argument("--warn-on-anomalies", action="store_true", help="report data anomalies "
                            "as warnings instead of stopping the run")
    run_parser.add_argument("--beam-args", default="", help="Beam pipeline arguments for the Beam stages (ingest, "
                            "statistics, transform, evaluate), e.g. '--runner=DataflowRunner --project=P ...' "
                            "(default: DirectRunner here); storage options among them (e.g. --s3_endpoint_url) "
                            "become the run's storage settings. Credentials are refused: they come from the "
                            "environment (AWS_ACCESS_KEY_ID, ...) or the workload's identity")
    _add_storage_flags(run_parser)
    run_parser.add_argument("--summary-json", default="", metavar="PATH", help="also write the run's "
                            "summary as JSON to PATH")
    run_parser.add_argument("--runner", choices=["subprocess", "docker"], default="subprocess", help="subprocess: "
                            "each stage in its own process in this Python; docker: each stage in a container "
                            "of --image, which sees only the pipeline root, so local paths must be under it "
                            "(default: %(default)s)")
    run_parser.add_argument("--image", default=default_image(), help="the image the stages run with --runner "
                            "docker (default: %(default)s, as scripts/build-image.sh tags it)")
    run_parser.add_argument("--stage-processes", choices=[WARM, FRESH], default=WARM, help="with --runner "
                            "subprocess: warm forks each stage's process from one that has imported "
                            "TensorFlow and the TFX libraries once; fresh starts a new Python for each stage, "
                            "as kfp.local does (same stages, outputs and logs; default: %(default)s)")
    _add_time_limit_flag(run_parser, "a stage's time limit: past it, the stage is stopped with every process it "
                         "started, with one line naming it")
    _add_beam_runner_flags(run_parser)
    run_parser.set_defaults(handler=_run)

    submit_parser = commands.add_parser("submit", help="submit the pipeline to Kubeflow Pipelines or Vertex AI",
                                        description="Upload the spec as a pipeline version named after the "
                                        "git revision and start a run on KFP (--host), or submit it to Vertex "
                                        "AI Pipelines (--vertex).")
    target = submit_parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--host", help="the KFP API, e.g. http://localhost:8888 (scripts/kind-up.sh)")
    target.add_argument("--vertex", action="store_true", help="submit to Vertex AI Pipelines")
    submit_parser.add_argument("--spec", default="", metavar="PATH", help="a compiled spec to submit (default: "
                               "compile one now with --image)")
    submit_parser.add_argument("--image", default=default_image(), help="the image the stages run, when "
                               "compiling (default: %(default)s)")
    submit_parser.add_argument("--kfp-volume", default="", metavar="PVC", help="KFP only, when compiling: "
                               f"mount this PersistentVolumeClaim at {STATE_MOUNT_PATH} (see compile)")
    _add_object_store_flags(submit_parser)
    _add_beam_runner_flags(submit_parser)
    _add_storage_flags(submit_parser)
    submit_parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline "
                               "argument, e.g. serving_root=/mnt/living-pipeline/serving; repeatable")
    submit_parser.add_argument("--experiment", default=PIPELINE_NAME, help="KFP experiment (default: "
                               "%(default)s)")
    submit_parser.add_argument("--version-name", default="", help="the pipeline version's name (default: the "
                               "git revision, with -dirty and the time for uncommitted changes)")
    submit_parser.add_argument("--pipeline-root", default="", help="where the run's artifacts go (required "
                               "for Vertex AI: gs://BUCKET/PATH; KFP: default the kfp-launcher ConfigMap's)")
    submit_parser.add_argument("--project", help="Vertex AI: the Google Cloud project")
    submit_parser.add_argument("--region", help="Vertex AI: the region, e.g. europe-west4")
    submit_parser.add_argument("--service-account", default="", help="Vertex AI: the service account the "
                               "stages run as (default: the Compute Engine default)")
    submit_parser.add_argument("--wait", action="store_true", help="wait for the run to end; fail unless it "
                               "succeeded")
    submit_parser.add_argument("--timeout", type=int, default=3600, help="KFP: seconds to wait with --wait "
                               "(default: %(default)s)")
    submit_parser.add_argument("--schedule", default="", metavar="CRON", help="instead of one run, run on this "
                               "schedule (a five-field cron expression, e.g. '0 6 * * *'), each run taking the "
                               "latest span: a KFP recurring run, or a Vertex AI pipeline schedule; it replaces "
                               "the pipeline's previous schedule")
    submit_parser.add_argument("--max-concurrency", type=int, default=1, metavar="N", help="with --schedule: "
                               "at most N scheduled runs at once (default: %(default)s, so two runs never race "
                               "to publish one model)")
    submit_parser.set_defaults(handler=_submit)

    models_parser = commands.add_parser("models", help="list the published versions of a model, newest first",
                                        description="List the published versions, newest first, with the time, "
                                        "span, key metric, baseline and blessing reason from the provenance "
                                        "record inside each. The serving root may be a gs:// or s3:// URI "
                                        "(credentials from the environment, as for run).")
    models_parser.add_argument("--serving-root", default="serving", metavar="R", help="default: %(default)s")
    models_parser.add_argument("--model-name", default=None, metavar="M", help="the model to list (default: every "
                               "model in the serving root)")
    models_parser.add_argument("--module", default=None, help="or the user module whose model to list")
    models_parser.add_argument("--json", action="store_true", help="print every version's whole provenance "
                               "record as JSON")
    models_parser.add_argument("--beam-args", default="", help="storage options as Beam flags, e.g. "
                               "'--s3_endpoint_url=http://localhost:8333' (as for run)")
    _add_storage_flags(models_parser)
    models_parser.set_defaults(handler=_models)

    demo_data_parser = commands.add_parser("demo-data", help="lay the demo data out as three spans by year",
                                           description="Write the penguins data as spans 1, 2, 3 (2007, "
                                           "2008, 2009) under DIR/span-{SPAN}/.")
    demo_data_parser.add_argument("--dir", default="data", help="default: %(default)s")
    demo_data_parser.set_defaults(handler=_demo_data)

    living_parser = commands.add_parser("demo-living", help="run the living-pipeline scenario on the demo data",
                                        description="Spans arrive one by one; a corrupted span and one "
                                        "with shuffled labels are refused; a span runs twice. Prints what "
                                        "was decided at each step, and why.")
    living_parser.add_argument("--dir", default="living_demo", help="the scenario's data, statistics, "
                               "serving root and run outputs (default: %(default)s)")
    living_parser.add_argument("--summary-json", default="", metavar="PATH", help="also write the "
                               "steps' outcomes as JSON to PATH")
    living_parser.set_defaults(handler=_demo_living)
    return parser.parse_args(argv)


def main(argv=None):
    with redacted_output():  # nothing printed shows a known secret value (components/redaction.py)
        args = parse_args(sys.argv[1:] if argv is None else argv)
        try:
            check_command_flags(args)
        except StageError as error:
            print(f"Error: {error}", file=sys.stderr)
            return 2
        return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
