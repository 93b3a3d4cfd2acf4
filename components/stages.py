"""The pipeline's KFP components: one thin, typed component per stage, in pipeline order.

These are lightweight Python components: KFP embeds each function's source in the pipeline spec and
runs it in the project image (locally: in this Python), where it imports the stage's logic from the
installed package. So each body imports what it needs, calls the logic, records metadata and writes
the stage's reports (HTML, Markdown, Metrics, ClassificationMetrics: what the KFP dashboard shows);
nothing else. Every stage takes `storage_settings`, the run's typed storage settings as JSON
(components.state.storage.StorageSettings), and hands a `Storage` made of them to the code that
touches files outside its artifacts; the four Beam stages also take `beam_args`, their Beam options.
What the platform needs to know about each stage is its row in components/stage_table.py; `pipeline.py`
turns these functions into components for a given image and wires them.
"""
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output


def ingest(data_pattern: str, data_format: str, csv_delimiter: str, query: str, query_partition_column: str,
           query_partitions: int, query_timeout: int, allow_privileged_role: bool, span: int, split_ratios: str,
           split_column: str, split_cutoff: str, beam_args: str,
           storage_settings: str, stage_timeouts: str, max_cell_bytes: int, examples: Output[Dataset]):
    """Ingest (ExampleGen): files of a span (CSV, Parquet, Avro, TFRecord) or a PostgreSQL query ->
    gzipped tf.Examples, split into train and eval (by hash, as given, or by a column).

    Args:
        data_pattern: The data files' path or glob (local, gs://, s3://; {SPAN}, {VERSION}, {SPLIT}); empty: the demo.
        data_format: csv, parquet, avro or tfrecord; empty to take it from the pattern's extension.
        csv_delimiter: The character between a CSV file's fields: ',' (the default), ';', '|' or tab.
        query: One read-only PostgreSQL query to read instead of files (the connection comes from the environment).
        query_partition_column: Read the query in parallel ranges of this integer column; empty: in one piece.
        query_partitions: How many ranges of query_partition_column to read in parallel.
        query_timeout: Seconds any statement or idle transaction of the query's sessions may take.
        allow_privileged_role: Query as a database role that can do more than read (it is refused otherwise).
        span: The span to read; 0 for the latest.
        split_ratios: Splits and their weights for the hash split, e.g. train:2,eval:1.
        split_column: A column to split by: by its hash, or with split_cutoff by its value.
        split_cutoff: Rows whose split_column is below this train, the others evaluate.
        beam_args: Beam flags for this stage (never credentials).
        storage_settings: The run's storage settings as JSON (S3 endpoint, region; never credentials).
        stage_timeouts: Every stage's time limit in seconds (ingest=7200,...); this stage stops at its own.
        max_cell_bytes: The most bytes one cell may hold; a larger cell, or a NUL byte in text, is refused.

    Returns:
        examples: The gzipped tf.Examples, a Split-<name> folder per split; metadata: span, row counts, column types.
    """
    from components.data.table_width import check_ingested_width
    from components.errors import reported_stage
    from components.platform.beam_runner import check_readable, output_uri, stage_beam_args
    from components.platform.time_limits import limit_stage_time
    from components.stage_logic.ingest import ingest_examples
    from components.state.storage import Storage

    with reported_stage():
        time_limit = limit_stage_time("ingest", stage_timeouts)
        storage = Storage.from_json(storage_settings)
        beam_args = stage_beam_args(beam_args, "ingest", storage.settings, time_limit)
        if not query:
            check_readable(data_pattern, "--data", beam_args)
        examples.metadata.update(ingest_examples(
            data_pattern, output_uri(examples, beam_args), span, split_ratios, beam_args,
            data_format=data_format, query=query,
            query_partition_column=query_partition_column, query_partitions=query_partitions,
            query_timeout=query_timeout, allow_privileged_role=allow_privileged_role,
            split_column=split_column, split_cutoff=split_cutoff, storage=storage, csv_delimiter=csv_delimiter,
            max_cell_bytes=max_cell_bytes))
        check_ingested_width(examples.metadata, stage_timeouts, "--query" if query else f"--data {data_pattern}")


def statistics(examples: Input[Dataset], slice_columns: str, serving_data: str, csv_delimiter: str, beam_args: str,
               storage_settings: str, stage_timeouts: str, max_cell_bytes: int, statistics: Output[Artifact],
               statistics_report: Output[HTML]):
    """Statistics (StatisticsGen): TFDV statistics of every split, per slice, and of a serving sample.

    Args:
        examples: The tf.Examples from ingest.
        slice_columns: Comma-separated columns to also compute statistics per value of; empty for none.
        serving_data: Path or glob of a serving sample (CSV or TFRecords) for the skew check; empty for none.
        csv_delimiter: The character between a CSV serving sample's fields: ',' (the default), ';', '|' or tab.
        beam_args: Beam flags for this stage (never credentials).
        storage_settings: The run's storage settings as JSON (S3 endpoint, region; never credentials).
        stage_timeouts: Every stage's time limit in seconds (ingest=7200,...); this stage stops at its own.
        max_cell_bytes: The most bytes one cell of a CSV serving sample may hold (NUL bytes are refused too).

    Returns:
        statistics: TFDV statistics (FeatureStats.pb) of every split and of the serving sample.
        statistics_report: Each feature's statistics, train and eval side by side.
    """
    from components.errors import reported_stage
    from components.platform.beam_runner import check_readable, input_uri, mirror, output_uri, stage_beam_args
    from components.platform.time_limits import limit_stage_time
    from components.reports import write_text
    from components.stage_logic.statistics import generate_statistics
    from components.stage_logic.statistics import statistics_report as build_report
    from components.state.storage import Storage

    with reported_stage():
        time_limit = limit_stage_time("statistics", stage_timeouts)
        storage = Storage.from_json(storage_settings)
        beam_args = stage_beam_args(beam_args, "statistics", storage.settings, time_limit)
        if serving_data:
            check_readable(serving_data, "--serving-data", beam_args)
        beam_output = output_uri(statistics, beam_args)
        splits = generate_statistics(input_uri(examples, beam_args, storage=storage), beam_output, beam_args,
                                     [c.strip() for c in slice_columns.split(",") if c.strip()], serving_data,
                                     storage=storage, csv_delimiter=csv_delimiter, max_cell_bytes=max_cell_bytes)
        mirror(beam_output, statistics.path, storage)  # schema, validate and the report read it as files
        # Header columns without a value in this span are in no statistics: the schema stage keeps their names.
        empty = sorted(c for c, kind in (examples.metadata.get("column_types") or {}).items() if kind == "missing")
        statistics.metadata.update({"split_names": splits, "span": int(examples.metadata.get("span", 0)),
                                    "empty_columns": empty})
        write_text(statistics_report.path, build_report(statistics.path, splits))


def schema(statistics: Input[Artifact], schema_path: str, module: str, statistics_root: str, update_schema: bool,
           model_name: str, storage_settings: str, stage_timeouts: str, schema: Output[Artifact],
           schema_report: Output[Markdown]):
    """Schema (SchemaGen / ImportSchemaGen): a curated schema file, the schema kept in the statistics store
    for this data, or one inferred from the span (kept once the span passes validation).

    Args:
        statistics: The statistics of every split, from statistics.
        schema_path: A curated schema.pbtxt, which always wins; empty to use the kept or an inferred one.
        module: The user module (import path or .py file): its label is left out of the SERVING environment.
        statistics_root: The statistics store holding each model's kept schema versions; empty to keep none.
        update_schema: Infer the schema again from this span and keep it as the next version.
        model_name: The model whose kept schema applies; empty for the module's (MODEL_NAME, else its file name).
        storage_settings: The run's storage settings as JSON (S3 endpoint, region; never credentials).
        stage_timeouts: Every stage's time limit in seconds (ingest=7200,...); this stage stops at its own.

    Returns:
        schema: The schema (schema.pbtxt); metadata says where it came from and which version it is.
        schema_report: Features, types, presence, domains, environments, drift and skew thresholds.
    """
    from components.errors import reported_stage
    from components.platform.time_limits import limit_stage_time
    from components.reports import write_text
    from components.stage_logic.schema import make_schema
    from components.state.model_names import resolve_model_name
    from components.state.storage import Storage

    with reported_stage():
        limit_stage_time("schema", stage_timeouts)
        storage = Storage.from_json(storage_settings)
        result = make_schema(statistics.path, schema.path, schema_path, module, statistics_root, update_schema,
                             model_name=resolve_model_name(model_name, module, storage),
                             span=int(statistics.metadata.get("span", 0)),
                             empty_columns=list(statistics.metadata.get("empty_columns") or []), storage=storage)
        write_text(schema_report.path, result.pop("report"))
        schema.metadata.update(result)


def validate(statistics: Input[Artifact], schema: Input[Artifact], block_on_anomalies: bool,
             statistics_root: str, drift_threshold: float, skew_threshold: float, drift_ignore: str,
             drift_column_thresholds: str, skew_column_thresholds: str, model_name: str, module: str,
             storage_settings: str, stage_timeouts: str, anomalies: Output[Artifact],
             anomalies_report: Output[Markdown]):
    """Validate (ExampleValidator): anomalies, drift of every feature against the model's last accepted span,
    skew against serving data; keeps the span's statistics and verdict (and a newly inferred schema) when it
    lets the span through.

    Args:
        statistics: The statistics of every split (and of the serving sample), from statistics.
        schema: The schema to validate against, from schema.
        block_on_anomalies: Stop the run on an anomaly; otherwise anomalies are warnings.
        statistics_root: The statistics store: earlier spans for the drift check, where a passing span is kept.
        drift_threshold: The default drift threshold for features whose schema sets none; 0 for none.
        skew_threshold: The default skew threshold for features whose schema sets none; 0 for none.
        drift_ignore: Comma-separated columns not checked for drift (e.g. year); empty for none.
        drift_column_thresholds: Per-column drift thresholds, e.g. fare=0.2,distance=0.3; empty for none.
        skew_column_thresholds: Per-column skew thresholds, the same way; empty for none.
        model_name: The model whose spans are compared and kept; empty for the module's.
        module: The user module (import path or .py file), for the model's name when model_name is empty.
        storage_settings: The run's storage settings as JSON (S3 endpoint, region; never credentials).
        stage_timeouts: Every stage's time limit in seconds (ingest=7200,...); this stage stops at its own.

    Returns:
        anomalies: The anomalies (SchemaDiff.pb); metadata lists each, and what drift and skew were checked on.
        anomalies_report: What drift and skew were checked against, and each anomaly with its value and threshold.
    """
    from components.errors import reported_stage
    from components.platform.time_limits import limit_stage_time
    from components.reports import write_text
    from components.stage_logic.validate import anomalies_markdown, validate_statistics
    from components.state.model_names import resolve_model_name
    from components.state.storage import Storage
    from components.validation.column_settings import parse_columns_text, parse_thresholds_text

    with reported_stage():
        limit_stage_time("validate", stage_timeouts)
        storage = Storage.from_json(storage_settings)
        result = validate_statistics(
            statistics.path, schema.path, anomalies.path, block_on_anomalies, int(statistics.metadata.get("span", 0)),
            statistics_root, drift_threshold, skew_threshold, dict(schema.metadata),
            model_name=resolve_model_name(model_name, module, storage), drift_ignore=parse_columns_text(drift_ignore),
            drift_column_thresholds=parse_thresholds_text(drift_column_thresholds, "--drift-threshold"),
            skew_column_thresholds=parse_thresholds_text(skew_column_thresholds, "--skew-threshold"), storage=storage)
        anomalies.metadata.update({"anomaly_count": len(result["anomalies"]), **result})
        write_text(anomalies_report.path, anomalies_markdown(result))


def transform(examples: Input[Dataset], schema: Input[Artifact], module: str, beam_args: str,
              storage_settings: str, stage_timeouts: str, transform_graph: Output[Artifact],
              transformed_examples: Output[Dataset], transform_report: Output[Markdown]):
    """Transform: TensorFlow Transform with the user module's preprocessing_fn.

    Args:
        examples: The tf.Examples from ingest.
        schema: The schema, from schema.
        module: The user module (import path or .py file) whose preprocessing_fn runs.
        beam_args: Beam flags for this stage (never credentials).
        storage_settings: The run's storage settings as JSON (S3 endpoint, region; never credentials).
        stage_timeouts: Every stage's time limit in seconds (ingest=7200,...); this stage stops at its own.

    Returns:
        transform_graph: The transform graph (transform_fn/) that train puts inside the serving model.
        transformed_examples: The transformed tf.Examples of every split.
        transform_report: The analyzers' vocabularies and each transformed feature's range.
    """
    import os

    from components.errors import reported_stage
    from components.platform.beam_runner import input_uri, mirror, mirror_file, output_uri, stage_beam_args
    from components.platform.time_limits import limit_stage_time
    from components.reports import write_text
    from components.stage_logic.transform import RANGES_FILE, transform_examples
    from components.stage_logic.transform import transform_report as build_report
    from components.state.storage import Storage, join

    with reported_stage():
        time_limit = limit_stage_time("transform", stage_timeouts)
        storage = Storage.from_json(storage_settings)
        beam_args = stage_beam_args(beam_args, "transform", storage.settings, time_limit)
        graph_uri = output_uri(transform_graph, beam_args, tensorflow=True)
        transformed_uri = output_uri(transformed_examples, beam_args)
        splits = transform_examples(input_uri(examples, beam_args, storage=storage), schema.path, module, graph_uri,
                                    transformed_uri, beam_args, storage=storage)
        transformed_examples.metadata["split_names"] = splits
        # Train and the report read the graph as files; the transformed examples stay in the bucket.
        mirror(graph_uri, transform_graph.path, storage)
        mirror_file(join(transformed_uri, RANGES_FILE), os.path.join(transformed_examples.path, RANGES_FILE),
                    storage)
        write_text(transform_report.path, build_report(transform_graph.path, transformed_examples.path))


def tune(transformed_examples: Input[Dataset], transform_graph: Input[Artifact], schema: Input[Artifact], module: str,
         tune: bool, tune_trials: int, tune_steps: int, hyperparameters: str, custom_config: str,
         storage_settings: str, stage_timeouts: str, best_hyperparameters: Output[Artifact],
         tuning_report: Output[HTML]):
    """Tune (Tuner): when asked, the user module's TFX tuner_fn searches hyperparameters with keras-tuner, at most
    tune_trials trials of tune_steps steps; train uses the best. Otherwise it passes through, and says so.

    Args:
        transformed_examples: The transformed tf.Examples, from transform.
        transform_graph: The transform graph, from transform.
        schema: The raw data's schema, from schema (tuner_fn's schema_file).
        module: The user module (import path or .py file) whose tuner_fn builds the tuner.
        tune: Whether to tune; without it this stage passes through.
        tune_trials: The most trials to run (the tuner's own max_trials may be lower).
        tune_steps: Training steps per trial (tuner_fn's fn_args.train_steps).
        hyperparameters: A JSON object for tuner_fn's fn_args.hyperparameters ('' for none).
        custom_config: A JSON object for tuner_fn's fn_args.custom_config ('' for none).
        storage_settings: The run's storage settings as JSON (S3 endpoint, region; never credentials).
        stage_timeouts: Every stage's time limit in seconds (ingest=7200,...); this stage stops at its own.

    Returns:
        best_hyperparameters: keras-tuner's config of the best hyperparameters (best_hyperparameters.txt), when tuned.
        tuning_report: The objective and every trial with its hyperparameters and score, or why nothing was tuned.
    """
    from components.errors import reported_stage
    from components.platform.time_limits import limit_stage_time
    from components.reports import write_text
    from components.stage_logic.tune import tune_hyperparameters, tuning_html, write_outcome
    from components.state.storage import Storage

    with reported_stage():
        limit_stage_time("tune", stage_timeouts)
        storage = Storage.from_json(storage_settings)
        if tune:
            from components.platform.beam_runner import local_view

            with local_view(transformed_examples, storage) as transformed_dir:
                outcome = tune_hyperparameters(transformed_dir, transform_graph.path, module, best_hyperparameters.path,
                                               tune, tune_trials, tune_steps, hyperparameters, custom_config,
                                               schema.path, storage)
        else:
            outcome = tune_hyperparameters("", "", module, best_hyperparameters.path, tune, tune_trials, tune_steps,
                                           storage=storage)
        write_outcome(best_hyperparameters.path, outcome)
        best_hyperparameters.metadata.update(outcome)
        write_text(tuning_report.path, tuning_html(outcome))
        print(f"Tuned: best {outcome['objective']} {outcome['best_score']} in trial {outcome['best_trial']} of "
              f"{len(outcome['trials'])}" if outcome["tuned"] else f"Not tuned: {outcome['reason']}")


def train(transformed_examples: Input[Dataset], transform_graph: Input[Artifact], examples: Input[Dataset],
          schema: Input[Artifact], best_hyperparameters: Input[Artifact], module: str, train_steps: int,
          hyperparameters: str, custom_config: str, storage_settings: str, stage_timeouts: str, model: Output[Model],
          metrics: Output[Metrics], learning_curves: Output[HTML],
          tensorboard_logs: Output[Artifact]):
    """Train (Trainer): the user module's build_model (fitted here; the export returns class probabilities for
    any accepted classifier output) or its TFX-style run_fn; the serving signature is tried on raw eval
    examples, which also become TF Serving warm-up requests; TensorBoard logs are kept.

    Args:
        transformed_examples: The transformed tf.Examples, from transform.
        transform_graph: The transform graph, from transform.
        examples: The raw examples, from ingest (the serving signature is tried on eval examples).
        schema: The raw data's schema, from schema (run_fn's schema_file).
        best_hyperparameters: The tune stage's best hyperparameters, which replace hyperparameters when it tuned.
        module: The user module (import path or .py file) whose build_model or run_fn trains the model.
        train_steps: How many training steps.
        hyperparameters: A JSON object for build_model's or run_fn's hyperparameters ('' for none).
        custom_config: A JSON object for build_model's or run_fn's custom_config ('' for none).
        storage_settings: The run's storage settings as JSON (S3 endpoint, region; never credentials).
        stage_timeouts: Every stage's time limit in seconds (ingest=7200,...); this stage stops at its own.

    Returns:
        model: The SavedModel whose default signature takes serialized raw tf.Examples.
        metrics: The final loss and metrics of training.
        learning_curves: The contract, settings, and loss and metrics per epoch, as charts.
        tensorboard_logs: The TensorBoard logs of training (model_run_dir).
    """
    import os

    from components.platform.time_limits import limit_stage_time

    # `tf.keras` is Keras 2 (tf_keras) in this stage, as TFX 1.16 modules need: set before TensorFlow is imported.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from components.errors import reported_stage
    from components.json_values import finite, is_finite_number
    from components.platform.beam_runner import local_view
    from components.reports import write_text
    from components.stage_logic.train import learning_curves_html, train_model
    from components.stage_logic.tune import read_best_hyperparameters
    from components.state.storage import Storage

    with reported_stage():
        limit_stage_time("train", stage_timeouts)
        storage = Storage.from_json(storage_settings)
        # Examples that Beam's workers wrote to a bucket are read from there (downloaded: TensorFlow reads files).
        with local_view(transformed_examples, storage) as transformed_dir, \
                local_view(examples, storage) as examples_dir:
            result = train_model(transformed_dir, transform_graph.path, module, model.path, train_steps,
                                 hyperparameters=hyperparameters, custom_config=custom_config,
                                 model_run_dir=tensorboard_logs.path, examples_dir=examples_dir,
                                 schema_dir=schema.path, storage=storage,
                                 tuned_hyperparameters=read_best_hyperparameters(best_hyperparameters.path))
        model.metadata.update(finite(result))  # a diverged loss (NaN) is null: KFP's metadata takes no NaN
        for name, value in result["final"].items():
            if is_finite_number(value):
                metrics.log_metric(name, value)
        write_text(learning_curves.path, learning_curves_html(result["history"], result["final"],
                                                              result["hyperparameters"], result["custom_config"],
                                                              result["contract"]))


def evaluate(model: Input[Model], examples: Input[Dataset], schema: Input[Artifact], module: str,
             serving_root: str, model_name: str, slice_columns: str, threshold: float, tolerance: float,
             slice_threshold: float, min_slice_examples: int, beam_args: str, storage_settings: str,
             stage_timeouts: str, evaluation: Output[Artifact],
             blessing: Output[Artifact], metrics: Output[Metrics], confusion_matrix: Output[ClassificationMetrics],
             evaluation_report: Output[HTML], blessing_report: Output[Markdown]):
    """Evaluate (Evaluator): TFMA on the eval split, overall and per slice, and the blessing against the
    serving model (value and change gates on the overall metric; slices gate only when asked).

    Args:
        model: The candidate model, from train.
        examples: The tf.Examples from ingest; the eval split is evaluated.
        schema: The schema, from schema.
        module: The user module (import path or .py file): its label, problem type and slice columns.
        serving_root: Where models are published; its newest version is the baseline.
        model_name: The model's folder in the serving root; empty for the module's.
        slice_columns: Comma-separated columns to report metrics per value of; empty for the module's.
        threshold: The overall metric the candidate must reach (accuracy, or R² for regression).
        tolerance: How much worse than the serving model the candidate may be.
        slice_threshold: The metric every large enough slice must reach; 0 for no slice gate.
        min_slice_examples: The fewest examples a slice needs to gate.
        beam_args: Beam flags for this stage (never credentials).
        storage_settings: The run's storage settings as JSON (S3 endpoint, region; never credentials).
        stage_timeouts: Every stage's time limit in seconds (ingest=7200,...); this stage stops at its own.

    Returns:
        evaluation: TFMA's evaluation of the candidate (and the baseline), overall and per slice.
        blessing: BLESSED or NOT_BLESSED with the reasons and the baseline version it was compared with.
        metrics: The candidate's overall metrics.
        confusion_matrix: The confusion matrix (and the ROC curve for two classes).
        evaluation_report: Overall and per-slice metrics, candidate against the serving model.
        blessing_report: The thresholds, each gate's outcome and the verdict.
    """
    from components.errors import reported_stage
    from components.evaluation.blessing import write_blessing
    from components.platform.beam_runner import beam_dirs_for_evaluate, stage_beam_args
    from components.platform.time_limits import limit_stage_time
    from components.reports import write_text
    from components.stage_logic.evaluate import blessing_markdown, evaluate_model, evaluation_html, roc_curve
    from components.stage_logic.evaluate import confusion_matrix as read_confusion_matrix
    from components.stage_logic.evaluate import kfp_metrics as defined_metrics
    from components.state.model_names import resolve_model_name
    from components.state.serving_root import baseline_model
    from components.state.storage import Storage

    with reported_stage():
        time_limit = limit_stage_time("evaluate", stage_timeouts)
        storage = Storage.from_json(storage_settings)
        model_name = resolve_model_name(model_name, module, storage)
        beam_args = stage_beam_args(beam_args, "evaluate", storage.settings, time_limit)
        with baseline_model(serving_root, model_name, storage) as (baseline, local_baseline, baseline_version):
            decision = evaluate_model(
                model.path, examples.path, schema.path, module, evaluation.path,
                beam_dirs=beam_dirs_for_evaluate(model, examples, evaluation, baseline, local_baseline, beam_args,
                                                 storage),
                baseline_dir=local_baseline,
                slice_columns=[c.strip() for c in slice_columns.split(",") if c.strip()] or None,
                threshold=threshold, tolerance=tolerance, beam_args=beam_args,
                baseline_version=baseline_version,  # push publishes only while it is still the newest
                slice_threshold=slice_threshold, min_slice_examples=min_slice_examples,
                class_count=int(model.metadata.get("class_count", 0)), output_kind=model.metadata.get("output", ""),
                storage=storage)
        decision["baseline"] = baseline or ""
        write_blessing(decision, blessing.path)
        blessing.metadata.update(decision)
        evaluation.metadata.update({"overall": decision["overall"], "slices": decision["slices"],
                                    "undefined": decision["undefined"]})
        for name, value in defined_metrics(decision).items():  # undefined ones are left out, and the reports say so
            metrics.log_metric(name, value)
        matrix = read_confusion_matrix(evaluation.path, decision["classes"] or None)
        if matrix:
            confusion_matrix.log_confusion_matrix(*matrix)
        roc = roc_curve(evaluation.path)
        if roc:
            confusion_matrix.log_roc_curve(*roc)
        write_text(evaluation_report.path, evaluation_html(decision, roc, matrix))
        write_text(blessing_report.path, blessing_markdown(decision))


def push(model: Input[Model], blessing: Input[Artifact], examples: Input[Dataset], schema: Input[Artifact],
         serving_root: str, model_name: str, statistics_root: str, module: str, data_pattern: str, hyperparameters: str,
         custom_config: str, run_name: str, run_id: str, build_info: str, storage_settings: str, stage_timeouts: str,
         pushed_model: Output[Model], push_report: Output[Markdown]):
    """Push (Pusher): publish a blessed model as the next version in the serving root, if the version
    the candidate was compared with is still the newest, with its provenance record inside; and conclude
    the span's verdict in the statistics store (accepted as a drift baseline only if its model was blessed).

    Args:
        model: The candidate model, from train.
        blessing: The blessing, from evaluate.
        examples: The raw examples, from ingest (their span, version and row counts go in the record).
        schema: The schema, from schema (its digest goes in the record).
        serving_root: Where models are published as <model_name>/<version>/, local or gs:// or s3://.
        model_name: The model's folder in the serving root; empty for the module's.
        statistics_root: The statistics store, where the span's verdict is concluded; empty for none.
        module: The user module, for the record.
        data_pattern: The data pattern, for the record.
        hyperparameters: The training hyperparameters (JSON), for the record.
        custom_config: The training custom config (JSON), for the record.
        run_name: The run's name, for the record.
        run_id: The run's id, for the record.
        build_info: The image, package version and git revision (JSON), for the record.
        storage_settings: The run's storage settings as JSON (S3 endpoint, region; never credentials).
        stage_timeouts: Every stage's time limit in seconds (ingest=7200,...); this stage stops at its own.

    Returns:
        pushed_model: Where the version was published, or why nothing was.
        push_report: What was published where, or why nothing was.
    """
    import json

    from components.errors import reported_stage
    from components.evaluation.blessing import read_blessing
    from components.platform.time_limits import limit_stage_time
    from components.reports import write_text
    from components.stage_logic.push import push_markdown, push_model
    from components.state.model_names import resolve_model_name
    from components.state.provenance import provenance_record
    from components.state.statistics_store import conclude_span_verdict, model_store
    from components.state.storage import Storage

    with reported_stage():
        limit_stage_time("push", stage_timeouts)
        storage = Storage.from_json(storage_settings)
        model_name = resolve_model_name(model_name, module, storage)
        decision = read_blessing(blessing.path)
        record = provenance_record(
            run={"name": run_name, "id": run_id}, build=json.loads(build_info or "{}"),
            data={**examples.metadata, "pattern": data_pattern}, schema_dir=schema.path, schema_uri=schema.uri,
            schema_metadata=dict(schema.metadata), module=module, training=dict(model.metadata),
            decision=decision, hyperparameters=hyperparameters, custom_config=custom_config, storage=storage
        ) if decision["blessed"] else None
        result = push_model(model.path, decision, serving_root, model_name, record, storage)
        why = f", published as version {result['version']}" if result["pushed"] else f" ({result['reason']})"
        result["span_verdict"] = conclude_span_verdict(
            model_store(statistics_root, model_name), int(examples.metadata.get("span") or 0), decision["blessed"],
            why, storage) if statistics_root else {}
        pushed_model.metadata.update(result)
        write_text(push_report.path, push_markdown(result, serving_root, model_name))
        print(("Published version {version} at {path}" if result["pushed"] else "Nothing published: {reason}")
              .format(**result))

