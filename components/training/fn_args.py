"""TFX's Trainer and Tuner contracts without TFX: the `FnArgs` that a module's `run_fn(fn_args)` and
`tuner_fn(fn_args)` receive, its `DataAccessor`, and the `TunerFnResult` that `tuner_fn` returns.

A TFX module imports these from `tfx` (`tfx.components.FnArgs`, `tfx.components.DataAccessor`,
`tfx.components.TunerFnResult`, or `tfx.components.trainer.fn_args_utils`); here it imports them from this
module instead (`v1` stands for `from tfx import v1 as tfx`), and nothing else changes. What `v1` does not
offer is refused with one line naming it (docs/training.md lists both). The attributes keep TFX's names and
meanings:

- `train_files`, `eval_files`: lists of file patterns of the transformed train and eval examples
  (gzipped TFRecords of tf.Examples, one `Split-<name>` folder each, as TFX writes them).
- `transform_output` (and its older name `transform_graph_path`): the transform graph folder, for
  `tft.TFTransformOutput`.
- `serving_model_dir`: where `run_fn` saves the SavedModel to serve (and evaluate); `eval_model_dir`
  is the same folder, as TFX's generic Trainer makes it.
- `model_run_dir`: the run's folder for logs, e.g. TensorBoard's; kept as an artifact of the train stage.
- `train_steps`, `eval_steps`: how many batches to train on and to validate on.
- `schema_path` (and `schema_file`): the raw data's schema.pbtxt.
- `custom_config`: the dict from `--custom-config` (JSON).
- `hyperparameters`: for `run_fn`, keras-tuner's config of the best hyperparameters when the Tuner stage ran
  (`keras_tuner.HyperParameters.from_config(fn_args.hyperparameters)`), otherwise the dict from
  `--hyperparameters`; for `tuner_fn`, the dict from `--hyperparameters`.
- `working_dir`: a scratch folder for the module.
- `data_accessor`: `tf_dataset_factory(file_pattern, options, schema)` and
  `record_batch_factory(file_pattern, options, schema)`, reading the files through tfx-bsl's TFXIO as
  TFX's do.
"""
import dataclasses
from typing import Any, Callable, Dict, List, NamedTuple, Optional

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


class TunerFnResult(NamedTuple):
    """What `tuner_fn(fn_args)` returns, as in TFX: a keras-tuner tuner, and the keyword arguments of its
    `search` (the training and validation data, steps per epoch, ...)."""

    tuner: Any
    fit_kwargs: Dict[str, Any]


SHIM_DOCS = "docs/training.md#what-the-tfx-shim-offers"


class _TfxNamespace:
    """A part of TFX's public API (`tfx.v1`, `tfx.v1.components`) holding only what this shim offers; any
    other name is an AttributeError that says so, where the module's import or call names it."""

    def __init__(self, path, **members):
        self._path = path
        self.__dict__.update(members)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"{self._path}.{name} is not offered without TFX: this shim offers "
                             f"{', '.join(self._offered())} (see {SHIM_DOCS})")

    def _offered(self):
        return [f"{self._path}.{name}" for name in sorted(vars(self)) if not name.startswith("_")]


# `from tfx import v1 as tfx` becomes `from components.training.fn_args import v1 as tfx`: `tfx.components.FnArgs`,
# `tfx.components.DataAccessor` and `tfx.components.TunerFnResult` then name the classes above.
v1 = _TfxNamespace("tfx.v1", components=_TfxNamespace(
    "tfx.v1.components", FnArgs=FnArgs, DataAccessor=DataAccessor, TunerFnResult=TunerFnResult))


DEFAULT_EVAL_STEPS = 10


def fn_args_for(transformed_examples_dir, transform_graph_dir, schema_dir, *, train_steps, working_dir,
                eval_steps=DEFAULT_EVAL_STEPS, hyperparameters=None, custom_config=None, serving_model_dir="",
                model_run_dir=""):
    """The FnArgs of a train or tune stage: the transformed examples' Split-train and Split-eval files, the
    transform graph, the raw schema (when there is one), the steps, settings and folders."""
    from components.data import layout
    from components.stage_logic.schema import schema_file

    schema_path = schema_file(schema_dir) if schema_dir else ""
    return FnArgs(
        working_dir=working_dir,
        train_files=[layout.examples_pattern(transformed_examples_dir, layout.TRAIN)],
        eval_files=[layout.examples_pattern(transformed_examples_dir, layout.EVAL)],
        train_steps=train_steps, eval_steps=eval_steps, schema_path=schema_path, schema_file=schema_path,
        transform_graph_path=transform_graph_dir, transform_output=transform_graph_dir,
        data_accessor=DataAccessor(), serving_model_dir=serving_model_dir, eval_model_dir=serving_model_dir,
        model_run_dir=model_run_dir, hyperparameters=hyperparameters, custom_config=custom_config)
