"""TFMA metrics for the blessing and the reports: R², which the library lacks, and the counts,
accuracy, errors and confusion matrix the evaluation needs, computed a whole group of examples at a time.

R² = 1 - (sum of squared errors) / (sum of squared deviations of the label from its mean), over the
examples of a slice: 1 is a perfect model, 0 is no better than always predicting the mean label, and
below 0 is worse than that. Unlike the mean squared error it does not depend on the label's units, so
one default threshold can mean the same for every data set.

The others give what their TFMA (or Keras) namesakes give: `LeanExampleCount` (`example_count`),
`SparseCategoricalAccuracy` (Keras' metric: the share of examples whose most probable class is the
label), `LeanMeanSquaredError`, `LeanMeanAbsoluteError` and `LeanMultiClassConfusionMatrixPlot` (the
confusion matrix at threshold 0). Each extract they are given may hold one example or many
(`components.evaluation.tfma_batches` groups a batch's examples by slice); TFMA's own metrics expect one example per
extract, and their per-example Python was most of an evaluation's time.

TFMA loads these by class name and module (`tfma.MetricConfig(class_name="RSquared",
module=__name__)`), in each Beam worker; none is registered with TFMA at import. (TFMA looks a registered
class name up before the module: registering SparseCategoricalAccuracy would replace Keras' metric of that
name for every evaluation, hence the Lean names of the others.) They are computed per slice and per model like any TFMA
metric, with example weights when the evaluation is weighted.
"""
import apache_beam as beam
import numpy as np
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types, metric_util, multi_class_confusion_matrix_metrics

R_SQUARED_NAME = "r_squared"
ACCURACY_NAME = "sparse_categorical_accuracy"
CONFUSION_MATRIX_PLOT_NAME = "multi_class_confusion_matrix_plot"
EXAMPLE_COUNT_NAME = "example_count"
MEAN_SQUARED_ERROR_NAME = "mean_squared_error"
MEAN_ABSOLUTE_ERROR_NAME = "mean_absolute_error"


def _keyed(value, key):
    """value[key] where TFMA keyed the value (by model name, output name or label key), else value.

    TFMA's extracts are dicts; a dict check costs a tenth of an abstract `Mapping` check."""
    if key and isinstance(value, dict) and key in value:
        return value[key]
    return value


class _Inputs:
    """The labels, predictions and example weights of one extract for one model, as TFMA's own
    `metric_util.to_label_prediction_example_weight` finds them for a single-output model.

    An extract holds one example (TFMA's default extraction) or a group of them (`components.evaluation.tfma_batches`):
    the labels and weights come back with a row per example, the predictions with a row per example and
    a column per output value (class probabilities, or a regression's one value)."""

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
        labels = np.reshape(label, (-1,))
        predictions = np.reshape(prediction, (labels.size, -1))
        if not self._example_weighted or weight is None:
            return labels, predictions, np.ones(labels.size)
        weights = np.reshape(weight, (-1,)).astype(float)
        if weights.size != labels.size:
            raise ValueError(f"{weights.size} example weights for {labels.size} labels (model {self._model_name!r})")
        return labels, predictions, weights


class LeanMultiClassConfusionMatrixPlot(metric_types.Metric):
    """TFMA's multi-class confusion matrix plot at threshold 0 (`MultiClassConfusionMatrixPlot`'s counts,
    in its `Matrices` form), counted a whole group of examples at a time."""

    def __init__(self, name=CONFUSION_MATRIX_PLOT_NAME):
        super().__init__(metric_util.merge_per_key_computations(_confusion_matrix_plot_computations), name=name)


def _confusion_matrix_plot_computations(name=CONFUSION_MATRIX_PLOT_NAME, eval_config=None, model_name="",
                                        output_name="", example_weighted=False):
    key = metric_types.PlotKey(name=name, model_name=model_name, output_name=output_name,
                               example_weighted=example_weighted)
    matrices_key = metric_types.MetricKey(name="_" + name + "_matrices", model_name=model_name,
                                          output_name=output_name, example_weighted=example_weighted)
    matrices = metric_types.MetricComputation(keys=[matrices_key], preprocessors=None, combiner=_ConfusionCombiner(
        _Inputs(eval_config, model_name, output_name, example_weighted), matrices_key))

    def plot(metrics):
        return {key: metrics[matrices_key].to_proto().multi_class_confusion_matrix_at_thresholds}

    return [matrices, metric_types.DerivedMetricComputation(keys=[key], result=plot)]


class _ConfusionCombiner(beam.CombineFn):
    """Weight per (actual class, predicted class) at threshold 0: the predicted class is the most probable
    one, or none when its probability is not above 0 (as TFMA counts)."""

    def __init__(self, inputs, key):
        self._inputs = inputs
        self._key = key

    def create_accumulator(self):
        return {}

    def add_input(self, counts, element):
        labels, predictions, weights = self._inputs(element)
        if predictions.shape[1] < 2:
            raise ValueError(f"a confusion matrix needs a probability per class; the predictions have "
                             f"{predictions.shape[1]} value(s) per example")
        predicted = np.argmax(predictions, axis=1)
        predicted[predictions[np.arange(len(predicted)), predicted] <= 0.0] = \
            multi_class_confusion_matrix_metrics.NO_PREDICTED_CLASS_ID
        pairs, inverse = np.unique(np.stack([labels.astype(np.int64), predicted]), axis=1, return_inverse=True)
        sums = np.bincount(np.ravel(inverse), weights=weights, minlength=pairs.shape[1])
        for (actual, guess), weight in zip(pairs.T.tolist(), sums.tolist()):
            counts[(actual, guess)] = counts.get((actual, guess), 0.0) + weight
        return counts

    def merge_accumulators(self, accumulators):
        merged = {}
        for counts in accumulators:
            for pair, weight in counts.items():
                merged[pair] = merged.get(pair, 0.0) + weight
        return merged

    def extract_output(self, counts):
        matrices = multi_class_confusion_matrix_metrics.Matrices()
        matrices[0.0] = {multi_class_confusion_matrix_metrics.MatrixEntryKey(actual, guess): weight
                         for (actual, guess), weight in counts.items()}
        return {self._key: matrices}


def _scalar_computations(combiner_class, default_name):
    """TFMA's per-model computations of a scalar metric whose combiner takes (`_Inputs`, key)."""
    def computations(name=default_name, eval_config=None, model_name="", output_name="", sub_key=None,
                     aggregation_type=None, class_weights=None, example_weighted=False):
        key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name, sub_key=sub_key,
                                     example_weighted=example_weighted)
        return [metric_types.MetricComputation(keys=[key], preprocessors=None, combiner=combiner_class(
            _Inputs(eval_config, model_name, output_name, example_weighted), key))]
    return metric_util.merge_per_key_computations(computations)


class _SumsCombiner(beam.CombineFn):
    """Named sums over the examples of a slice; `_sums` gives an extract's, `_value` the metric."""
    _names = ()

    def __init__(self, inputs, key):
        self._inputs = inputs
        self._key = key

    def create_accumulator(self):
        return dict.fromkeys(self._names, 0.0)

    def add_input(self, sums, element):
        for name, value in self._sums(*self._inputs(element)).items():
            sums[name] += float(value)
        return sums

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for sums in accumulators:
            for name in self._names:
                merged[name] += sums[name]
        return merged

    def extract_output(self, sums):
        return {self._key: self._value(sums) if sums["weight"] else float("nan")}


class LeanExampleCount(metric_types.Metric):
    """TFMA's `example_count` (the weight of a slice's examples; their number when unweighted), counted a
    group of examples at a time: TFMA's own `ExampleCount` counts each extract as one example."""

    def __init__(self, name=EXAMPLE_COUNT_NAME):
        super().__init__(_scalar_computations(_ExampleCountCombiner, EXAMPLE_COUNT_NAME), name=name)


class _ExampleCountCombiner(_SumsCombiner):
    _names = ("weight",)

    def _sums(self, labels, predictions, weights):
        return {"weight": weights.sum()}

    def extract_output(self, sums):
        return {self._key: sums["weight"]}


class SparseCategoricalAccuracy(metric_types.Metric):
    """The share of examples whose most probable class (argmax of the prediction) is the label."""

    def __init__(self, name=ACCURACY_NAME):
        super().__init__(_scalar_computations(_AccuracyCombiner, ACCURACY_NAME), name=name)


class _AccuracyCombiner(_SumsCombiner):
    _names = ("correct", "weight")

    def _sums(self, labels, predictions, weights):
        correct = np.argmax(predictions, axis=1) == labels.astype(np.int64)
        return {"correct": weights[correct].sum(), "weight": weights.sum()}

    def _value(self, sums):
        return sums["correct"] / sums["weight"]


def _regression_sums(labels, predictions, weights):
    labels, errors = labels.astype(float), predictions[:, 0] - labels
    return {"weight": weights.sum(), "label": weights @ labels, "label_squared": weights @ (labels * labels),
            "squared_error": weights @ (errors * errors), "absolute_error": weights @ np.abs(errors)}


class _RegressionCombiner(_SumsCombiner):
    _names = ("weight", "label", "label_squared", "squared_error", "absolute_error")
    _sums = staticmethod(_regression_sums)


class LeanMeanSquaredError(metric_types.Metric):
    """TFMA's `mean_squared_error`, a group of examples at a time."""

    def __init__(self, name=MEAN_SQUARED_ERROR_NAME):
        super().__init__(_scalar_computations(_MeanSquaredErrorCombiner, MEAN_SQUARED_ERROR_NAME), name=name)


class _MeanSquaredErrorCombiner(_RegressionCombiner):
    def _value(self, sums):
        return sums["squared_error"] / sums["weight"]


class LeanMeanAbsoluteError(metric_types.Metric):
    """TFMA's `mean_absolute_error`, a group of examples at a time."""

    def __init__(self, name=MEAN_ABSOLUTE_ERROR_NAME):
        super().__init__(_scalar_computations(_MeanAbsoluteErrorCombiner, MEAN_ABSOLUTE_ERROR_NAME), name=name)


class _MeanAbsoluteErrorCombiner(_RegressionCombiner):
    def _value(self, sums):
        return sums["absolute_error"] / sums["weight"]


class RSquared(metric_types.Metric):
    """R² of a regression model's predictions against the label; NaN (undefined) where the label does not
    vary over the slice (a constant label, or one example), or there are no examples."""

    def __init__(self, name=R_SQUARED_NAME):
        super().__init__(_scalar_computations(_RSquaredCombiner, R_SQUARED_NAME), name=name)


# A label whose standard deviation is below this share of its mean's magnitude is constant: what float
# arithmetic leaves of a constant label's variance is far below it, a real label's spread far above.
CONSTANT_LABEL_SPREAD = 1e-9


class _RSquaredCombiner(beam.CombineFn):
    """The label's weighted mean and sum of squared deviations (merged as Chan et al.'s parallel variance,
    which does not cancel catastrophically as sum(x²) - sum(x)²/n does), and the sum of squared errors."""

    def __init__(self, inputs, key):
        self._inputs = inputs
        self._key = key

    def create_accumulator(self):
        return (0.0, 0.0, 0.0, 0.0)  # weight, label mean, squared deviations from it, squared errors

    @staticmethod
    def _merge(first, second):
        weight_a, mean_a, deviations_a, errors_a = first
        weight_b, mean_b, deviations_b, errors_b = second
        weight = weight_a + weight_b
        if not weight_b:
            return first[:3] + (errors_a + errors_b,)
        if not weight_a:
            return second[:3] + (errors_a + errors_b,)
        delta = mean_b - mean_a
        return (weight, mean_a + delta * weight_b / weight,
                deviations_a + deviations_b + delta * delta * weight_a * weight_b / weight, errors_a + errors_b)

    def add_input(self, accumulator, element):
        labels, predictions, weights = self._inputs(element)
        labels = labels.astype(float)
        weight = float(weights.sum())
        if not weight:
            return accumulator
        mean = float(weights @ labels) / weight
        deviations = labels - mean
        errors = predictions[:, 0] - labels
        return self._merge(accumulator, (weight, mean, float(weights @ (deviations * deviations)),
                                         float(weights @ (errors * errors))))

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for accumulator in accumulators:
            merged = self._merge(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        weight, mean, deviations, errors = accumulator
        constant = deviations <= weight * (CONSTANT_LABEL_SPREAD * mean) ** 2
        return {self._key: float("nan") if not weight or constant else 1.0 - errors / deviations}
