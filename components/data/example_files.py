"""`TFExampleFiles`: tfx-bsl's TFXIO for tf.Examples in TFRecord files, reading through our block reader.

Statistics, transform and evaluate read their examples through it (components/data/tfrecords.py says why the
reader is faster than Beam's). A module of its own because tfx-bsl's TFXIO imports TensorFlow, which ingest,
writing TFRecords with the same framing, does not need: a local run starts ingest as soon as Beam is imported.
"""
import apache_beam as beam
from tfx_bsl.coders import example_coder
from tfx_bsl.tfxio import record_based_tfxio, tf_example_record

from components.data.tfrecords import ReadTFRecordFiles

_AUTOMATIC_BATCH = 1000  # tfx-bsl's largest batch where no batch size is given (batch_util._BATCH_SIZE_CAP)


class _DecodeExamples(beam.DoFn):
    """A list of serialized tf.Examples to an Arrow RecordBatch (tfx-bsl's decoder), with the serialized examples as
    one more column if asked."""

    def __init__(self, schema, raw_record_column_name):
        self._schema = schema.SerializeToString() if schema is not None else None
        self._raw_record_column_name = raw_record_column_name
        self._decoder = None

    def setup(self):
        self._decoder = example_coder.ExamplesToRecordBatchDecoder(*([self._schema] if self._schema else []))

    def process(self, examples):
        decoded = self._decoder.DecodeBatch(examples)
        if self._raw_record_column_name is None:
            yield decoded
        else:
            yield record_based_tfxio.AppendRawRecordColumn(decoded, self._raw_record_column_name, examples)


class TFExampleFiles(tf_example_record.TFExampleRecord):
    """tfx-bsl's TFXIO for tf.Examples in TFRecord files (`tfxio.TFExampleRecord`), reading through
    `ReadTFRecordFiles`. `BeamSource` reads each file's examples in lists of the batch size and decodes each list
    into a RecordBatch, as tfx-bsl's source does after batching the records one by one (without a batch size, in
    tfx-bsl's largest automatic batch, 1,000); everything else (schema, projections, tensor representations, raw
    record column, TensorFlow datasets) is tfx-bsl's."""

    def _RawRecordBeamSourceInternal(self):
        return ReadTFRecordFiles(self._file_pattern)

    def BeamSource(self, batch_size=None):
        schema, raw_record_column_name = self._schema, self.raw_record_column_name

        @beam.ptransform_fn
        def read_and_decode(pipeline):
            return (pipeline
                    | "ReadExampleLists" >> ReadTFRecordFiles(self._file_pattern, batch_size or _AUTOMATIC_BATCH)
                    | "Decode" >> beam.ParDo(_DecodeExamples(schema, raw_record_column_name)))
        return read_and_decode()

    def _ProjectImpl(self, tensor_names):
        projected = super()._ProjectImpl(tensor_names)
        return TFExampleFiles(file_pattern=self._file_pattern, schema=projected._schema,
                              raw_record_column_name=self.raw_record_column_name,
                              telemetry_descriptors=self.telemetry_descriptors)
