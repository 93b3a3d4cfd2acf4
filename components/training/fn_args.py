"""TFX's Trainer contract without TFX: the `FnArgs` a module's `run_fn(fn_args)` receives, and its `DataAccessor`.

A TFX Trainer module imports these from `tfx` (`tfx.components.FnArgs`, `tfx.components.DataAccessor`,
or `tfx.components.trainer.fn_args_utils`); here it imports them from this module instead, and nothing
else changes. The attributes keep TFX's names and meanings:

- `train_files`, `eval_files`: lists of file patterns of the transformed train and eval examples
  (gzipped TFRecords of tf.Examples, one `Split-<name>` folder each, as TFX writes them).
- `transform_output` (and its older name `transform_graph_path`): the transform graph folder, for
  `tft.TFTransformOutput`.
- `serving_model_dir`: where `run_fn` saves the SavedModel to serve (and evaluate); `eval_model_dir`
  is the same folder, as TFX's generic Trainer makes it.
- `model_run_dir`: the run's folder for logs, e.g. TensorBoard's; kept as an artifact of the train stage.
- `train_steps`, `eval_steps`: how many batches to train on and to validate on.
- `schema_path` (and `schema_file`): the raw data's schema.pbtxt.
- `custom_config`, `hyperparameters`: dicts from `--custom-config` and `--hyperparameters` (JSON).
- `working_dir`: a scratch folder for the module.
- `data_accessor`: `tf_dataset_factory(file_pattern, options, schema)` and
  `record_batch_factory(file_pattern, options, schema)`, reading the files through tfx-bsl's TFXIO as
  TFX's do.
"""
import dataclasses
import types
from typing import Any, Callable, Dict, List, Optional

from tfx_bsl.public import tfxio

# How tfx-bsl's telemetry names this project's reads (as the Beam stages name them).
TELEMETRY = ["living-pipeline"]


def _tfxio(file_pattern, schema):
    """A TFXIO over gzipped or plain TFRecords of tf.Examples (the compression is told by the file names)."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    return tfxio.TFExampleRecord(file_pattern=patterns, schema=schema, telemetry_descriptors=TELEMETRY)


def tf_dataset_factory(file_pattern, options, schema=None):
    """A batched `tf.data.Dataset` of the examples in `file_pattern` (a pattern or a list of them), parsed
    by `schema` (for transformed examples: `TFTransformOutput.transformed_metadata.schema`).

    `options` is a `tfxio.TensorFlowDatasetOptions`; with its `label_key`, elements are (features, label).
    As in TFX, the dataset goes through the data once unless `options.num_epochs` is None: call
    `.repeat()` on it for endless training input.
    """
    return _tfxio(file_pattern, schema).TensorFlowDataset(options)


def record_batch_factory(file_pattern, options, schema=None):
    """The examples in `file_pattern` as Arrow RecordBatches (`options`: `tfxio.RecordBatchesOptions`)."""
    return _tfxio(file_pattern, schema).RecordBatches(options)


@dataclasses.dataclass(frozen=True)
class DataAccessor:
    """How `run_fn` reads examples: TFX's `DataAccessor` (its `data_view_decode_fn` is always None here)."""

    tf_dataset_factory: Callable = tf_dataset_factory
    record_batch_factory: Callable = record_batch_factory
    data_view_decode_fn: Optional[Callable] = None


@dataclasses.dataclass
class FnArgs:
    """What `run_fn(fn_args)` is given: TFX's `FnArgs`, attribute for attribute."""

    working_dir: str = ""
    train_files: List[str] = dataclasses.field(default_factory=list)
    eval_files: List[str] = dataclasses.field(default_factory=list)
    train_steps: Optional[int] = None
    eval_steps: Optional[int] = None
    schema_path: str = ""
    schema_file: str = ""
    transform_graph_path: str = ""
    transform_output: str = ""
    data_accessor: DataAccessor = dataclasses.field(default_factory=DataAccessor)
    serving_model_dir: str = ""
    eval_model_dir: str = ""
    model_run_dir: str = ""
    base_model: Optional[str] = None
    hyperparameters: Optional[Dict[str, Any]] = None
    custom_config: Optional[Dict[str, Any]] = None


# `from tfx import v1 as tfx` becomes `from components.training.fn_args import v1 as tfx`: `tfx.components.FnArgs`
# and `tfx.components.DataAccessor` then name the classes above.
v1 = types.SimpleNamespace(components=types.SimpleNamespace(FnArgs=FnArgs, DataAccessor=DataAccessor))
