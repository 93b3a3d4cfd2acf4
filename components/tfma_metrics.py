"""TFMA metrics for the blessing and the reports: R², which the library lacks; faster accuracy and
confusion matrix.

R² = 1 - (sum of squared errors) / (sum of squared deviations of the label from its mean), over the
examples of a slice: 1 is a perfect model, 0 is no better than always predicting the mean label, and
below 0 is worse than that. Unlike the mean squared error it does not depend on the label's units, so
one default threshold can mean the same for every data set.

`SparseCategoricalAccuracy` here is Keras' metric of that name (the share of examples whose most
probable class is the label), computed natively, and `LeanMultiClassConfusionMatrixPlot` is TFMA's
`MultiClassConfusionMatrixPlot` with a leaner lookup of each example's label and prediction: TFMA's wrapper of the Keras metric
and its generic per-example accessor cost about 150 µs per example, slice and model, most of an
evaluation's time.

TFMA loads these by class name and module (`tfma.MetricConfig(class_name="RSquared",
module=__name__)`), in each Beam worker. They are computed per slice and per model like any TFMA
metric, with example weights when the evaluation is weighted.
"""
import dataclasses

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types, metric_util, multi_class_confusion_matrix_metrics

R_SQUARED_NAME = "r_squared"
ACCURACY_NAME = "sparse_categorical_accuracy"
CONFUSION_MATRIX_PLOT_NAME = "multi_class_confusion_matrix_plot"


def _keyed(value, key):
    """value[key] where TFMA keyed the value (by model name, output name or label key), else value.

    TFMA's extracts are dicts; a dict check costs a tenth of an abstract `Mapping` check."""
    if key and isinstance(value, dict) and key in value:
        return value[key]
    return value


class _Inputs:
    """The label, prediction and example weight of one example for one model, as TFMA's own
    `metric_util.to_label_prediction_example_weight` finds them for a single-output model."""

    def __init__(self, eval_config, model_name, output_name, example_weighted):
        self._model_name, self._output_name = model_name, output_name
        self._example_weighted = example_weighted
        self._label_key = self._prediction_key = ""
        specs = eval_config.model_specs if eval_config else []
        for spec in specs:
            if (spec.name if len(specs) > 1 else "") == model_name:
                self._label_key, self._prediction_key = spec.label_key, spec.prediction_key
                break

    def __call__(self, element):
        # The extracts behind `element.label` and the like, without their accessors' cost per call.
        label = _keyed(element.get(constants.LABELS_KEY), self._label_key)
        prediction = element.get(constants.PREDICTIONS_KEY)
        weight = element.get(constants.EXAMPLE_WEIGHTS_KEY)
        for key in (self._model_name, self._output_name):
            if key:
                prediction = prediction[key]
                label, weight = _keyed(label, key), _keyed(weight, key)
        prediction = _keyed(prediction, self._prediction_key)
        if label is None or prediction is None:
            raise ValueError(f"no label or prediction for model {self._model_name!r}: check the label and "
                             "prediction keys")
        if not self._example_weighted or weight is None:
            weight = 1.0
        return np.ravel(label), np.ravel(prediction), float(np.ravel(weight)[0])


def _label_prediction_weight(element, eval_config=None, model_name="", output_name="", example_weighted=False,
                             **_):
    """`_Inputs` in the form of TFMA's extractor argument (a generator of one triple)."""
    yield _Inputs(eval_config, model_name, output_name, example_weighted)(element)


class LeanMultiClassConfusionMatrixPlot(metric_types.Metric):
    """TFMA's multi-class confusion matrix plot at threshold 0, with the label and prediction found as
    `_Inputs` finds them: the same counts at a fraction of the cost."""

    def __init__(self, name=CONFUSION_MATRIX_PLOT_NAME):
        super().__init__(metric_util.merge_per_key_computations(_confusion_matrix_plot_computations), name=name)


def _confusion_matrix_plot_computations(name=CONFUSION_MATRIX_PLOT_NAME, eval_config=None, model_name="",
                                        output_name="", example_weighted=False):
    key = metric_types.PlotKey(name=name, model_name=model_name, output_name=output_name,
                               example_weighted=example_weighted)
    matrices = multi_class_confusion_matrix_metrics.multi_class_confusion_matrices(
        thresholds=[0.0], extract_label_prediction_and_weight=_label_prediction_weight, eval_config=eval_config,
        model_name=model_name, output_name=output_name, example_weighted=example_weighted)
    matrices_key = matrices[-1].keys[-1]

    def plot(metrics):
        return {key: metrics[matrices_key].to_proto().multi_class_confusion_matrix_at_thresholds}

    return [*matrices, metric_types.DerivedMetricComputation(keys=[key], result=plot)]


def _scalar_computations(combiner_class, default_name):
    """TFMA's per-model computations of a scalar metric whose combiner takes (`_Inputs`, key)."""
    def computations(name=default_name, eval_config=None, model_name="", output_name="", sub_key=None,
                     aggregation_type=None, class_weights=None, example_weighted=False):
        key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name, sub_key=sub_key,
                                     example_weighted=example_weighted)
        return [metric_types.MetricComputation(keys=[key], preprocessors=None, combiner=combiner_class(
            _Inputs(eval_config, model_name, output_name, example_weighted), key))]
    return metric_util.merge_per_key_computations(computations)


class SparseCategoricalAccuracy(metric_types.Metric):
    """The share of examples whose most probable class (argmax of the prediction) is the label."""

    def __init__(self, name=ACCURACY_NAME):
        super().__init__(_scalar_computations(_AccuracyCombiner, ACCURACY_NAME), name=name)


class _AccuracyCombiner(beam.CombineFn):
    def __init__(self, inputs, key):
        self._inputs = inputs
        self._key = key

    def create_accumulator(self):
        return [0.0, 0.0]  # weight of correct examples, weight of all examples

    def add_input(self, accumulator, element):
        label, prediction, weight = self._inputs(element)
        accumulator[0] += weight * (int(np.argmax(prediction)) == int(label[0]))
        accumulator[1] += weight
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = [0.0, 0.0]
        for correct, total in accumulators:
            merged[0] += correct
            merged[1] += total
        return merged

    def extract_output(self, accumulator):
        correct, total = accumulator
        return {self._key: correct / total if total else float("nan")}


class RSquared(metric_types.Metric):
    """R² of a regression model's predictions against the label."""

    def __init__(self, name=R_SQUARED_NAME):
        super().__init__(_scalar_computations(_RSquaredCombiner, R_SQUARED_NAME), name=name)


@dataclasses.dataclass
class _Sums:
    weight: float = 0.0
    label: float = 0.0
    label_squared: float = 0.0
    squared_error: float = 0.0


class _RSquaredCombiner(beam.CombineFn):
    def __init__(self, inputs, key):
        self._inputs = inputs
        self._key = key

    def create_accumulator(self):
        return _Sums()

    def add_input(self, sums, element):
        label, prediction, weight = self._inputs(element)
        label, prediction = float(label[0]), float(prediction[0])
        sums.weight += weight
        sums.label += weight * label
        sums.label_squared += weight * label * label
        sums.squared_error += weight * (label - prediction) ** 2
        return sums

    def merge_accumulators(self, accumulators):
        merged = _Sums()
        for sums in accumulators:
            merged.weight += sums.weight
            merged.label += sums.label
            merged.label_squared += sums.label_squared
            merged.squared_error += sums.squared_error
        return merged

    def extract_output(self, sums):
        if not sums.weight:
            return {self._key: float("nan")}
        total = sums.label_squared - sums.label * sums.label / sums.weight
        return {self._key: 1.0 - sums.squared_error / total if total > 0 else float("nan")}


metric_types.register_metric(RSquared)
# SparseCategoricalAccuracy shares its name with Keras' metric: registering it would replace that one for
# every evaluation, so it is found by module only. (TFMA looks a registered class name up before the
# module, hence LeanMultiClassConfusionMatrixPlot's own name.)
