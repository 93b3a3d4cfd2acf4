"""Transform (TFX's Transform): TensorFlow Transform over Beam with the user module's `preprocessing_fn`.

Full-pass analyzers (means, variances, vocabularies) run over the train split only; the resulting
transform graph is applied to every split, written as gzipped tf.Examples, and saved for the trainer,
which embeds it in the serving model.
"""
import os
import tempfile

import apache_beam as beam
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
from tfx_bsl.coders import example_coder
from tfx_bsl.public import tfxio

from components import layout
from components.autograph_rules import skip_autograph_for_libraries
from components.beam_options import pipeline_options
from components.errors import StageError
from components.schema import load_schema
from components.statistics import TELEMETRY
from components.user_module import load_user_module


def _check_columns(schema, user_module, module):
    columns = {feature.name for feature in schema.feature}
    if user_module.LABEL_KEY not in columns:
        raise StageError(f"The data has no column {user_module.LABEL_KEY!r}, the label (LABEL_KEY) of "
                         f"--module {module!r}: add the column, or point --module at a module for this data.")


def _encode_examples(record_batch_and_passthrough):
    record_batch, _ = record_batch_and_passthrough
    return example_coder.RecordBatchToExamplesEncoder().encode(record_batch)


def transform_examples(examples_dir, schema_dir, module, transform_graph_dir, transformed_examples_dir,
                       beam_args=""):
    """Analyzes the train split, transforms every split; returns the transformed feature names."""
    user_module = load_user_module(module)
    skip_autograph_for_libraries()
    schema = load_schema(schema_dir)
    _check_columns(schema, user_module, module)
    splits = layout.split_names(examples_dir)
    sources = {split: tfxio.TFExampleRecord(file_pattern=layout.examples_pattern(examples_dir, split),
                                            schema=schema, telemetry_descriptors=TELEMETRY)
               for split in splits}
    os.makedirs(transformed_examples_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tft-") as temp_dir, \
            beam.Pipeline(options=pipeline_options(beam_args)) as pipeline, \
            tft_beam.Context(temp_dir=temp_dir):
        raw = {split: pipeline | f"Read[{split}]" >> source.BeamSource() for split, source in sources.items()}
        train_config = sources[layout.TRAIN].TensorAdapterConfig()
        transform_fn = (raw[layout.TRAIN], train_config) | "Analyze" >> tft_beam.AnalyzeDataset(
            user_module.preprocessing_fn)
        _ = transform_fn | "WriteTransformGraph" >> tft_beam.WriteTransformFn(transform_graph_dir)
        for split in splits:
            transformed, _ = (((raw[split], sources[split].TensorAdapterConfig()), transform_fn)
                              | f"Transform[{split}]" >> tft_beam.TransformDataset(output_record_batches=True))
            _ = (transformed
                 | f"Encode[{split}]" >> beam.FlatMap(_encode_examples)
                 | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                     os.path.join(layout.split_dir(transformed_examples_dir, split), "transformed"),
                     file_name_suffix=".gz"))
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                               os.path.join(transform_graph_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return splits


def _numeric_ranges(transformed_examples_dir, feature_spec):
    """min, mean and max of each numeric transformed feature over the train split, batch by batch."""
    import tensorflow as tf

    totals = {}
    records = tf.data.TFRecordDataset(
        tf.io.gfile.glob(layout.examples_pattern(transformed_examples_dir, layout.TRAIN)), compression_type="GZIP")
    for batch in records.batch(4096):
        for name, values in tf.io.parse_example(batch, feature_spec).items():
            if isinstance(values, tf.SparseTensor):
                values = values.values
            if not values.dtype.is_floating and not values.dtype.is_integer:
                continue
            values = tf.cast(tf.reshape(values, [-1]), tf.float64).numpy()
            if not len(values):
                continue
            low, high, total, count = totals.get(name, (values.min(), values.max(), 0.0, 0))
            totals[name] = (min(low, values.min()), max(high, values.max()), total + values.sum(),
                            count + len(values))
    return {name: (low, total / count, high) for name, (low, high, total, count) in totals.items()}


def transform_report(transform_graph_dir, transformed_examples_dir):
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
    ranges = _numeric_ranges(transformed_examples_dir, spec)
    feature_rows = [(name, spec[name].dtype.name, *(number(v) for v in ranges.get(name, (None,) * 3)))
                    for name in sorted(spec)]
    lines = ["# Transform", "", "Full-pass analyzers ran over the train split.", "", "## Vocabularies", ""]
    lines.append(markdown_table(["vocabulary", "size", "entries"], vocabulary_rows) if vocabulary_rows
                 else "No vocabularies.")
    lines += ["", "## Transformed features (train split)", "",
              markdown_table(["feature", "type", "min", "mean", "max"], feature_rows), ""]
    return "\n".join(lines)
