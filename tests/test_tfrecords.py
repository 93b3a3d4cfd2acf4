"""TFRecords: written a batch at a time and read back, in order, with TensorFlow's and Beam's own readers; read a
file at a time, record for record as TensorFlow wrote them, and as tfx-bsl's own source reads them."""
import glob
import gzip
import os

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to
from tfx_bsl.public import tfxio

from components.data.example_files import TFExampleFiles
from components.data.tfrecords import ReadTFRecordFiles, WriteGzippedTFRecords, read_tfrecord_file
from components.stage_logic.schema import load_schema


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


def write_with_tensorflow(path, records, compression=""):
    with tf.io.TFRecordWriter(str(path), options=tf.io.TFRecordOptions(compression_type=compression)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


RECORDS = [b"", b"one", b"\x00\xff" * 300_000, *(f"example {index}".encode() * (index % 30) for index in range(5000))]


def test_files_written_by_tensorflow_read_back_record_for_record(tmp_path):
    plain = write_with_tensorflow(tmp_path / "plain.tfrecord", RECORDS)
    zipped = write_with_tensorflow(tmp_path / "zipped.tfrecord.gz", RECORDS, "GZIP")
    empty = write_with_tensorflow(tmp_path / "empty.tfrecord.gz", [], "GZIP")
    for path in (plain, zipped):
        assert list(read_tfrecord_file(path)) == RECORDS
        assert list(read_tfrecord_file(path, block_bytes=1000)) == RECORDS  # records across blocks
    assert list(read_tfrecord_file(empty)) == []

    with beam.Pipeline() as pipeline:
        read = pipeline | ReadTFRecordFiles([str(tmp_path / "*.tfrecord"), str(tmp_path / "*.gz")])
        assert_that(read, equal_to(RECORDS + RECORDS))


def test_a_damaged_or_cut_file_is_refused_naming_it(tmp_path):
    path = write_with_tensorflow(tmp_path / "records.tfrecord", RECORDS[:100])
    content = bytearray(open(path, "rb").read())
    flipped = bytearray(content)
    flipped[len(content) // 2] ^= 0x01
    cut = content[:-3]
    for name, damaged in (("flipped.tfrecord", flipped), ("cut.tfrecord", cut)):
        (tmp_path / name).write_bytes(bytes(damaged))
        with pytest.raises(ValueError, match=name):
            list(read_tfrecord_file(str(tmp_path / name)))
    with pytest.raises(OSError, match="No files found"):
        ReadTFRecordFiles([str(tmp_path / "nothing-*.gz")]).expand(beam.Pipeline())


def test_example_files_give_the_record_batches_of_tfx_bsls_own_source(tmp_path, examples_dir, schema_dir):
    """Statistics, transform and evaluate read the examples through `TFExampleFiles`: the same Arrow record batches
    as tfx-bsl's `TFExampleRecord` (whose raw record column TFMA reads too), on the demo's examples."""
    pattern = os.path.join(examples_dir[0], "Split-train", "*")

    def batches(source):
        with beam.Pipeline() as pipeline:
            _ = (pipeline | source.BeamSource(10_000) | beam.Map(lambda batch: batch.to_pandas().to_dict("records"))
                 | beam.io.WriteToText(str(tmp_path / type(source).__name__), shard_name_template=""))
        return sorted(open(tmp_path / type(source).__name__).read().splitlines())

    schema = load_schema(schema_dir)
    ours = TFExampleFiles(file_pattern=pattern, schema=schema, raw_record_column_name="__raw_record__")
    theirs = tfxio.TFExampleRecord(file_pattern=pattern, schema=schema, raw_record_column_name="__raw_record__")
    assert batches(ours) == batches(theirs) and len(batches(ours)) > 200
    with beam.Pipeline() as pipeline:
        sizes = pipeline | "Automatic" >> ours.BeamSource() | beam.Map(lambda batch: batch.num_rows)
        assert_that(sizes | beam.combiners.ToList() | beam.Map(lambda found: (sum(found), max(found) <= 1000)),
                    equal_to([(sum(1 for path in glob.glob(pattern) for _ in read_tfrecord_file(path)), True)]))
    projected = ours.Project(["island"])
    assert isinstance(projected.projected, TFExampleFiles)
    assert projected.ArrowSchema().names == ["island", "__raw_record__"]
