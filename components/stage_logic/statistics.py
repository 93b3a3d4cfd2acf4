"""Statistics (TFX's StatisticsGen): TFDV statistics of every split, in one Beam pipeline.

Given a sample of serving requests (CSV, or TFRecords of tf.Examples), its statistics are computed
too, as the `serving` split, for the training-serving skew check in validate. Given slice columns,
the statistics also hold one dataset per value of each column (e.g. per island), beside the overall
one, so a biased split can be spotted.

A small split (at most `IN_PROCESS_VALUES` examples and values of each feature) is computed without Beam, by
TFDV's in-memory statistics in the stage's process, where --beam-args leave the DirectRunner's mode to the stage:
TFDV runs the same statistics generators over the split as one Arrow record batch, and at that size its sketches
(Misra-Gries top values in 1,024 buckets, KMV uniques in 16,384, the quantiles) hold every value, so the
statistics are Beam's bit for bit (tests/test_statistics_in_process.py) without a Beam pipeline's start: on
2 cores, 0.03-0.2 s a split of a few hundred rows against about 1 s for Beam's pipeline.
"""
import functools

import tensorflow_data_validation as tfdv
from tensorflow_data_validation import constants as tfdv_constants
from tensorflow_data_validation.statistics import stats_impl
from tfx_bsl.coders import example_coder

from components.data import layout
from components.data.cell_limits import DEFAULT_MAX_CELL_BYTES
from components.data.example_files import TFExampleFiles
from components.data.tfrecords import read_tfrecord_file
from components.errors import StageError
from components.platform import beam_runner, tfdv_histograms
from components.platform.beam_options import direct_mode_open, file_sizes, matched_files, stage_pipeline
from components.platform.beam_workers import BEAM_LINE_PREFIX
from components.stage_logic.ingest import SERVING_SPLIT, ingest_serving_sample
from components.state.storage import Storage

TELEMETRY = ["living-pipeline"]
IN_PROCESS_VALUES = 1000
_IN_PROCESS_BYTES = 1 << 20  # a split's files are read to count its examples only up to this size
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz")


def _serving_examples_pattern(serving_data, scratch_dir, beam_args, storage, csv_delimiter, max_cell_bytes):
    """The file pattern of tf.Examples for the serving sample, converting a CSV sample first."""
    if serving_data.endswith(".csv"):
        ingest_serving_sample(serving_data, scratch_dir, beam_args, storage, csv_delimiter, max_cell_bytes)
        return layout.examples_pattern(scratch_dir, SERVING_SPLIT)
    if serving_data.endswith(_TFRECORD_SUFFIXES):
        if not storage.match(serving_data, "--serving-data"):
            raise StageError(f"No file matches --serving-data {serving_data!r}: check the path.")
        return serving_data
    raise StageError(f"--serving-data {serving_data!r}: give CSV files (.csv) or TFRecord files of "
                     f"tf.Examples ({', '.join(_TFRECORD_SUFFIXES)}).")


def _stats_options(slice_columns):
    """The StatsOptions of every split's statistics: TFDV's defaults, one slice per value of each slice column,
    and the quantile buckets the drift measures read (components/validation/drift_measures.py)."""
    from components.validation.drift_measures import QUANTILES_BUCKETS

    slicers = [tfdv.experimental_get_feature_value_slicer({column: None}) for column in slice_columns]
    return tfdv.StatsOptions(experimental_slice_functions=slicers or None,
                             num_quantiles_histogram_buckets=QUANTILES_BUCKETS)


def _in_process_statistics(pattern, options):
    """The statistics of the split that `pattern` matches, computed in this process by TFDV's in-memory statistics;
    None where the split is empty or larger than `IN_PROCESS_VALUES` examples or values of a feature."""
    matched = matched_files([pattern])
    if not matched or not matched[0] or sum(size for _, size in matched[0]) > _IN_PROCESS_BYTES:
        return None
    examples = []
    for path, _ in matched[0]:
        for example in read_tfrecord_file(path):
            examples.append(example)
            if len(examples) > IN_PROCESS_VALUES:
                return None
    if not examples:
        return None
    record_batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(examples)
    if any(len(column.flatten()) > IN_PROCESS_VALUES for column in record_batch.columns):
        return None
    return stats_impl.generate_statistics_in_memory(record_batch, options)


def generate_statistics(examples_dir, output_dir, beam_args="", slice_columns=(), serving_data="", storage=None,
                        csv_delimiter=",", max_cell_bytes=DEFAULT_MAX_CELL_BYTES):
    """Writes `Split-<name>/FeatureStats.pb` for each split (and the serving sample, a CSV one's fields separated
    by `csv_delimiter` and its cells limited as ingest's are, by `max_cell_bytes`); returns the splits."""
    storage = storage or Storage()
    tfdv_histograms.install()
    patterns = {split: layout.examples_pattern(examples_dir, split)
                for split in layout.split_names(examples_dir, storage)}
    with beam_runner.scratch(output_dir, storage) as scratch_dir:  # in a bucket when Beam's workers run elsewhere
        if serving_data:
            patterns[SERVING_SPLIT] = _serving_examples_pattern(serving_data, scratch_dir, beam_args, storage,
                                                                csv_delimiter, max_cell_bytes)
        options = _stats_options(slice_columns)
        remaining = _write_small_splits(patterns, output_dir, beam_args, slice_columns, options, storage)
        if remaining:
            _beam_statistics(remaining, output_dir, beam_args, options)
    return sorted(patterns)


def _write_small_splits(patterns, output_dir, beam_args, slice_columns, options, storage):
    """Writes the statistics of the small splits in this process (see the module's docstring), the stage's log
    naming them; returns the patterns of the other splits."""
    if slice_columns or not direct_mode_open(beam_args):
        return patterns
    done, remaining = [], {}
    for split, pattern in patterns.items():
        statistics = _in_process_statistics(pattern, options)
        if statistics is None:
            remaining[split] = pattern
            continue
        storage.write_bytes(layout.statistics_file(output_dir, split),
                            statistics.SerializeToString(deterministic=True), "statistics")
        done.append(split)
    if done:
        print(f"{BEAM_LINE_PREFIX}none for {', '.join(done)} (at most {IN_PROCESS_VALUES:,} examples and values of "
              f"each feature: TFDV's in-memory statistics in this process)", flush=True)
    return remaining


def _beam_statistics(patterns, output_dir, beam_args, options):
    """Writes each split's statistics from one Beam pipeline."""
    sizes = functools.partial(file_sizes, list(patterns.values()))
    with stage_pipeline(beam_args, "statistics", sizes) as pipeline:
        for split, pattern in patterns.items():
            source = TFExampleFiles(file_pattern=pattern, telemetry_descriptors=TELEMETRY)
            _ = (pipeline
                 | f"Read[{split}]" >> source.BeamSource()
                 | f"Statistics[{split}]" >> tfdv.GenerateStatistics(options)
                 | f"Write[{split}]" >> tfdv.WriteStatisticsToBinaryFile(layout.statistics_file(output_dir, split)))


def load_all_statistics(statistics_dir, split):
    """A split's statistics with every slice."""
    return tfdv.load_stats_binary(layout.statistics_file(statistics_dir, split))


def load_statistics(statistics_dir, split):
    """A split's statistics over all its examples (the overall slice when there are slices)."""
    statistics = load_all_statistics(statistics_dir, split)
    if len(statistics.datasets) > 1:
        return tfdv.get_slice_stats(statistics, tfdv_constants.DEFAULT_SLICE_KEY)
    return statistics


def ordered_splits(splits):
    """Train first, then eval and serving, then any other split by name: the order a report reads in."""
    first = [split for split in (layout.TRAIN, layout.EVAL, layout.SERVING) if split in splits]
    return first + sorted(set(splits) - set(first))


def _feature_name(feature):
    return ".".join(feature.path.step) or feature.name


def _features_by_name(dataset):
    """{name: feature} of a dataset's statistics: looked up once, not searched for each of a wide table's features."""
    return {_feature_name(f): f for f in reversed(dataset.features)}


def _numeric_rows(features, num_examples):
    """The summary rows of a numeric feature, one column per split; min, mean, median and max alike,
    and the standard deviations alike."""
    from components import reports

    stats = {split: feature.num_stats for split, feature in features.items()}
    decimals = reports.decimals_for([value for s in stats.values() for value in (s.min, s.max)])
    rows = [("count", *(reports.number(s.common_stats.num_non_missing) for s in stats.values())),
            ("missing", *(f"{100 * s.common_stats.num_missing / max(num_examples[split], 1):.1f}%"
                          for split, s in stats.items()))]
    for label in ("min", "mean", "median", "max"):
        rows.append((label, *(reports.fixed(getattr(s, label), decimals) for s in stats.values())))
    std_decimals = reports.decimals_for([s.std_dev for s in stats.values()], digits=3)
    rows.append(("std", *(reports.fixed(s.std_dev, std_decimals) for s in stats.values())))
    return rows


def _categorical_rows(features, num_examples):
    from components import reports

    stats = {split: feature.string_stats for split, feature in features.items()}
    return [("count", *(reports.number(s.common_stats.num_non_missing) for s in stats.values())),
            ("missing", *(f"{100 * s.common_stats.num_missing / max(num_examples[split], 1):.1f}%"
                          for split, s in stats.items())),
            ("unique", *(reports.number(s.unique) for s in stats.values()))]


def _slice_value(feature):
    """A slice's one-cell summary of a feature: its mean, or its most frequent value and that value's share."""
    from components import reports

    if feature is None:
        return "-"
    if feature.HasField("num_stats"):
        return reports.number(feature.num_stats.mean)
    stats = feature.string_stats
    if not stats.top_values:
        return "-"
    top = stats.top_values[0]
    return f"{top.value} ({100 * top.frequency / max(stats.common_stats.num_non_missing, 1):.0f}%)"


def _feature_card(name, overall, slices, named, named_slices):
    """One feature: a table with a column per split, every split in one chart, and a row per slice. `named` and
    `named_slices` are `overall`'s and `slices`' features by name (`_features_by_name`)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from components import reports

    present = {split: named[split].get(name) for split in overall}
    features = {split: feature for split, feature in present.items() if feature is not None}
    num_examples = {split: dataset.num_examples for split, dataset in overall.items()}
    kind = statistics_pb2.FeatureNameStatistics.Type.Name(next(iter(features.values())).type)
    numeric = any(f.HasField("num_stats") for f in features.values())
    features = {split: f for split, f in features.items() if f.HasField("num_stats") == numeric}
    if numeric:
        rows = _numeric_rows(features, num_examples)
        chart = reports.svg_overlaid_histograms(
            {split: [(b.low_value, b.high_value, b.sample_count)
                     for b in next((h.buckets for h in f.num_stats.histograms if h.type == h.STANDARD), [])]
             for split, f in features.items()}, x_label=name)
    else:
        rows = _categorical_rows(features, num_examples)
        chart = reports.svg_grouped_top_values(
            {split: [(v.value, v.frequency) for v in f.string_stats.top_values] for split, f in features.items()})
    table = reports.html_table(["", *features], rows, numeric=tuple(range(1, len(features) + 1)))
    absent = [split for split in overall if split not in features]
    note = (f"<p class=\"muted\">not in {reports.escape(', '.join(absent))}</p>" if absent else "")
    by_slice = ""
    slice_names = sorted({slice_name for datasets in slices.values() for slice_name in datasets})
    if slice_names:
        what = "mean" if numeric else "most frequent value"
        by_slice = (f"<p class=\"muted\">{what} by slice</p>" + reports.html_table(
            ["slice", *slices], [(slice_name, *(_slice_value(named_slices[split][slice_name].get(name))
                                                if slice_name in slices[split] else "-" for split in slices))
                                 for slice_name in slice_names], numeric=tuple(range(1, len(slices) + 1)) if numeric
            else ()))
    return (f"<div class=\"feature\" id=\"feature-{reports.escape(name)}\"><h2>{reports.escape(name)} "
            f"<span class=\"muted\">{reports.escape(kind)}</span></h2>{note}"
            f"<div class=\"splits\"><div class=\"split\">{table}</div><div class=\"split\">{chart}</div></div>"
            f"{by_slice}</div>")


def statistics_html(statistics_by_split):
    """An HTML page from {split: DatasetFeatureStatisticsList}: per feature, a column per split (train
    first, then eval, serving and the rest), all splits in one chart, and each slice's summary."""
    from components import reports

    overall, slices = {}, {}
    for split in ordered_splits(statistics_by_split):
        datasets = list(statistics_by_split[split].datasets)
        if len(datasets) > 1:
            main = next((d for d in datasets if d.name == tfdv_constants.DEFAULT_SLICE_KEY), datasets[0])
            slices[split] = {d.name: d for d in datasets if d is not main}
        else:
            main = datasets[0]
        overall[split] = main
    names = sorted({_feature_name(f) for d in overall.values() for f in d.features})
    summary = reports.html_table(["split", "examples", "features"],
                                 [(split, reports.number(d.num_examples), len(d.features))
                                  for split, d in overall.items()], numeric=(1, 2))
    sections = [summary]
    if slices:
        slice_names = sorted({name for datasets in slices.values() for name in datasets})
        sections += ["<h2>Slices</h2>", reports.html_table(
            ["slice", *(f"{split} examples" for split in slices)],
            [(name, *(reports.number(slices[split][name].num_examples) if name in slices[split] else "-"
                      for split in slices)) for name in slice_names], numeric=tuple(range(1, len(slices) + 1)))]
    named = {split: _features_by_name(dataset) for split, dataset in overall.items()}
    named_slices = {split: {slice_name: _features_by_name(dataset) for slice_name, dataset in datasets.items()}
                    for split, datasets in slices.items()}
    sections += [_feature_card(name, overall, slices, named, named_slices) for name in names]
    return reports.html_page("Statistics", *sections)


def statistics_report(statistics_dir, splits):
    """The statistics page of the splits written under `statistics_dir`, with their slices."""
    return statistics_html({split: load_all_statistics(statistics_dir, split) for split in splits})
