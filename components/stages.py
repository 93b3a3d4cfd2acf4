"""The pipeline's KFP components: one thin, typed component per stage, in pipeline order.

These are lightweight Python components: KFP embeds each function's source in the pipeline spec and
runs it in the project image (locally: in this Python), where it imports the stage's logic from the
installed package. So each body imports what it needs, calls the logic, records metadata and writes
the stage's reports (HTML, Markdown, Metrics, ClassificationMetrics: what the KFP dashboard shows);
nothing else. Every stage that may touch a bucket takes `beam_args`, the run's one storage
configuration (e.g. `--s3_endpoint_url`), and calls `configure(beam_args)` first. `pipeline.py`
turns them into components for a given image.
"""
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, HTML, Input, Markdown, Metrics, Model, Output


def ingest(data_pattern: str, data_format: str, query: str, query_partition_column: str, query_partitions: int,
           span: int, split_ratios: str, split_column: str, split_cutoff: str, beam_args: str,
           examples: Output[Dataset]):
    """Ingest (ExampleGen): files of a span (CSV, Parquet, Avro, TFRecord) or a PostgreSQL query ->
    gzipped tf.Examples, split into train and eval (by hash, as given, or by a column)."""
    from components.errors import reported_stage
    from components.ingest import ingest_examples
    from components.storage import configure

    with reported_stage():
        configure(beam_args)
        examples.metadata.update(ingest_examples(
            data_pattern, examples.path, span, split_ratios, beam_args, data_format=data_format, query=query,
            query_partition_column=query_partition_column, query_partitions=query_partitions,
            split_column=split_column, split_cutoff=split_cutoff))


def statistics(examples: Input[Dataset], slice_columns: str, serving_data: str, beam_args: str,
               statistics: Output[Artifact], statistics_report: Output[HTML]):
    """Statistics (StatisticsGen): TFDV statistics of every split, per slice, and of a serving sample."""
    from components.errors import reported_stage
    from components.reports import write_text
    from components.statistics import generate_statistics, statistics_report as build_report
    from components.storage import configure

    with reported_stage():
        configure(beam_args)
        splits = generate_statistics(examples.path, statistics.path, beam_args,
                                     [c.strip() for c in slice_columns.split(",") if c.strip()], serving_data)
        statistics.metadata.update({"split_names": splits, "span": int(examples.metadata.get("span", 0))})
        write_text(statistics_report.path, build_report(statistics.path, splits))


def schema(statistics: Input[Artifact], schema_path: str, module: str, statistics_root: str, update_schema: bool,
           beam_args: str, schema: Output[Artifact], schema_report: Output[Markdown]):
    """Schema (SchemaGen / ImportSchemaGen): a curated schema file, the schema kept in the statistics store
    for this data, or one inferred from the span (kept once the span passes validation)."""
    from components.errors import reported_stage
    from components.reports import write_text
    from components.schema import make_schema
    from components.storage import configure

    with reported_stage():
        configure(beam_args)
        result = make_schema(statistics.path, schema.path, schema_path, module, statistics_root, update_schema)
        write_text(schema_report.path, result.pop("report"))
        schema.metadata.update(result)


def validate(statistics: Input[Artifact], schema: Input[Artifact], block_on_anomalies: bool,
             statistics_root: str, drift_threshold: float, skew_threshold: float, beam_args: str,
             anomalies: Output[Artifact], anomalies_report: Output[Markdown]):
    """Validate (ExampleValidator): anomalies, drift of every feature against the last span that passed,
    skew against serving data; keeps the span's statistics (and a newly inferred schema) when it passes."""
    from components.errors import reported_stage
    from components.reports import write_text
    from components.storage import configure
    from components.validate import anomalies_markdown, validate_statistics

    with reported_stage():
        configure(beam_args)
        result = validate_statistics(statistics.path, schema.path, anomalies.path, block_on_anomalies,
                                     int(statistics.metadata.get("span", 0)), statistics_root, drift_threshold,
                                     skew_threshold, dict(schema.metadata))
        anomalies.metadata.update({"anomaly_count": len(result["anomalies"]), **result})
        write_text(anomalies_report.path, anomalies_markdown(result))


def transform(examples: Input[Dataset], schema: Input[Artifact], module: str, beam_args: str,
              transform_graph: Output[Artifact], transformed_examples: Output[Dataset],
              transform_report: Output[Markdown]):
    """Transform: TensorFlow Transform with the user module's preprocessing_fn."""
    from components.errors import reported_stage
    from components.reports import write_text
    from components.storage import configure
    from components.transform import transform_examples, transform_report as build_report

    with reported_stage():
        configure(beam_args)
        splits = transform_examples(examples.path, schema.path, module, transform_graph.path,
                                    transformed_examples.path, beam_args)
        transformed_examples.metadata["split_names"] = splits
        write_text(transform_report.path, build_report(transform_graph.path, transformed_examples.path))


def train(transformed_examples: Input[Dataset], transform_graph: Input[Artifact], examples: Input[Dataset],
          schema: Input[Artifact], module: str, train_steps: int, hyperparameters: str, custom_config: str,
          beam_args: str, model: Output[Model], metrics: Output[Metrics], learning_curves: Output[HTML],
          tensorboard_logs: Output[Artifact]):
    """Train (Trainer): the user module's build_model (fitted here; the export returns class probabilities for
    any accepted classifier output) or its TFX-style run_fn; the serving signature is tried on raw eval
    examples, which also become TF Serving warm-up requests; TensorBoard logs are kept."""
    import os

    # `tf.keras` is Keras 2 (tf_keras) in this stage, as TFX 1.16 modules need: set before TensorFlow is imported.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from components.errors import reported_stage
    from components.reports import write_text
    from components.storage import configure
    from components.train import learning_curves_html, train_model

    with reported_stage():
        configure(beam_args)
        result = train_model(transformed_examples.path, transform_graph.path, module, model.path, train_steps,
                             hyperparameters=hyperparameters, custom_config=custom_config,
                             model_run_dir=tensorboard_logs.path, examples_dir=examples.path,
                             schema_dir=schema.path)
        model.metadata.update(result)
        for name, value in result["final"].items():
            metrics.log_metric(name, value)
        write_text(learning_curves.path, learning_curves_html(result["history"], result["final"],
                                                              result["hyperparameters"], result["custom_config"],
                                                              result["contract"]))


def evaluate(model: Input[Model], examples: Input[Dataset], schema: Input[Artifact], module: str,
             serving_root: str, model_name: str, slice_columns: str, threshold: float, tolerance: float,
             slice_threshold: float, min_slice_examples: int, beam_args: str, evaluation: Output[Artifact],
             blessing: Output[Artifact], metrics: Output[Metrics], confusion_matrix: Output[ClassificationMetrics],
             evaluation_report: Output[HTML], blessing_report: Output[Markdown]):
    """Evaluate (Evaluator): TFMA on the eval split, overall and per slice, and the blessing against the
    serving model (value and change gates on the overall metric; slices gate only when asked)."""
    from components.blessing import write_blessing
    from components.errors import reported_stage
    from components.evaluate import (blessing_markdown, confusion_matrix as read_confusion_matrix, evaluate_model,
                                     evaluation_html, roc_curve)
    from components.reports import write_text
    from components.serving_root import baseline_model
    from components.storage import configure

    with reported_stage():
        configure(beam_args)
        with baseline_model(serving_root, model_name) as (baseline, local_baseline, baseline_version):
            decision = evaluate_model(
                model.path, examples.path, schema.path, module, evaluation.path,
                baseline_dir=local_baseline,
                slice_columns=[c.strip() for c in slice_columns.split(",") if c.strip()] or None,
                threshold=threshold, tolerance=tolerance, beam_args=beam_args,
                baseline_version=baseline_version,  # push publishes only while it is still the newest
                slice_threshold=slice_threshold, min_slice_examples=min_slice_examples,
                class_count=int(model.metadata.get("class_count", 0)), output_kind=model.metadata.get("output", ""))
        decision["baseline"] = baseline or ""
        write_blessing(decision, blessing.path)
        blessing.metadata.update(decision)
        evaluation.metadata.update({"overall": decision["overall"], "slices": decision["slices"]})
        for name, value in decision["overall"].get("candidate", {}).items():
            metrics.log_metric(name, value)
        matrix = read_confusion_matrix(evaluation.path, decision["classes"] or None)
        if matrix:
            confusion_matrix.log_confusion_matrix(*matrix)
        roc = roc_curve(evaluation.path)
        if roc:
            confusion_matrix.log_roc_curve(*roc)
        write_text(evaluation_report.path, evaluation_html(decision, roc))
        write_text(blessing_report.path, blessing_markdown(decision))


def push(model: Input[Model], blessing: Input[Artifact], examples: Input[Dataset], schema: Input[Artifact],
         serving_root: str, model_name: str, module: str, data_pattern: str, hyperparameters: str,
         custom_config: str, run_name: str, run_id: str, build_info: str, beam_args: str,
         pushed_model: Output[Model], push_report: Output[Markdown]):
    """Push (Pusher): publish a blessed model as the next version in the serving root, if the version
    the candidate was compared with is still the newest, with its provenance record inside."""
    import json

    from components.blessing import read_blessing
    from components.errors import reported_stage
    from components.provenance import provenance_record
    from components.push import push_markdown, push_model
    from components.reports import write_text
    from components.storage import configure

    with reported_stage():
        configure(beam_args)
        decision = read_blessing(blessing.path)
        record = provenance_record(
            run={"name": run_name, "id": run_id}, build=json.loads(build_info or "{}"),
            data={**examples.metadata, "pattern": data_pattern}, schema_dir=schema.path, schema_uri=schema.uri,
            schema_metadata=dict(schema.metadata), module=module, training=dict(model.metadata),
            decision=decision, hyperparameters=hyperparameters, custom_config=custom_config
        ) if decision["blessed"] else None
        result = push_model(model.path, decision, serving_root, model_name, record)
        pushed_model.metadata.update(result)
        write_text(push_report.path, push_markdown(result, serving_root, model_name))
        print(("Published version {version} at {path}" if result["pushed"] else "Nothing published: {reason}")
              .format(**result))


STAGES = [ingest, statistics, schema, validate, transform, train, evaluate, push]
