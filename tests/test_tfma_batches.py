"""Evaluation's grouped extraction (components/evaluation/tfma_batches.py): every example reaches exactly the
slices TFMA's own extraction (split into examples, then its slice key extraction) puts it in, once, with its own
label and prediction, whatever form the slicing columns' batches take."""
import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.extractors.slice_key_extractor import ExtractSliceKeysFn
from tensorflow_model_analysis.slicer import slicer_lib as slicer
from tensorflow_model_analysis.utils import util

from components.evaluation.tfma_batches import batched_extractors

ROWS = 300
ISLANDS = [b"Biscoe", b"Dream", b"Torgersen", b"Smaller"]


def var_len(rows):
    """A VarLenTensorValue of per-row lists (TFMA's batch of a column that may be empty in a row)."""
    values = [value for row in rows for value in row]
    indices = [[number, position] for number, row in enumerate(rows) for position in range(len(row))]
    return types.VarLenTensorValue(np.array(values, dtype=object), np.array(indices, dtype=np.int64).reshape(-1, 2),
                                   np.array([len(rows), max([len(row) for row in rows] + [0])]))


def features(seed, sex=None):
    random = np.random.default_rng(seed)
    islands = random.choice(ISLANDS, size=ROWS, p=[0.45, 0.35, 0.15, 0.05])
    sexes = [[] if random.random() < 0.1 else [random.choice([b"female", b"male"])] for _ in range(ROWS)]
    return {"island": islands.astype(object).reshape(ROWS, 1), "sex": sex if sex is not None else var_len(sexes),
            "year": random.choice([2007, 2008, 2009], size=ROWS).astype(np.int64),
            "body_mass_g": random.normal(4200, 800, size=ROWS).astype(np.float32).reshape(ROWS, 1)}


def config(slicing, models=("candidate",)):
    return tfma.EvalConfig(model_specs=[tfma.ModelSpec(name=name, label_key="y") for name in models],
                           slicing_specs=[tfma.SlicingSpec(**spec) for spec in slicing])


SLICING = [{}, {"feature_keys": ["island"]}, {"feature_keys": ["sex"]}, {"feature_keys": ["island", "sex"]},
           {"feature_keys": ["year"]}, {"feature_values": {"island": "Biscoe"}}]


def batch_of(features_batch, transformed=None):
    batch = {constants.FEATURES_KEY: features_batch,
             # Each example's row number as its label: which examples a grouped extract holds.
             constants.LABELS_KEY: np.arange(ROWS, dtype=np.float32).reshape(ROWS, 1),
             constants.PREDICTIONS_KEY: np.random.default_rng(1).random((ROWS, 3)).astype(np.float32)}
    if transformed is not None:
        batch[constants.TRANSFORMED_FEATURES_KEY] = transformed
    return batch


def tfma_slices_per_row(batch, eval_config):
    """{row: set of slice keys} as TFMA's default extraction finds them, one example at a time."""
    specs = [slicer.SingleSliceSpec(spec=spec) for spec in eval_config.slicing_specs]
    finder = ExtractSliceKeysFn(eval_config, materialize=False)
    found = {}
    for example in util.split_extracts(batch):
        [with_keys] = finder.process(example, specs)
        found[int(example[constants.LABELS_KEY][0])] = set(map(tuple, with_keys[constants.SLICE_KEY_TYPES_KEY]))
    return found


def grouped_slices_per_row(batch, eval_config):
    """{row: set of slice keys} from our extraction's grouped extracts; each extract's rows carry their own
    labels and predictions."""
    extractor = batched_extractors(None, eval_config, None)[-1]
    grouping = extractor.ptransform.fn
    grouping.setup()
    found = {}
    for group in grouping.process(batch):
        rows = group[constants.LABELS_KEY].ravel().astype(int).tolist()
        assert np.array_equal(group[constants.PREDICTIONS_KEY], batch[constants.PREDICTIONS_KEY][rows])
        for row in rows:
            assert row not in found  # every example once
            found[row] = set(map(tuple, group[constants.SLICE_KEY_TYPES_KEY]))
    return found


@pytest.mark.parametrize("case", ["dense and var-len columns", "a column empty in every row",
                                  "a column missing from the batch", "a sparse column"])
def test_each_example_reaches_tfma_s_slices_once(case):
    sex = {"dense and var-len columns": None, "a column empty in every row": var_len([[]] * ROWS),
           "a column missing from the batch": None,
           "a sparse column": types.SparseTensorValue(
               np.array([b"female", b"male"], dtype=object), np.array([[0, 0], [5, 0]]), np.array([ROWS, 1]))}[case]
    columns = features(7, sex)
    if case == "a column missing from the batch":
        del columns["sex"]
    batch, eval_config = batch_of(columns), config(SLICING)
    expected = tfma_slices_per_row(batch, eval_config)
    assert sorted(expected) == list(range(ROWS))
    assert grouped_slices_per_row(batch, eval_config) == expected
    if case == "dense and var-len columns":  # the cases really hold what they name
        assert {key for keys in expected.values() for key in keys} >= {(("island", "Smaller"),), (("sex", "male"),),
                                                                       (("year", 2008),), ()}
        assert any(not any(key and key[0][0] == "sex" for key in keys) for keys in expected.values())


def test_slices_on_transformed_features_of_two_models_are_tfma_s():
    columns = features(11)
    transformed = {name: {"island": columns["island"], "sex": var_len([[b"x"]] * (ROWS // 2) + [[]] * (ROWS // 2))}
                   for name in ("candidate", "baseline")}
    batch = batch_of(columns, transformed)
    eval_config = config(SLICING, models=("candidate", "baseline"))
    expected = tfma_slices_per_row(batch, eval_config)
    assert grouped_slices_per_row(batch, eval_config) == expected
    assert any((("sex", "x"),) in keys for keys in expected.values())
