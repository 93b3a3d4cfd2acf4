"""Gzipped TFRecords written a batch at a time read back, in order, with TensorFlow's and Beam's own readers."""
import glob
import gzip

import apache_beam as beam
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from components.data.tfrecords import WriteGzippedTFRecords


def test_batches_of_records_read_back_in_order_with_tensorflow_and_beam(tmp_path):
    batches = [[f"record {batch}-{index}".encode() * (1 + index % 50) for index in range(batch * 7)]
               for batch in range(1, 40)]
    batches.insert(3, [])
    batches.append([b"", b"\x00\xff" * 70_000])  # an empty record and one larger than a megabyte's share
    prefix = str(tmp_path / "split" / "data")
    with beam.Pipeline() as pipeline:
        _ = pipeline | beam.Create([batches], reshuffle=False) | beam.FlatMap(iter) | WriteGzippedTFRecords(prefix)

    files = glob.glob(prefix + "-*-of-*.gz")
    assert files == [prefix + "-00000-of-00001.gz"]
    with gzip.open(files[0]) as compressed:
        compressed.read()
    expected = [record for batch in batches for record in batch]
    read = [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    assert read == expected

    with beam.Pipeline() as pipeline:
        assert_that(pipeline | beam.io.ReadFromTFRecord(files[0]), equal_to(expected))
