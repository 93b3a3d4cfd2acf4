"""Transform (TFX's Transform): TensorFlow Transform over Beam with the user module's `preprocessing_fn`.

Full-pass analyzers (means, variances, vocabularies) run over the train split only; the resulting
transform graph is applied to every split, written as gzipped tf.Examples, and saved for the trainer,
which embeds it in the serving model.

Before any data is read, the preprocessing_fn is traced once: a column that holds text where the module
casts it to a number is refused with one line naming it. Any other failure TensorFlow raises on the data
while the pipeline runs becomes one line naming the column too (components.training.data_errors).
"""
import functools
import json
import os
import sys

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
from tfx_bsl.coders import example_coder

from components import json_values
from components.data import layout
from components.data.example_files import TFExampleFiles
from components.data.tfrecords import WriteGzippedTFRecords
from components.errors import StageError
from components.platform import beam_runner
from components.platform.beam_options import RECORD_BATCH_SIZE, file_sizes, stage_pipeline
from components.stage_logic.schema import load_schema
from components.stage_logic.statistics import TELEMETRY
from components.state.storage import Storage, is_remote
from components.training.autograph_rules import skip_autograph_for_libraries
from components.training.data_errors import describe_data_error, string_casts, text_cast_line, traced_columns
from components.training.user_module import load_user_module

RANGES_FILE = "feature_ranges.json"
_NUMERIC_ARROW_TYPES = {pa_type.id for pa_type in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(),
                                                    pa.uint16(), pa.uint32(), pa.uint64(), pa.float16(),
                                                    pa.float32(), pa.float64())}


def _check_columns(schema, user_module, module):
    columns = {feature.name for feature in schema.feature}
    if user_module.LABEL_KEY not in columns:
        raise StageError(f"The data has no column {user_module.LABEL_KEY!r}, the label (LABEL_KEY) of "
                         f"--module {module!r}: add the column, or point --module at a module for this data.")


class _Columns(dict):
    """The raw features handed to the user's preprocessing_fn: a column the data lacks is named, not a KeyError."""

    def __init__(self, inputs, module):
        super().__init__(inputs)
        self._module = module

    def __missing__(self, key):
        columns = ", ".join(sorted(self))
        raise StageError(f"preprocessing_fn of --module {self._module!r} uses the column {key!r}, which the data "
                         f"does not have (its columns: {columns}): fix the module, or the data.")


def _preprocessing_fn(user_module, module, settings):
    """The module's preprocessing_fn, given `_Columns`. It holds the module's name, not the module: Beam
    pickles it with the pipeline, and a worker process cannot import a module this stage loaded from a
    file under a generated name (a worker loads it again, with the run's storage `settings`)."""
    name = user_module.__name__

    def preprocessing_fn(inputs):
        loaded = sys.modules.get(name) or load_user_module(module, Storage(settings))
        return loaded.preprocessing_fn(_Columns(inputs, module))
    return preprocessing_fn


def _text_sample(pattern, column, limit=10_000):
    """A value of `column` that is not a number, from the first `limit` examples the pattern matches, or None."""
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)[:1], compression_type="GZIP").take(limit)
    for record in records.as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature.get(column)
        for value in feature.bytes_list.value if feature else ():
            text = value.decode("utf-8", errors="replace")
            try:
                float(text)
            except ValueError:
                return text
    return None


def _check_input_types(preprocessing_fn, source, examples_dir, module):
    """Traces the preprocessing_fn on the columns' types; refuses a text column it casts to a number (one line,
    with a value of it). Returns a function from a node of the traced graph to the columns it reads, which
    names the column of a failure TensorFlow reports by its node."""
    from tensorflow_transform import impl_helper

    specs = source.TensorAdapter().OriginalTypeSpecs()
    graph, inputs, _ = impl_helper.trace_preprocessing_function(preprocessing_fn, specs, use_tf_compat_v1=False)
    for column, target in string_casts(graph, inputs):
        if specs.get(column) is not None and specs[column].dtype == tf.string:
            raise StageError(text_cast_line(column, target, module, _text_sample(
                layout.examples_pattern(examples_dir, layout.TRAIN), column)))
    return traced_columns(graph, inputs)


def _encode_examples(record_batch_and_passthrough):
    """A record batch of transformed features -> the list of its serialized tf.Examples."""
    record_batch, _ = record_batch_and_passthrough
    return example_coder.RecordBatchToExamplesEncoder().encode(record_batch)


def transform_examples(examples_dir, schema_dir, module, transform_graph_dir, transformed_examples_dir,
                       beam_args="", storage=None):
    """Analyzes the train split, transforms every split; returns the transformed feature names."""
    storage = storage or Storage()
    user_module = load_user_module(module, storage)
    skip_autograph_for_libraries()
    schema = load_schema(schema_dir)
    _check_columns(schema, user_module, module)
    splits = layout.split_names(examples_dir, storage)
    sources = {split: TFExampleFiles(file_pattern=layout.examples_pattern(examples_dir, split),
                                            schema=schema, telemetry_descriptors=TELEMETRY)
               for split in splits}
    preprocessing_fn = _preprocessing_fn(user_module, module, storage.settings)
    columns_of = _check_input_types(preprocessing_fn, sources[layout.TRAIN], examples_dir, module)
    if not is_remote(transformed_examples_dir):  # a bucket URI when Beam's workers run elsewhere
        os.makedirs(transformed_examples_dir, exist_ok=True)
    try:
        _run_transform(sources, splits, preprocessing_fn, transform_graph_dir, transformed_examples_dir, beam_args,
                       storage, functools.partial(file_sizes, [layout.examples_pattern(examples_dir, split)
                                                               for split in splits]))
    except Exception as error:  # data TensorFlow cannot take is one line naming the column; the rest is raised
        described = describe_data_error(error, f"Transform (preprocessing_fn of --module {module!r})",
                                        user_module.LABEL_KEY, columns_of)
        if described:
            raise StageError(described) from error
        raise
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                               os.path.join(transform_graph_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return splits


def _run_transform(sources, splits, preprocessing_fn, transform_graph_dir, transformed_examples_dir, beam_args,
                   storage, input_sizes=None):
    """The Beam pipeline: analyze the train split, transform and write every split, and the train ranges."""
    with beam_runner.scratch(transform_graph_dir, storage) as temp_dir, \
            stage_pipeline(beam_args, "transform", input_sizes) as pipeline, tft_beam.Context(temp_dir=temp_dir):
        # The train split is read once for the analyzers and again to transform it: one read feeding both
        # would be held in memory whole until the analyzers finish (Beam cannot stream it to a step that
        # waits for the transform graph), which grows with the data.
        analyzed = pipeline | "Read[train, analyze]" >> sources[layout.TRAIN].BeamSource(RECORD_BATCH_SIZE)
        raw = {split: pipeline | f"Read[{split}]" >> source.BeamSource(RECORD_BATCH_SIZE)
               for split, source in sources.items()}
        train_config = sources[layout.TRAIN].TensorAdapterConfig()
        transform_fn = (analyzed, train_config) | "Analyze" >> tft_beam.AnalyzeDataset(preprocessing_fn)
        _ = transform_fn | "WriteTransformGraph" >> tft_beam.WriteTransformFn(transform_graph_dir)
        for split in splits:
            transformed, _ = (((raw[split], sources[split].TensorAdapterConfig()), transform_fn)
                              | f"Transform[{split}]" >> tft_beam.TransformDataset(output_record_batches=True))
            if split == layout.TRAIN:
                _ = (transformed
                     | "Ranges[train]" >> beam.CombineGlobally(_NumericRanges())
                     | "WriteRanges" >> beam.Map(_write_ranges,
                                                 os.path.join(transformed_examples_dir, RANGES_FILE)))
            _ = (transformed
                 | f"Encode[{split}]" >> beam.Map(_encode_examples)
                 | f"Write[{split}]" >> WriteGzippedTFRecords(
                     os.path.join(layout.split_dir(transformed_examples_dir, split), "transformed")))


class _NumericRanges(beam.CombineFn):
    """min, sum, max and count of each numeric column of the transformed record batches."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, record_batch_and_passthrough):
        import pyarrow.compute as compute

        record_batch, _ = record_batch_and_passthrough
        for name, column in zip(record_batch.schema.names, record_batch.columns):
            values = compute.list_flatten(column) if hasattr(column.type, "value_type") else column
            if not (values.type.id in _NUMERIC_ARROW_TYPES and len(values)):
                continue
            low, high = compute.min_max(values).values()
            self._merge(accumulator, name, (low.as_py(), compute.sum(values).as_py(), high.as_py(),
                                            len(values)))
        return accumulator

    @staticmethod
    def _merge(accumulator, name, value):
        if name in accumulator:
            low, total, high, count = accumulator[name]
            value = (min(low, value[0]), total + value[1], max(high, value[2]), count + value[3])
        accumulator[name] = value

    def merge_accumulators(self, accumulators):
        merged = {}
        for accumulator in accumulators:
            for name, value in accumulator.items():
                self._merge(merged, name, value)
        return merged

    def extract_output(self, accumulator):
        return {name: (low, total / count, high) for name, (low, total, high, count) in accumulator.items()}


def _write_ranges(ranges, path):
    from apache_beam.io.filesystems import FileSystems  # a local path or a bucket URI, from any worker

    with FileSystems.create(path) as sink:
        # A NaN or infinite value (a feature the module leaves NaN) is null: the file stays valid JSON.
        sink.write(json_values.dumps(json_values.finite(ranges)).encode())


def transform_report(transform_graph_dir, transformed_examples_dir):
    # The ranges were computed by the transform pipeline itself, over the transformed train split.
    """Markdown: the analyzers' vocabularies (size, first entries) and each transformed feature's range."""
    from components.reports import markdown_table, number

    output = tft.TFTransformOutput(transform_graph_dir)
    assets = os.path.join(transform_graph_dir, tft.TFTransformOutput.TRANSFORM_FN_DIR, "assets")
    vocabularies = sorted(os.listdir(assets)) if os.path.isdir(assets) else []
    vocabulary_rows = []
    for name in vocabularies:
        entries = output.vocabulary_by_name(name)
        shown = ", ".join(entry.decode(errors="replace") for entry in entries[:6])
        vocabulary_rows.append((name, len(entries), shown + (", ..." if len(entries) > 6 else "")))
    spec = output.transformed_feature_spec()
    with open(os.path.join(transformed_examples_dir, RANGES_FILE)) as source:
        ranges = json.load(source)
    feature_rows = [(name, spec[name].dtype.name, *(number(v) for v in ranges.get(name, (None,) * 3)))
                    for name in sorted(spec)]
    lines = ["# Transform", "", "Full-pass analyzers ran over the train split.", "", "## Vocabularies", ""]
    lines.append(markdown_table(["vocabulary", "size", "entries"], vocabulary_rows) if vocabulary_rows
                 else "No vocabularies.")
    lines += ["", "## Transformed features (train split)", "",
              markdown_table(["feature", "type", "min", "mean", "max"], feature_rows), ""]
    return "\n".join(lines)
