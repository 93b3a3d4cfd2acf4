"""Statistics (TFX's StatisticsGen): TFDV statistics of every split, in one Beam pipeline."""
import apache_beam as beam
import tensorflow_data_validation as tfdv
from tfx_bsl.public import tfxio

from components import layout
from components.beam_options import pipeline_options

TELEMETRY = ["living-pipeline"]


def generate_statistics(examples_dir, output_dir, beam_args=""):
    """Writes `Split-<name>/FeatureStats.pb` for each split of `examples_dir`; returns the splits."""
    splits = layout.split_names(examples_dir)
    with beam.Pipeline(options=pipeline_options(beam_args)) as pipeline:
        for split in splits:
            source = tfxio.TFExampleRecord(
                file_pattern=layout.examples_pattern(examples_dir, split), telemetry_descriptors=TELEMETRY)
            _ = (pipeline
                 | f"Read[{split}]" >> source.BeamSource()
                 | f"Statistics[{split}]" >> tfdv.GenerateStatistics(tfdv.StatsOptions())
                 | f"Write[{split}]" >> tfdv.WriteStatisticsToBinaryFile(
                     layout.statistics_file(output_dir, split)))
    return splits


def load_statistics(statistics_dir, split):
    return tfdv.load_stats_binary(layout.statistics_file(statistics_dir, split))
