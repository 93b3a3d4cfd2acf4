"""Evaluate (TFX's Evaluator): TFMA on the eval split, and the blessing decision.

Raw eval examples go through the model's serving signature; the label comes from its
`transform_features` signature, so evaluation sees exactly what serving sees. The candidate is blessed
when its blessing metric (accuracy for classification, R² for regression) passes the
absolute threshold and, when a model is already published, is not worse than that baseline by more
than the tolerance. The reasons (metric, candidate, baseline, threshold) go with the decision.

A serving model that requires a feature in every example (a dense feature of the schema it was trained
with) which this span's schema lets be empty (after `--update-schema`) cannot read the eval examples
without it: both models are then measured on the examples it can read, and the reasons say how many;
where this span's schema has no such column at all, the candidate is judged without it.

A metric that is undefined on a slice (R² where the label is constant, anything NaN or infinite) is None
in the decision, with the reason in its `undefined` list; the reports show it as undefined, the KFP
metrics leave it out (`kfp_metrics_left_out` says which), and no gate is decided on it
(components.evaluation.blessing). A threshold outside the blessing metric's range is refused before TFMA
runs, and data the models cannot take stops with one line naming the column
(components.training.data_errors).
"""
import functools
import os

import apache_beam as beam
import tensorflow_model_analysis as tfma

from components import json_values
from components.data import layout
from components.data.example_files import TFExampleFiles
from components.errors import StageError
from components.evaluation import tfma_metrics
from components.evaluation.blessing import (
    DEFAULT_MIN_SLICE_EXAMPLES,
    DEFAULT_THRESHOLD,
    OVERALL,
    check_thresholds,
    decide,
    undefined_line,
    undefined_metrics,
    value_threshold,
)
from components.evaluation.tfma_batches import batched_extractors
from components.platform import beam_runner
from components.platform.beam_options import RECORD_BATCH_SIZE, file_sizes, stage_pipeline
from components.stage_logic.schema import load_schema
from components.stage_logic.statistics import TELEMETRY
from components.stage_logic.train import SERVING_SIGNATURE, TRANSFORM_SIGNATURE
from components.state.provenance import check_same_prediction
from components.state.storage import Storage
from components.training.autograph_rules import skip_autograph_for_libraries
from components.training.data_errors import describe_data_error
from components.training.user_module import CLASSIFICATION, load_user_module, transformed_name

CANDIDATE = "candidate"
BASELINE = "baseline"
POSITIVE_CLASS_ID = 1


def _lean_metric(class_name):
    return tfma.MetricConfig(class_name=class_name, module=tfma_metrics.__name__)


def _blessing_metric(problem_type):
    """(TFMA metric config, metric name) of the metric the blessing is decided on; higher is better."""
    if problem_type == CLASSIFICATION:
        return _lean_metric("SparseCategoricalAccuracy"), tfma_metrics.ACCURACY_NAME
    return _lean_metric("RSquared"), tfma_metrics.R_SQUARED_NAME


def prediction_key(model_dir, problem_type):
    """The serving signature's output to evaluate: `probabilities` (classification) or `predictions`
    (regression) when it has it, as build_model exports do, else its only output (a run_fn module's own
    signature, e.g. TFX's `outputs`)."""
    outputs = serving_outputs(model_dir)
    preferred = "probabilities" if problem_type == CLASSIFICATION else "predictions"
    return preferred if preferred in outputs or len(outputs) != 1 else next(iter(outputs))


def _serving_graph(model_dir):
    """The serving MetaGraphDef of a SavedModel, read from its file without loading the model."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    with tf.io.gfile.GFile(os.path.join(model_dir, tf.saved_model.SAVED_MODEL_FILENAME_PB), "rb") as source:
        saved_model = saved_model_pb2.SavedModel.FromString(source.read())
    serving = [graph for graph in saved_model.meta_graphs if tf.saved_model.SERVING in graph.meta_info_def.tags]
    return (serving or saved_model.meta_graphs)[0]


def serving_outputs(model_dir):
    """The names of the serving signature's outputs, read from the SavedModel's file without loading it."""
    return list(_serving_graph(model_dir).signature_def[SERVING_SIGNATURE].outputs)


def _constant(constants, input_name):
    """The value of the Const node {name: node} that feeds an op's input ("name:output:0"), or None."""
    import tensorflow as tf

    node = constants.get(input_name.split(":")[0])
    return tf.make_ndarray(node.attr["value"].tensor) if node is not None else None


def required_features(model_dir):
    """{raw feature: values per example} that a SavedModel's tf.Example parsing requires in every example: the
    dense keys without a default value (a feature with a shape in the schema it was trained with)."""
    graph = _serving_graph(model_dir).graph_def
    required = {}
    for nodes in [graph.node, *(function.node_def for function in graph.library.function)]:
        constants = {node.name: node for node in nodes if node.op == "Const"}
        for node in nodes:
            if node.op != "ParseExampleV2":
                continue
            # Inputs: serialized, names, sparse_keys, dense_keys, ragged_keys, then one default per dense key.
            keys = _constant(constants, node.input[3])
            shapes = node.attr["dense_shapes"].list.shape
            for index, key in enumerate(keys if keys is not None else []):
                default = _constant(constants, node.input[5 + index])
                if default is not None and default.size == 0:
                    count = 1
                    for dim in shapes[index].dim:
                        count *= max(dim.size, 1)
                    required[key.decode()] = count
    return required


def evaluation_config(label_key, problem_type, slice_columns, with_baseline, binary=False, prediction_keys=None):
    """The TFMA EvalConfig: metrics for the problem type, on the whole eval split and each slice.

    The blessing is decided from these metrics by `components.evaluation.blessing`, not by TFMA's thresholds, so
    that slices gate only when asked. The serving signature returns class probabilities for every kind
    of classifier (train normalises sigmoid and logit outputs), so one set of metrics fits them all. For
    a binary classifier, the confusion matrices at many thresholds (the ROC curve) are computed as well.
    """
    blessing_metric, _ = _blessing_metric(problem_type)
    metrics = [_lean_metric("LeanExampleCount"), blessing_metric]
    # The reports show the candidate's confusion matrix and ROC curve; the baseline's would cost as much.
    candidate_plots = []
    if problem_type == CLASSIFICATION:
        candidate_plots.append(_lean_metric("LeanMultiClassConfusionMatrixPlot"))
    else:
        metrics += [_lean_metric("LeanMeanSquaredError"), _lean_metric("LeanMeanAbsoluteError")]

    default_key = "probabilities" if problem_type == CLASSIFICATION else "predictions"
    prediction_keys = prediction_keys or {}

    def model_spec(name, is_baseline):
        # Every model is evaluated through its signatures, whatever built it; a Keras model evaluated as
        # `tf_keras` would be loaded twice more as a Keras model (once only to find out that it is one).
        return tfma.ModelSpec(
            name=name, is_baseline=is_baseline, model_type=tfma.TF_GENERIC, signature_name=SERVING_SIGNATURE,
            label_key=transformed_name(label_key),
            prediction_key=prediction_keys.get(name, default_key),
            preprocessing_function_names=[TRANSFORM_SIGNATURE])

    model_specs = [model_spec(CANDIDATE, False)]
    if with_baseline:
        model_specs.append(model_spec(BASELINE, True))
    metrics_specs = [tfma.MetricsSpec(metrics=metrics)]
    if candidate_plots:
        metrics_specs.append(tfma.MetricsSpec(metrics=candidate_plots, model_names=[CANDIDATE]))
    if binary:
        metrics_specs.append(tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="ConfusionMatrixPlot")], model_names=[CANDIDATE],
            binarize=tfma.BinarizationOptions(class_ids={"values": [POSITIVE_CLASS_ID]})))
    # Only the metrics above: where `tf.keras` is Keras 2, TFMA would load the model as a Keras model and
    # add its compiled loss and metrics ("default metrics"); where it is Keras 3 (the stages' default) it
    # cannot, so the two would differ.
    from google.protobuf import wrappers_pb2

    return tfma.EvalConfig(
        options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
        model_specs=model_specs,
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[c]) for c in slice_columns],
        metrics_specs=metrics_specs)


def _scalar_metrics(metrics_for_slice):
    """{model name: {metric name: value}} for the scalar metrics of one slice."""
    values = {}
    for item in metrics_for_slice.metric_keys_and_values:
        if item.key.HasField("sub_key") or item.key.is_diff or not item.value.HasField("double_value"):
            continue
        values.setdefault(item.key.model_name or CANDIDATE, {})[item.key.name] = item.value.double_value.value
    return values


def _slice_name(metrics_for_slice):
    return tfma.slicer.stringify_slice_key(tfma.slicer.deserialize_slice_key(metrics_for_slice.slice_key))


def evaluate_model(model_dir, examples_dir, schema_dir, module, output_dir, baseline_dir=None,
                   slice_columns=None, threshold=DEFAULT_THRESHOLD, tolerance=0.0, beam_args="",
                   baseline_version=0, slice_threshold=0.0, min_slice_examples=DEFAULT_MIN_SLICE_EXAMPLES,
                   class_count=0, output_kind="", beam_dirs=None, storage=None):
    """Runs TFMA on the eval split; returns the blessing, its reasons, and overall and per-slice metrics.

    `class_count` is the number of classes the model's probabilities have (train's metadata; 0: unknown);
    `output_kind` what its serving output is (train's metadata: a run_fn model may serve logits, which
    get no ROC curve). `beam_dirs` gives the bucket URIs Beam's workers use instead of the local
    folders (`model`, `baseline`, `examples`, `output`) when they run elsewhere; the output is then
    copied into `output_dir`, which everything after the Beam run reads.
    """
    storage = storage or Storage()
    beam_dirs = beam_dirs or {}
    user_module = load_user_module(module, storage)
    skip_autograph_for_libraries()
    check_thresholds(user_module.PROBLEM_TYPE, threshold, slice_threshold, f"--module {module!r}", tolerance)
    if slice_columns is None:
        slice_columns = list(getattr(user_module, "SLICE_COLUMNS", []))
    baseline_name = f"serving model version {baseline_version}" if baseline_version else "the baseline model"
    readable_only, note = {}, ""
    if baseline_dir:
        check_same_prediction(baseline_dir, baseline_version, user_module.LABEL_KEY, user_module.PROBLEM_TYPE,
                              module)
        readable_only, lacking = _baseline_requirements(baseline_dir, load_schema(schema_dir))
        if lacking:
            note = (f"Not compared with {baseline_name}: it requires {', '.join(lacking)} in every example (a dense "
                    "feature of the schema it was trained with), which this span's schema has no column for; the "
                    "candidate is judged without it.")
            readable_only = {}
    # Whether the candidate is compared with the serving model; `baseline_version` stays what push checks.
    with_baseline = bool(baseline_dir) and not note
    names = class_names(model_dir, user_module.LABEL_KEY)
    binary = (user_module.PROBLEM_TYPE == CLASSIFICATION and (class_count or len(names or ())) == 2
              and output_kind not in ("logits", "logit"))
    prediction_keys = {CANDIDATE: prediction_key(model_dir, user_module.PROBLEM_TYPE)}
    if with_baseline:
        prediction_keys[BASELINE] = prediction_key(baseline_dir, user_module.PROBLEM_TYPE)
    eval_config = evaluation_config(user_module.LABEL_KEY, user_module.PROBLEM_TYPE, slice_columns,
                                    with_baseline, binary, prediction_keys)
    model_dirs = {CANDIDATE: beam_dirs.get("model", model_dir),
                  **({BASELINE: beam_dirs.get("baseline", baseline_dir)} if with_baseline else {})}
    try:
        counts = run_tfma(eval_config, model_dirs, beam_dirs.get("examples", examples_dir), schema_dir,
                          beam_dirs.get("output", output_dir), beam_args, readable_only=readable_only)
    except Exception as error:  # data the models cannot take is one line naming the column; the rest is raised
        described = describe_data_error(error, "Evaluating the eval split with the candidate" + (
            f" and {baseline_name}" if with_baseline else ""), user_module.LABEL_KEY)
        if described:
            raise StageError(described) from error
        raise
    beam_runner.mirror(beam_dirs.get("output", output_dir), output_dir, storage)

    slices, undefined = undefined_metrics({_slice_name(m): _scalar_metrics(m) for m in tfma.load_metrics(output_dir)})
    if binary and (reason := roc_undefined(output_dir)):
        undefined.append({"slice": OVERALL, "model": CANDIDATE, "metric": "ROC curve", "reason": reason})
    _, metric_name = _blessing_metric(user_module.PROBLEM_TYPE)
    threshold = value_threshold(threshold, user_module.PROBLEM_TYPE)
    blessed, reasons, rows = decide(slices, metric_name, threshold, tolerance, baseline_name, slice_threshold,
                                    min_slice_examples)
    if readable_only:
        kept, total = counts["readable"], counts["readable"] + counts["unreadable"]
        note = (f"Both models were measured on the {kept} of {total} eval examples that {baseline_name} can read: it "
                f"requires {', '.join(sorted(readable_only))} in every example (a dense feature of the schema it was "
                "trained with), which this span's schema lets be empty.")
    reasons = ([note] if note else []) + reasons
    overall = dict(slices.get(OVERALL, {}))
    if with_baseline:
        overall["diff"] = {name: None if value is None or overall[BASELINE][name] is None
                           else value - overall[BASELINE][name]
                           for name, value in overall.get(CANDIDATE, {}).items() if name in overall.get(BASELINE, {})}
    return json_values.finite({
        "blessed": bool(blessed),
        "reasons": reasons,
        "metric": metric_name,
        "threshold": threshold,
        "tolerance": tolerance,
        "slice_threshold": slice_threshold,
        "min_slice_examples": min_slice_examples,
        "classes": names or [],
        "baseline": baseline_dir if with_baseline else "",
        "baseline_version": baseline_version if baseline_dir else 0,
        "overall": overall,
        "slices": rows,
        "undefined": undefined,
        # KFP's metrics take numbers only: the candidate's overall metrics that are undefined are left out.
        "kfp_metrics_left_out": sorted(name for name, value in overall.get(CANDIDATE, {}).items() if value is None),
    })


def kfp_metrics(decision):
    """{name: value} of the candidate's overall metrics that KFP's Metrics artifact can take (defined ones)."""
    return {name: value for name, value in decision["overall"].get(CANDIDATE, {}).items()
            if json_values.is_finite_number(value)}


def _baseline_requirements(baseline_dir, schema):
    """({feature: values per example}, [features]): what the serving model `baseline_dir` requires in every
    example that this span's schema lets be empty, and what it requires that the schema has no column for."""
    dense_now = {feature.name for feature in schema.feature if feature.HasField("shape")}
    columns = {feature.name for feature in schema.feature}
    required = {name: count for name, count in required_features(baseline_dir).items() if name not in dense_now}
    return ({name: count for name, count in required.items() if name in columns},
            sorted(name for name in required if name not in columns))


class _KeepReadable(beam.DoFn):
    """Keeps the examples of a record batch that have each of `required` ({column: values per example}), and
    counts the examples kept and left out."""

    def __init__(self, required):
        self._required = required
        self._readable = beam.metrics.Metrics.counter("evaluate", "readable")
        self._unreadable = beam.metrics.Metrics.counter("evaluate", "unreadable")

    def process(self, record_batch):
        import pyarrow as pa
        import pyarrow.compute as compute

        keep = pa.array([True] * record_batch.num_rows)
        for name, count in self._required.items():
            index = record_batch.schema.get_field_index(name)
            if index < 0:
                keep = pa.array([False] * record_batch.num_rows)
                break
            lengths = compute.list_value_length(record_batch.column(index))
            keep = compute.and_(keep, compute.fill_null(compute.equal(lengths, count), False))
        kept = record_batch.filter(keep)
        self._readable.inc(kept.num_rows)
        self._unreadable.inc(record_batch.num_rows - kept.num_rows)
        if kept.num_rows:
            yield kept


def run_tfma(eval_config, model_dirs, examples_dir, schema_dir, output_dir, beam_args="", grouped=True,
             readable_only=None):
    """Runs TFMA on the eval split with the models {name: serving model folder}, writing its results to
    `output_dir`; returns {"readable": examples measured, "unreadable": examples left out}.

    `grouped`: each batch's examples reach the metrics in groups that share their slices
    (`components.evaluation.tfma_batches`), which the metrics of `components.evaluation.tfma_metrics` take;
    without it, one at a time, as TFMA's default extraction sends them (its own metrics need that).
    `readable_only` ({column: values per example}): only the examples that have each of these are measured.
    """
    models = [tfma.default_eval_shared_model(path, eval_config=eval_config, model_name=name)
              for name, path in model_dirs.items()]
    shared_models = models if len(models) > 1 else models[0]
    schema = load_schema(schema_dir)
    source = TFExampleFiles(
        file_pattern=layout.examples_pattern(examples_dir, layout.EVAL), schema=schema,
        raw_record_column_name=tfma.ARROW_INPUT_COLUMN, telemetry_descriptors=TELEMETRY)
    extractors = (batched_extractors(shared_models, eval_config, source.TensorAdapterConfig()) if grouped
                  else None)
    sizes = functools.partial(file_sizes, [layout.examples_pattern(examples_dir, layout.EVAL)])
    with stage_pipeline(beam_args, "evaluate", sizes) as pipeline:
        examples = pipeline | "ReadEval" >> source.BeamSource(RECORD_BATCH_SIZE)
        if readable_only:
            examples = examples | "KeepReadable" >> beam.ParDo(_KeepReadable(readable_only))
        _ = (examples
             | "Evaluate" >> tfma.ExtractEvaluateAndWriteResults(
                 eval_shared_model=shared_models, eval_config=eval_config, extractors=extractors,
                 output_path=output_dir, tensor_adapter_config=source.TensorAdapterConfig(), schema=schema))
    if not readable_only:
        return {}
    counters = pipeline.result.metrics().query(beam.metrics.MetricsFilter().with_namespace("evaluate"))["counters"]
    return {name: sum(counter.committed for counter in counters if counter.key.metric.name == name)
            for name in ("readable", "unreadable")}


def class_names(model_dir, label_key):
    """The label's vocabulary, as saved with the serving model's transform graph, or None."""
    path = os.path.join(model_dir, "assets", label_key)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as source:
        return [line.rstrip("\n") for line in source]


def _overall_candidate_plots(output_dir):
    """The candidate's plot values on the whole eval split (not a slice of it)."""
    for plots in tfma.load_plots(output_dir):
        if plots.slice_key.single_slice_keys:
            continue
        for item in plots.plot_keys_and_values:
            if item.key.model_name in ("", CANDIDATE):
                yield item.value


def confusion_matrix(output_dir, names=None):
    """(categories, matrix[actual][predicted]) of the candidate on the whole eval split, or None."""
    for plot in _overall_candidate_plots(output_dir):
        matrices = plot.multi_class_confusion_matrix_at_thresholds.matrices
        if not matrices:
            continue
        entries = matrices[0].entries
        size = max([max(e.actual_class_id, e.predicted_class_id) for e in entries] + [len(names or []) - 1]) + 1
        matrix = [[0] * size for _ in range(size)]
        for entry in entries:
            if entry.actual_class_id >= 0 and entry.predicted_class_id >= 0:
                matrix[entry.actual_class_id][entry.predicted_class_id] = int(entry.num_weighted_examples)
        categories = names[:size] if names and len(names) >= size else [str(i) for i in range(size)]
        return categories, matrix
    return None


def _roc_matrices(output_dir):
    for plot in _overall_candidate_plots(output_dir):
        matrices = plot.confusion_matrix_at_thresholds.matrices
        if matrices:
            return matrices
    return None


def roc_undefined(output_dir):
    """Why a binary candidate's ROC curve is undefined on the whole eval split ("" when it is defined, or
    there is none): it needs examples of both classes."""
    matrices = _roc_matrices(output_dir)
    if not matrices:
        return ""
    first = matrices[0]
    if not first.true_positives + first.false_negatives:
        return "the eval split has no example of the positive class"
    if not first.false_positives + first.true_negatives:
        return "the eval split has no example of the negative class"
    return ""


def roc_curve(output_dir):
    """(false positive rates, true positive rates, thresholds) of a binary candidate, or None (also where
    the curve is undefined: see `roc_undefined`)."""
    matrices = _roc_matrices(output_dir)
    if not matrices or roc_undefined(output_dir):
        return None
    points = sorted((m.false_positive_rate, m.recall, m.threshold) for m in matrices
                    if all(json_values.is_finite_number(v) for v in (m.false_positive_rate, m.recall, m.threshold)))
    return tuple(list(values) for values in zip(*points)) if points else None


def decisive_slices(slices):
    """The slices that decided the blessing: any slice that failed its gate, else the whole eval split."""
    failed = [name for name, row in slices.items() if name != OVERALL and row["gate"].startswith("FAILS")]
    return failed or [name for name, row in slices.items() if row["gate"] == "decides"]


def confusion_matrix_html(categories, matrix):
    """The confusion matrix as a table: a row per actual class, a column per predicted one."""
    from components import reports

    return ("<p class=\"muted\">rows: actual class, columns: predicted class</p>" + reports.html_table(
        ["actual \\ predicted", *categories], [(category, *row) for category, row in zip(categories, matrix)],
        numeric=tuple(range(1, len(categories) + 1))))


def _undefined_on(decision, slice_name, model):
    """{metric: why} of the metrics of `model` that are undefined on the slice `slice_name`."""
    return {item["metric"]: item["reason"] for item in decision.get("undefined", [])
            if item["slice"] == slice_name and item["model"] == model}


def _value(value, undefined_reason=None):
    """A metric for a report: the number, "undefined" where it is (the reason is listed apart), else "-"."""
    from components import reports

    return "undefined" if value is None and undefined_reason else reports.number(value)


def undefined_section_items(decision):
    """The lines that say which metrics are undefined and why, and what KFP's metrics left out."""
    lines = [undefined_line(item) + (": not gated" if item["metric"] == decision.get("metric")
                                     and item["slice"] != OVERALL and item["model"] == CANDIDATE else "")
             for item in decision.get("undefined", [])]
    if decision.get("kfp_metrics_left_out"):
        lines.append("left out of the KFP metrics (they take numbers only): "
                     + ", ".join(decision["kfp_metrics_left_out"]))
    return lines


def evaluation_html(decision, roc=None, confusion=None):
    """An HTML page: the verdict and its reasons; overall metrics (candidate, baseline, difference); per
    slice the examples, candidate, baseline and difference, the deciding slice marked; the confusion
    matrix `(categories, matrix)` and the ROC curve when given; the metrics that are undefined, and why."""
    from components import reports

    overall = decision["overall"]
    models = [model for model in (CANDIDATE, BASELINE, "diff") if model in overall]
    metrics = sorted({name for model in models for name in overall[model]})
    undefined = {model: _undefined_on(decision, OVERALL, model) for model in (CANDIDATE, BASELINE)}
    undefined["diff"] = {**undefined[BASELINE], **undefined[CANDIDATE]}
    overall_table = reports.html_table(
        ["metric", *("difference" if m == "diff" else m for m in models)],
        [(name, *(_value(overall[m].get(name), undefined[m].get(name)) for m in models)) for name in metrics],
        numeric=tuple(range(1, len(models) + 1)))
    slices = sorted(decision["slices"].items(), key=lambda item: (item[0] != OVERALL, item[0]))
    decisive = set(decisive_slices(decision["slices"]))
    baseline = (f"baseline (serving version {decision['baseline_version']})" if decision.get("baseline_version")
                else "baseline")

    def row_undefined(row, model):
        return row.get("undefined", {}).get(model)

    slice_table = reports.html_table(
        ["slice", "examples", "candidate", baseline, "difference", "gate"],
        [(reports.Raw(f"{reports.escape(name)} <span class=\"decided\">◀ decided the blessing</span>")
          if name in decisive else name,
          row["examples"], _value(row["candidate"], row_undefined(row, CANDIDATE)),
          _value(row["baseline"], row_undefined(row, BASELINE)),
          _value(row["difference"], BASELINE in overall and (row_undefined(row, CANDIDATE)
                                                              or row_undefined(row, BASELINE))),
          row["gate"] or "not gated") for name, row in slices],
        numeric=(1, 2, 3, 4), row_classes=["decisive" if name in decisive else "" for name, _ in slices])
    verdict = ("<p class=\"ok\">BLESSED</p>" if decision["blessed"] else "<p class=\"bad\">NOT BLESSED</p>")
    reasons = "".join(f"<li>{reports.escape(reason)}</li>" for reason in decision["reasons"])
    no_baseline = ("" if BASELINE in overall else
                   "<p class=\"muted\">No model was serving: no baseline to compare with.</p>")
    sections = [verdict, f"<ul>{reasons}</ul>", "<h2>Overall</h2>", overall_table,
                f"<h2>Slices: {reports.escape(decision['metric'])}</h2>", no_baseline, slice_table]
    undefined_items = undefined_section_items(decision)
    if undefined_items:
        sections += ["<h2>Undefined metrics</h2>", "<ul class=\"undefined\">" + "".join(
            f"<li>{reports.escape(line)}</li>" for line in undefined_items) + "</ul>"]
    if confusion:
        sections += ["<h2>Confusion matrix (whole eval split)</h2>", confusion_matrix_html(*confusion)]
    if roc:
        sections += ["<h2>ROC curve</h2>", reports.svg_roc_curve(roc[0], roc[1])]
    return reports.html_page("Evaluation", *sections)


def blessing_markdown(decision):
    from components.reports import markdown_table

    metric = decision["metric"]
    overall = decision["overall"]
    rows = [("candidate", _value(overall.get(CANDIDATE, {}).get(metric),
                                 _undefined_on(decision, OVERALL, CANDIDATE).get(metric)))]
    if BASELINE in overall:
        rows.append((f"serving model ({decision['baseline']})",
                     _value(overall[BASELINE].get(metric), _undefined_on(decision, OVERALL, BASELINE).get(metric))))
    lines = ["# Blessing", "", f"**{'BLESSED' if decision['blessed'] else 'NOT BLESSED'}**", "",
             *[f"- {reason}" for reason in decision["reasons"]], "",
             markdown_table(["model", metric], rows), ""]
    undefined_items = undefined_section_items(decision)
    if undefined_items:
        lines += ["## Undefined metrics", "", *[f"- {line}" for line in undefined_items], ""]
    return "\n".join(lines)
