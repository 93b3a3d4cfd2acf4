"""Statistics (TFX's StatisticsGen): TFDV statistics of every split, in one Beam pipeline.

Given a sample of serving requests (CSV, or TFRecords of tf.Examples), its statistics are computed
too, as the `serving` split, for the training-serving skew check in validate. Given slice columns,
the statistics also hold one dataset per value of each column (e.g. per island), beside the overall
one, so a biased split can be spotted.
"""
import os
import tempfile

import apache_beam as beam
import tensorflow_data_validation as tfdv
from tensorflow_data_validation import constants as tfdv_constants
from tfx_bsl.public import tfxio

from components import layout, storage
from components.beam_options import pipeline_options
from components.errors import StageError
from components.ingest import SERVING_SPLIT, ingest_serving_sample

TELEMETRY = ["living-pipeline"]
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz")


def _serving_examples_pattern(serving_data, scratch_dir, beam_args):
    """The file pattern of tf.Examples for the serving sample, converting a CSV sample first."""
    if serving_data.endswith(".csv"):
        ingest_serving_sample(serving_data, scratch_dir, beam_args)
        return layout.examples_pattern(scratch_dir, SERVING_SPLIT)
    if serving_data.endswith(_TFRECORD_SUFFIXES):
        if not storage.match(serving_data, "--serving-data"):
            raise StageError(f"No file matches --serving-data {serving_data!r}: check the path.")
        return serving_data
    raise StageError(f"--serving-data {serving_data!r}: give CSV files (.csv) or TFRecord files of "
                     f"tf.Examples ({', '.join(_TFRECORD_SUFFIXES)}).")


def _stats_options(slice_columns):
    slicers = [tfdv.experimental_get_feature_value_slicer({column: None}) for column in slice_columns]
    return tfdv.StatsOptions(experimental_slice_functions=slicers or None)


def generate_statistics(examples_dir, output_dir, beam_args="", slice_columns=(), serving_data=""):
    """Writes `Split-<name>/FeatureStats.pb` for each split (and the serving sample); returns the splits."""
    patterns = {split: layout.examples_pattern(examples_dir, split) for split in layout.split_names(examples_dir)}
    with tempfile.TemporaryDirectory(prefix="serving-sample-") as scratch_dir:
        if serving_data:
            patterns[SERVING_SPLIT] = _serving_examples_pattern(serving_data, scratch_dir, beam_args)
        options = _stats_options(slice_columns)
        with beam.Pipeline(options=pipeline_options(beam_args)) as pipeline:
            for split, pattern in patterns.items():
                source = tfxio.TFExampleRecord(file_pattern=pattern, telemetry_descriptors=TELEMETRY)
                _ = (pipeline
                     | f"Read[{split}]" >> source.BeamSource()
                     | f"Statistics[{split}]" >> tfdv.GenerateStatistics(options)
                     | f"Write[{split}]" >> tfdv.WriteStatisticsToBinaryFile(
                         layout.statistics_file(output_dir, split)))
    return sorted(patterns)


def load_all_statistics(statistics_dir, split):
    """A split's statistics with every slice."""
    return tfdv.load_stats_binary(layout.statistics_file(statistics_dir, split))


def load_statistics(statistics_dir, split):
    """A split's statistics over all its examples (the overall slice when there are slices)."""
    statistics = load_all_statistics(statistics_dir, split)
    if len(statistics.datasets) > 1:
        return tfdv.get_slice_stats(statistics, tfdv_constants.DEFAULT_SLICE_KEY)
    return statistics


def _feature_cell(feature, num_examples):
    """The summary table and chart of one feature in one split."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from components import reports

    kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
    if feature.HasField("num_stats"):
        stats = feature.num_stats
        common = stats.common_stats
        rows = [("count", reports.number(common.num_non_missing)),
                ("missing", f"{100 * common.num_missing / max(num_examples, 1):.1f}%"),
                ("min", reports.number(stats.min)), ("mean", reports.number(stats.mean)),
                ("median", reports.number(stats.median)), ("max", reports.number(stats.max)),
                ("std", reports.number(stats.std_dev))]
        standard = next((h for h in stats.histograms if h.type == h.STANDARD), None)
        chart = reports.svg_histogram([(b.low_value, b.high_value, b.sample_count)
                                       for b in standard.buckets] if standard else [])
    else:
        stats = feature.string_stats
        common = stats.common_stats
        rows = [("count", reports.number(common.num_non_missing)),
                ("missing", f"{100 * common.num_missing / max(num_examples, 1):.1f}%"),
                ("unique", reports.number(stats.unique))]
        chart = reports.svg_top_values([(v.value, v.frequency) for v in stats.top_values[:8]])
    table = reports.html_table(["", ""], rows, numeric=(1,))
    return kind, f"{table}{chart}"


def statistics_report(statistics_dir, splits):
    """An HTML page: per feature, each split side by side (counts, missing, ranges, histograms)."""
    from components import reports

    datasets = {split: load_statistics(statistics_dir, split).datasets[0] for split in splits}
    names = sorted({".".join(f.path.step) for d in datasets.values() for f in d.features})
    summary = reports.html_table(["split", "examples", "features"],
                                 [(split, reports.number(d.num_examples), len(d.features))
                                  for split, d in datasets.items()], numeric=(1, 2))
    cards = []
    for name in names:
        columns, kind = [], ""
        for split, dataset in datasets.items():
            feature = next((f for f in dataset.features if ".".join(f.path.step) == name), None)
            if feature is None:
                columns.append(f"<div class=\"split\"><h3>{reports.escape(split)}</h3>"
                               f"<p class=\"muted\">not in this split</p></div>")
                continue
            kind, cell = _feature_cell(feature, dataset.num_examples)
            columns.append(f"<div class=\"split\"><h3>{reports.escape(split)}</h3>{cell}</div>")
        cards.append(f"<div class=\"feature\" id=\"feature-{reports.escape(name)}\"><h2>{reports.escape(name)} "
                     f"<span class=\"muted\">{reports.escape(kind)}</span></h2>"
                     f"<div class=\"splits\">{''.join(columns)}</div></div>")
    return reports.html_page("Statistics", summary, *cards)
