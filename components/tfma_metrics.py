"""A TFMA metric the library lacks: R², the coefficient of determination, for the regression blessing.

R² = 1 - (sum of squared errors) / (sum of squared deviations of the label from its mean), over the
examples of a slice: 1 is a perfect model, 0 is no better than always predicting the mean label, and
below 0 is worse than that. Unlike the mean squared error it does not depend on the label's units, so
one default threshold can mean the same for every data set. TFMA loads it by class name and module
(`tfma.MetricConfig(class_name="RSquared", module=__name__)`), in each Beam worker.
"""
import dataclasses

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

R_SQUARED_NAME = "r_squared"


class RSquared(metric_types.Metric):
    """R² of a regression model's predictions against the label."""

    def __init__(self, name=R_SQUARED_NAME):
        super().__init__(metric_util.merge_per_key_computations(_r_squared_computations), name=name)


def _r_squared_computations(name=R_SQUARED_NAME, eval_config=None, model_name="", output_name="",
                            sub_key=None, aggregation_type=None, class_weights=None, example_weighted=False):
    key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name, sub_key=sub_key,
                                 example_weighted=example_weighted)
    return [metric_types.MetricComputation(keys=[key], preprocessors=None, combiner=_RSquaredCombiner(
        eval_config, key, example_weighted))]


@dataclasses.dataclass
class _Sums:
    weight: float = 0.0
    label: float = 0.0
    label_squared: float = 0.0
    squared_error: float = 0.0


class _RSquaredCombiner(beam.CombineFn):
    def __init__(self, eval_config, key, example_weighted):
        self._eval_config = eval_config
        self._key = key
        self._example_weighted = example_weighted

    def create_accumulator(self):
        return _Sums()

    def add_input(self, sums, element):
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._key.model_name,
                output_name=self._key.output_name, example_weighted=self._example_weighted,
                sub_key=self._key.sub_key):
            label, prediction = float(np.ravel(label)[0]), float(np.ravel(prediction)[0])
            weight = float(metric_util.safe_to_scalar(weight))
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
