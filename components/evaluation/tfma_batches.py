"""TFMA's extraction with each batch of examples kept together, in groups that share their slices.

TFMA's default extraction splits every batch into one extract per example (`UnbatchExtractor`) and finds
each example's slice keys (`SliceKeyExtractor`); its evaluator then adds the examples to each slice's
metrics one at a time. That per-example Python, not the models, is most of an evaluation's time at
scale (about 300 µs per example with two models and two slicing columns).

Here a batch stays a batch. Its examples are grouped by the values of the slicing columns (read column by
column from the batch's arrays; only a kind of value TFMA's own splitting alone reads is split example by
example), the slice keys of each group are found by TFMA's own slicer from one of its examples, as TFMA's
splitting gives it (every example with the same values belongs to the same slices), and each group goes on
as one extract whose labels, predictions and example weights are arrays with a row per example. TFMA's
evaluator fans such an extract out to its slices as it would an example's; the metrics of
`components.evaluation.tfma_metrics` take arrays of any length, so each slice's metrics see every example
exactly once, as before.

Only labels, predictions and example weights go on to the evaluator: the evaluation's metrics need
nothing else. A batch whose labels or predictions are not plain arrays goes on one example at a time,
as TFMA's default extraction would send it.
"""
from collections.abc import Mapping

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants, types
from tensorflow_model_analysis.extractors import slice_key_extractor, unbatch_extractor
from tensorflow_model_analysis.slicer import slicer_lib as slicer
from tensorflow_model_analysis.utils import util

_REPLACED_STAGES = (unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME,
                    slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME)
_METRIC_INPUTS = (constants.LABELS_KEY, constants.PREDICTIONS_KEY, constants.EXAMPLE_WEIGHTS_KEY)


def batched_extractors(eval_shared_model, eval_config, tensor_adapter_config):
    """TFMA's default extractors with the per-example tail (unbatch, slice keys) replaced by slice batches.

    With SQL slices (which need TFMA's own slice key extraction) the defaults are returned unchanged."""
    extractors = tfma.default_extractors(eval_shared_model=eval_shared_model, eval_config=eval_config,
                                         tensor_adapter_config=tensor_adapter_config)
    if any(spec.slice_keys_sql for spec in eval_config.slicing_specs):
        return extractors
    kept = [extractor for extractor in extractors if extractor.stage_name not in _REPLACED_STAGES]
    if len(kept) != len(extractors) - len(_REPLACED_STAGES):
        raise RuntimeError(f"TFMA's default extractors changed: {[e.stage_name for e in extractors]}")
    # Under the slice key extraction's stage name, which TFMA's evaluator runs after.
    return kept + [tfma.extractors.Extractor(stage_name=slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME,
                                             ptransform=beam.ParDo(_SliceBatches(eval_config)))]


class _NotAnArray(Exception):
    """A label, prediction or weight that is not a numpy array with a row per example."""


def _rows(value, rows, batch_size):
    """The given rows of every array in a (nested) dict of arrays."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {key: _rows(item, rows, batch_size) for key, item in value.items()}
    if isinstance(value, np.ndarray) and value.shape[:1] == (batch_size,):
        return value if len(rows) == batch_size else value[rows]
    raise _NotAnArray


def _hashable(value):
    """A hashable stand-in for one example's slicing values (dicts of arrays)."""
    if isinstance(value, Mapping):
        return tuple(sorted((key, _hashable(item)) for key, item in value.items()))
    if isinstance(value, np.ndarray):
        return value.dtype.str, value.shape, tuple(value.ravel().tolist())
    return repr(value)


def _leaves(value):
    """The arrays of a (nested) dict of slicing values, in key order."""
    if isinstance(value, Mapping):
        for key in sorted(value):
            yield from _leaves(value[key])
    else:
        yield value


def _row_bounds(value, batch_size):
    """Where each row of a VarLenTensorValue starts and ends in its values (rows are stored in order)."""
    return np.searchsorted(value.indices[:, 0], np.arange(batch_size + 1)).tolist()


def _row_keys(value, batch_size):
    """A hashable key per row of one slicing column's batch (rows with equal keys hold equal values), or None for
    a value TFMA's own splitting alone reads (a sparse or ragged tensor, a row count other than the batch's)."""
    if isinstance(value, types.VarLenTensorValue):
        # TFMA's row iterator yields no row at all from a batch without values: that case stays TFMA's.
        if not value.indices.size or int(value.dense_shape[0]) != batch_size:
            return None
        bounds, values = _row_bounds(value, batch_size), value.values.tolist()
        return [tuple(values[start:end]) for start, end in zip(bounds, bounds[1:])]
    if isinstance(value, np.ndarray) and value.shape[:1] == (batch_size,):
        return list(map(tuple, value.reshape(batch_size, -1).tolist()))
    return None


def _grouped_rows(values, batch_size):
    """The batch's rows grouped by their slicing values, each group in row order and the groups in the order of
    their first rows; None when a value is of a kind `_row_keys` leaves to TFMA."""
    columns = []
    for leaf in _leaves(values):
        if leaf is not None:  # the same (None) for every example
            keys = _row_keys(leaf, batch_size)
            if keys is None:
                return None
            columns.append(keys)
    if not columns:
        return None
    groups = {}
    for row, key in enumerate(zip(*columns) if len(columns) > 1 else columns[0]):
        groups.setdefault(key, []).append(row)
    return list(groups.values())


def _select_rows(value, rows):
    """The given rows of a (nested) dict of slicing values, in a form TFMA's `split_extracts` splits into exactly
    the examples it would split those rows into from the whole batch."""
    if isinstance(value, Mapping):
        return {key: _select_rows(item, rows) for key, item in value.items()}
    if isinstance(value, types.VarLenTensorValue):
        # As TFMA's row iterator yields them: a view of the row's values, an empty float array for an empty row.
        bounds = _row_bounds(value, int(value.dense_shape[0]))
        return [value.values[bounds[row]:bounds[row + 1]] if bounds[row + 1] > bounds[row] else np.array([])
                for row in rows]
    return None if value is None else value[rows]


def _only_columns(value, columns):
    return {name: value[name] for name in columns if name in value} if isinstance(value, Mapping) else {}


class _SliceBatches(beam.DoFn):
    """Batched extracts in, one extract per group of examples with the same slices out."""

    def __init__(self, eval_config):
        self._eval_config = eval_config

    def setup(self):
        specs = list(self._eval_config.slicing_specs) or [tfma.SlicingSpec()]
        self._slice_specs = [slicer.SingleSliceSpec(spec=spec) for spec in specs]
        self._columns = sorted({column for spec in specs for column in [*spec.feature_keys, *spec.feature_values]})
        model_specs = self._eval_config.model_specs
        self._model_names = [spec.name for spec in model_specs] if len(model_specs) > 1 else None

    def _slicing_values(self, batch):
        """The slicing columns' values, as TFMA's slice key extraction would look them up: raw features,
        and transformed features (per model when there are several)."""
        values = {constants.FEATURES_KEY: _only_columns(util.get_features_from_extracts(batch), self._columns)}
        transformed = batch.get(constants.TRANSFORMED_FEATURES_KEY)
        if transformed is not None:
            if self._model_names is None:
                values[constants.TRANSFORMED_FEATURES_KEY] = _only_columns(transformed, self._columns)
            else:
                values[constants.TRANSFORMED_FEATURES_KEY] = {
                    name: _only_columns(transformed[name], self._columns)
                    for name in self._model_names if name in transformed}
        return values

    def _slice_keys(self, example):
        transformed = example.get(constants.TRANSFORMED_FEATURES_KEY)
        if transformed is None:
            features_dicts = []
        elif self._model_names is None:
            features_dicts = [transformed]
        else:
            features_dicts = [transformed[name] for name in self._model_names if name in transformed]
        keys = set(slicer.get_slices_for_features_dicts(
            features_dicts, example.get(constants.FEATURES_KEY, {}), self._slice_specs))
        return slicer.slice_keys_to_numpy_array(list(keys))

    def _groups(self, batch, batch_size):
        """(rows, one of their examples as TFMA's splitting gives it) for each group of rows that share their
        slicing values."""
        if not self._columns:
            return [(list(range(batch_size)), {})]
        values = self._slicing_values(batch)
        grouped = _grouped_rows(values, batch_size)
        if grouped is not None:
            examples = util.split_extracts(_select_rows(values, [rows[0] for rows in grouped]))
            if len(examples) == len(grouped):
                return list(zip(grouped, examples))
        examples = util.split_extracts(values)
        if len(examples) != batch_size:
            examples = [{}] * batch_size
        groups = {}
        for row, example in enumerate(examples):
            groups.setdefault(_hashable(example), []).append(row)
        return [(rows, examples[rows[0]]) for rows in groups.values()]

    def process(self, batch):
        inputs = {key: batch[key] for key in _METRIC_INPUTS if batch.get(key) is not None}
        batch_size = _batch_size(inputs)
        if not batch_size:
            return
        one_by_one = None
        for rows, example in self._groups(batch, batch_size):
            slice_keys = self._slice_keys(example)
            try:
                group = {key: _rows(value, np.asarray(rows), batch_size) for key, value in inputs.items()}
            except _NotAnArray:
                one_by_one = one_by_one or util.split_extracts(inputs)
                for row in rows:
                    yield {**one_by_one[row], constants.SLICE_KEY_TYPES_KEY: slice_keys}
                continue
            group[constants.SLICE_KEY_TYPES_KEY] = slice_keys
            yield group


def _batch_size(inputs):
    """The number of examples in a batch: the length of its labels' or predictions' first array."""
    pending = list(inputs.values())
    while pending:
        value = pending.pop(0)
        if isinstance(value, Mapping):
            pending.extend(value.values())
        elif value is not None and hasattr(value, "shape") and len(value.shape):
            return value.shape[0]
    return 0
