"""The living pipeline: nine TFX-style stages wired into one KFP v2 pipeline, and its compiled spec.

`create_pipeline` wires the stages' components (components/stages.py) for an image, with each task's
settings from the stage table (components/stage_table.py, applied by components/platform/cluster.py);
`compile_pipeline` writes the spec (KFP IR YAML) that Kubeflow Pipelines, Vertex AI and local runs
(kfp.local) all run, with the digest of that spec in the provenance record of each published version.
The command line is pipeline_cli.py; `python pipeline.py ...` runs it:

    python pipeline.py compile [--output pipeline.yaml] [--image IMAGE] [--kfp-s3-endpoint URL | --kfp-volume PVC]
    python pipeline.py run [--runner docker] [--data PATTERN] [--span N] [--module M] [--serving-root DIR] ...
    python pipeline.py submit --host URL | --vertex ...
    python pipeline.py models [--serving-root R] [--model-name M] [--json]
"""
import hashlib
import importlib.metadata
import json
import os
import tempfile
from typing import NamedTuple

from kfp import compiler, dsl
from kfp.dsl import Artifact, Metrics, Model

from components.data.cell_limits import DEFAULT_MAX_CELL_BYTES
from components.data.csv_dialect import DEFAULT_DELIMITER
from components.data.database import DEFAULT_QUERY_PARTITIONS, DEFAULT_QUERY_TIMEOUT_SECONDS
from components.data.layout import DEFAULT_SPLIT_RATIOS
from components.evaluation.blessing import DEFAULT_MIN_SLICE_EXAMPLES, DEFAULT_THRESHOLD
from components.platform.cluster import configure_tasks
from components.platform.time_limits import timeouts_text
from components.stage_logic.schema import DEFAULT_DRIFT_THRESHOLD, DEFAULT_SKEW_THRESHOLD
from components.stage_logic.tune import DEFAULT_TUNE_STEPS, DEFAULT_TUNE_TRIALS
from components.stage_table import STAGES, TIMEOUTS

PIPELINE_NAME = "living-pipeline"
DEFAULT_MODULE = "components.penguins.module"
DEFAULT_TRAIN_STEPS = 300
DEFAULT_TOLERANCE = 0.01


def default_image():
    """The project image, tagged with the package version."""
    return f"living-pipeline:{importlib.metadata.version('living-pipeline')}"


class PipelineOutputs(NamedTuple):
    anomalies: Artifact
    train_metrics: Metrics
    eval_metrics: Metrics
    blessing: Artifact
    pushed_model: Model


def create_pipeline(image, kfp_volume=None, object_store=None, build_info="", stage_timeouts=None):
    """The pipeline, with every stage running `image`; with `kfp_volume` or `object_store`, KFP-flavoured
    (see components.platform.cluster). `build_info` (JSON: image, git revision, spec digest) goes into the
    provenance record of each published version. `stage_timeouts` ({stage: seconds}, default the stage table's)
    are the spec's default time limits and, on KFP, the pods' deadlines (components/platform/time_limits.py)."""
    timeouts = stage_timeouts or TIMEOUTS
    op = {stage.name: dsl.component(stage.component, base_image=image, install_kfp_package=False)
          for stage in STAGES}

    @dsl.pipeline(name=PIPELINE_NAME, description="Ingest, validate, transform, train, evaluate and "
                  "publish a model, TFX-style, on Kubeflow Pipelines, Vertex AI or this machine.")
    def living_pipeline(
        serving_root: str,
        data_pattern: str = "",
        data_format: str = "",
        csv_delimiter: str = DEFAULT_DELIMITER,
        max_cell_bytes: int = DEFAULT_MAX_CELL_BYTES,
        query: str = "",
        query_partition_column: str = "",
        query_partitions: int = DEFAULT_QUERY_PARTITIONS,
        query_timeout: int = DEFAULT_QUERY_TIMEOUT_SECONDS,
        allow_privileged_role: bool = False,
        span: int = 0,
        split_ratios: str = DEFAULT_SPLIT_RATIOS,
        split_column: str = "",
        split_cutoff: str = "",
        schema_path: str = "",
        update_schema: bool = False,
        block_on_anomalies: bool = True,
        statistics_root: str = "",
        drift_threshold: float = DEFAULT_DRIFT_THRESHOLD,
        skew_threshold: float = DEFAULT_SKEW_THRESHOLD,
        drift_ignore: str = "",
        drift_column_thresholds: str = "",
        skew_column_thresholds: str = "",
        statistics_slices: str = "",
        serving_data: str = "",
        module: str = DEFAULT_MODULE,
        train_steps: int = DEFAULT_TRAIN_STEPS,
        tune: bool = False,
        tune_trials: int = DEFAULT_TUNE_TRIALS,
        tune_steps: int = DEFAULT_TUNE_STEPS,
        hyperparameters: str = "",
        custom_config: str = "",
        model_name: str = "",
        slice_columns: str = "",
        threshold: float = DEFAULT_THRESHOLD,
        tolerance: float = DEFAULT_TOLERANCE,
        slice_threshold: float = 0.0,
        min_slice_examples: int = DEFAULT_MIN_SLICE_EXAMPLES,
        beam_args: str = "",
        storage_settings: str = "",
        stage_timeouts: str = timeouts_text(timeouts),
    ) -> PipelineOutputs:
        # Resources, caching and where kept state lives come from the stage table (configure_tasks below).
        ingest = op["ingest"](data_pattern=data_pattern, data_format=data_format, csv_delimiter=csv_delimiter,
                              query=query,
                              query_partition_column=query_partition_column, query_partitions=query_partitions,
                              query_timeout=query_timeout, allow_privileged_role=allow_privileged_role,
                              span=span, split_ratios=split_ratios, split_column=split_column,
                              split_cutoff=split_cutoff, beam_args=beam_args, storage_settings=storage_settings,
                              stage_timeouts=stage_timeouts, max_cell_bytes=max_cell_bytes)
        statistics = op["statistics"](examples=ingest.outputs["examples"], slice_columns=statistics_slices,
                                      serving_data=serving_data, csv_delimiter=csv_delimiter, beam_args=beam_args,
                                      storage_settings=storage_settings, stage_timeouts=stage_timeouts,
                                      max_cell_bytes=max_cell_bytes)
        schema = op["schema"](statistics=statistics.outputs["statistics"], schema_path=schema_path,
                              module=module, statistics_root=statistics_root, update_schema=update_schema,
                              model_name=model_name, storage_settings=storage_settings, stage_timeouts=stage_timeouts)
        validate = op["validate"](statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"],
                                  block_on_anomalies=block_on_anomalies, statistics_root=statistics_root,
                                  drift_threshold=drift_threshold, skew_threshold=skew_threshold,
                                  drift_ignore=drift_ignore, drift_column_thresholds=drift_column_thresholds,
                                  skew_column_thresholds=skew_column_thresholds, model_name=model_name,
                                  module=module, storage_settings=storage_settings, stage_timeouts=stage_timeouts)
        transform = op["transform"](examples=ingest.outputs["examples"], schema=schema.outputs["schema"],
                                    module=module, beam_args=beam_args,
                                    storage_settings=storage_settings, stage_timeouts=stage_timeouts).after(validate)
        tuner = op["tune"](transformed_examples=transform.outputs["transformed_examples"],
                           transform_graph=transform.outputs["transform_graph"], schema=schema.outputs["schema"],
                           module=module, tune=tune, tune_trials=tune_trials, tune_steps=tune_steps,
                           hyperparameters=hyperparameters, custom_config=custom_config,
                           storage_settings=storage_settings, stage_timeouts=stage_timeouts)
        train = op["train"](transformed_examples=transform.outputs["transformed_examples"],
                            transform_graph=transform.outputs["transform_graph"],
                            examples=ingest.outputs["examples"], schema=schema.outputs["schema"],
                            best_hyperparameters=tuner.outputs["best_hyperparameters"], module=module,
                            train_steps=train_steps, hyperparameters=hyperparameters, custom_config=custom_config,
                            storage_settings=storage_settings, stage_timeouts=stage_timeouts)
        evaluate = op["evaluate"](
            model=train.outputs["model"], examples=ingest.outputs["examples"],
            schema=schema.outputs["schema"], module=module, serving_root=serving_root,
            model_name=model_name, slice_columns=slice_columns, threshold=threshold,
            tolerance=tolerance, slice_threshold=slice_threshold, min_slice_examples=min_slice_examples,
            beam_args=beam_args, storage_settings=storage_settings, stage_timeouts=stage_timeouts)
        push = op["push"](model=train.outputs["model"], blessing=evaluate.outputs["blessing"],
                          examples=ingest.outputs["examples"], schema=schema.outputs["schema"],
                          serving_root=serving_root, model_name=model_name, statistics_root=statistics_root,
                          module=module, data_pattern=data_pattern, hyperparameters=hyperparameters,
                          custom_config=custom_config,
                          run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                          run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, build_info=build_info,
                          storage_settings=storage_settings, stage_timeouts=stage_timeouts)
        configure_tasks([ingest, statistics, schema, validate, transform, tuner, train, evaluate, push], kfp_volume,
                        object_store, timeouts)
        return PipelineOutputs(anomalies=validate.outputs["anomalies"],
                               train_metrics=train.outputs["metrics"],
                               eval_metrics=evaluate.outputs["metrics"],
                               blessing=evaluate.outputs["blessing"],
                               pushed_model=push.outputs["pushed_model"])

    return living_pipeline


def _git_revision():
    """The checkout's git revision (with -dirty for uncommitted changes), or '' outside a checkout."""
    from components.platform.submit import SubmissionError
    from components.platform.submit import git_revision as revision_of

    try:
        return revision_of(os.path.dirname(os.path.abspath(__file__)))
    except SubmissionError:
        return ""


def spec_digest(image, kfp_volume=None, object_store=None, git_revision="", stage_timeouts=None):
    """The sha256 of the spec compiled with build info {image, git_revision} only: the digest a published
    version's provenance record holds (a spec cannot hold its own digest)."""
    with tempfile.TemporaryDirectory(prefix="living-pipeline-spec-") as scratch:
        path = os.path.join(scratch, "pipeline.yaml")
        compiler.Compiler().compile(create_pipeline(image, kfp_volume, object_store, json.dumps(
            {"image": image, "git_revision": git_revision}, sort_keys=True), stage_timeouts), package_path=path)
        with open(path, "rb") as source:
            return hashlib.sha256(source.read()).hexdigest()


def compile_pipeline(output, image, kfp_volume=None, object_store=None, stage_timeouts=None):
    """Writes the spec to `output` with its build info (image, git revision, spec digest) and the stages' time
    limits ({stage: seconds}, default the stage table's); returns `output`."""
    revision = _git_revision()
    build_info = json.dumps({"image": image, "git_revision": revision,
                             "spec_sha256": spec_digest(image, kfp_volume, object_store, revision, stage_timeouts)},
                            sort_keys=True)
    compiler.Compiler().compile(create_pipeline(image, kfp_volume, object_store, build_info, stage_timeouts),
                                package_path=output)
    return output


if __name__ == "__main__":
    import sys

    from pipeline_cli import main

    sys.exit(main())
