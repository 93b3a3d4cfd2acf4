"""The file formats ingest reads besides CSV: Parquet, Avro and TFRecords of `tf.train.Example`.

Parquet and Avro files carry a schema, so their columns are typed from it rather than re-inferred from
text; every file of a span must have the same columns and types. TFRecords that already hold
tf.Examples (TFX's ImportExampleGen) pass through unchanged. Files are opened with Beam's FileSystems,
so a pattern may be a local path or any URI Beam reads, and each DoFn reads one file (or one Parquet
row group), so Beam reads them in parallel.

How values become tf.Example features (the same for PostgreSQL, in `components/data/postgres.py`):

    integers, booleans (0/1)             int64_list   "int"
    floating point, decimals             float_list   "float"
    strings, enums, UUIDs, JSON          bytes_list   "string"  (UTF-8)
    binary                               bytes_list   "bytes"   (the bytes as they are)
    dates                                bytes_list   "string"  ISO 8601, e.g. "2008-11-04"
    times of day                         bytes_list   "string"  ISO 8601, e.g. "13:45:00"
    timestamps                           int64_list   "int"     microseconds since 1970-01-01 00:00 UTC
                                                                 (a timestamp without a time zone is UTC)
    null                                 the feature is left out of that example
"""
import contextlib
import datetime
import decimal
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from components.data import cell_limits
from components.data.formats import AVRO, CSV, FORMATS, PARQUET, TFRECORD
from components.errors import StageError

_EXTENSIONS = {
    ".csv": CSV, ".parquet": PARQUET, ".pq": PARQUET, ".avro": AVRO, ".tfrecord": TFRECORD,
    ".tfrecords": TFRECORD, ".tfrecord.gz": TFRECORD, ".tfrecords.gz": TFRECORD, ".gz": TFRECORD,
}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_UNSUPPORTED_HINT = "cast it to a number, string or timestamp before ingest, or drop the column"


def data_format(pattern, given=""):
    """The format of the files matched by `pattern`: `given` (--data-format), or from the extension."""
    if given:
        if given not in FORMATS:
            raise StageError(f"--data-format {given!r} is not one of {', '.join(FORMATS)}.")
        return given
    name = pattern.lower()
    for extension in sorted(_EXTENSIONS, key=len, reverse=True):
        if name.endswith(extension):
            return _EXTENSIONS[extension]
    raise StageError(f"Cannot tell the format of --data {pattern!r} from its extension: end the pattern "
                     f"in .csv, .parquet, .avro or .tfrecord, or pass --data-format ({', '.join(FORMATS)}).")


def timestamp_micros(value):
    """A datetime as microseconds since the Unix epoch; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def feature_value(value):
    """A typed value from a Parquet, Avro or database row as an int, float, str, bytes or None."""
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, (int, float, str, bytes)):
        return value
    if isinstance(value, datetime.datetime):
        return timestamp_micros(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"unsupported value {value!r}")


# --- Parquet -------------------------------------------------------------------------------------

def _parquet_column_type(arrow_type):
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return _parquet_column_type(arrow_type.value_type)
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type) or pa.types.is_timestamp(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_date(arrow_type)
            or pa.types.is_time(arrow_type)):
        return "string"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type) or pa.types.is_fixed_size_binary(
            arrow_type):
        return "bytes"
    if pa.types.is_null(arrow_type):
        return "missing"
    return None


@contextlib.contextmanager
def _parquet_file(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with FileSystems.open(path) as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowException, OSError) as error:
            raise StageError(f"{path} is not a readable Parquet file ({error}): replace or remove it.") from None
        yield parquet


def parquet_columns(files):
    """{column: type} from the Parquet schemas of `files` (which must agree), and each file's row groups."""
    columns, row_groups = None, []
    for path in files:
        with _parquet_file(path) as parquet:
            schema = parquet.schema_arrow
            row_groups += [(path, group) for group in range(parquet.num_row_groups)]
        types = {}
        for field in schema:
            column_type = _parquet_column_type(field.type)
            if column_type is None:
                raise StageError(f"{path}: Parquet column {field.name!r} has type {field.type}, which ingest "
                                 f"does not take: {_UNSUPPORTED_HINT}.")
            types[field.name] = column_type
        if columns is None:
            columns, first = types, path
        elif types != columns:
            raise StageError(f"{path} has columns {types}, but {first} has {columns}: every Parquet file of "
                             "a span needs the same columns and types.")
    return columns, row_groups


def _arrow_to_values(column):
    """A pyarrow column as a list of feature values (timestamps converted without Python datetimes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_timestamp(column.type):
        scale = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}[column.type.unit]
        raw = column.cast(pa.int64())
        micros = pc.divide(raw, 1000) if scale is None else pc.multiply(raw, scale)
        return micros.to_pylist()
    return [feature_value(value) for value in column.to_pylist()]


def _arrow_cell_problem(column, limit):
    """(row index, problem) of the first cell of a pyarrow text or binary column over `limit` bytes or, in
    text, holding a NUL byte; None when there is none (and for every other type)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    if pa.types.is_fixed_size_binary(column.type):
        column = column.cast(pa.binary())
    if not (text or pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return None
    bad = pc.greater(pc.binary_length(column), limit)
    if text:
        bad = pc.or_(bad, pc.match_substring(column, "\x00"))
    bad = pc.fill_null(bad, False)
    if not pc.any(bad).as_py():
        return None
    index = pc.indices_nonzero(bad.combine_chunks() if isinstance(bad, pa.ChunkedArray) else bad)[0].as_py()
    return index, cell_limits.cell_problem(column[index].as_py(), limit)


class ReadParquetRowGroups(beam.DoFn):
    """(path, row group, split) -> (split, {column: value}) for each row; unreadable data, and a row group with
    a cell over `max_cell_bytes` or a NUL byte in text (`components.data.cell_limits`), to 'errors'."""

    def __init__(self, max_cell_bytes=cell_limits.DEFAULT_MAX_CELL_BYTES):
        self._max_cell_bytes = max_cell_bytes

    def process(self, element):
        import pyarrow as pa

        path, group, split = element
        try:
            with _parquet_file(path) as parquet:
                table = parquet.read_row_group(group)
                first_row = sum(parquet.metadata.row_group(earlier).num_rows for earlier in range(group))
        except (pa.ArrowException, OSError) as error:
            yield beam.pvalue.TaggedOutput(
                "errors", f"{path}, row group {group}: unreadable Parquet data ({error}): replace the file.")
            return
        except StageError as error:
            yield beam.pvalue.TaggedOutput("errors", str(error))
            return
        names = table.column_names
        for name in names:
            bad_cell = _arrow_cell_problem(table.column(name), self._max_cell_bytes)
            if bad_cell:
                index, problem = bad_cell
                yield beam.pvalue.TaggedOutput("errors", cell_limits.problem_line(
                    f"{path}, row {first_row + index + 1}", name, problem))
                return
        columns = [_arrow_to_values(table.column(name)) for name in names]
        for row in zip(*columns):
            yield split, dict(zip(names, row))


# --- Avro ----------------------------------------------------------------------------------------

_AVRO_PRIMITIVES = {"int": "int", "long": "int", "boolean": "int", "float": "float", "double": "float",
                    "string": "string", "bytes": "bytes", "fixed": "bytes", "enum": "string", "null": "missing"}
_AVRO_LOGICAL = {"date": "string", "time-millis": "string", "time-micros": "string", "timestamp-millis": "int",
                 "timestamp-micros": "int", "local-timestamp-millis": "int", "local-timestamp-micros": "int",
                 "decimal": "float", "uuid": "string"}


def _avro_column_type(avro_type):
    if isinstance(avro_type, list):
        kinds = [t for t in avro_type if t != "null"]
        return _avro_column_type(kinds[0]) if len(kinds) == 1 else ("missing" if not kinds else None)
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical in _AVRO_LOGICAL:
            return _AVRO_LOGICAL[logical]
        return _AVRO_PRIMITIVES.get(avro_type.get("type"))
    return _AVRO_PRIMITIVES.get(avro_type)


def _avro_reader(path, handle):
    import fastavro

    try:
        return fastavro.reader(handle)
    except (ValueError, EOFError, OSError) as error:
        raise StageError(f"{path} is not a readable Avro file ({error}): replace or remove it.") from None


def avro_columns(files):
    """{column: type} from the Avro writer schemas of `files`, which must agree."""
    columns = None
    for path in files:
        with FileSystems.open(path) as handle:
            schema = _avro_reader(path, handle).writer_schema
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise StageError(f"{path}: the Avro schema is not a record: ingest reads records, one per example.")
        types = {}
        for field in schema["fields"]:
            column_type = _avro_column_type(field["type"])
            if column_type is None:
                raise StageError(f"{path}: Avro field {field['name']!r} has type {field['type']}, which ingest "
                                 f"does not take: {_UNSUPPORTED_HINT}.")
            types[field["name"]] = column_type
        if columns is None:
            columns, first = types, path
        elif types != columns:
            raise StageError(f"{path} has fields {types}, but {first} has {columns}: every Avro file of "
                             "a span needs the same fields and types.")
    return columns


class ReadAvroFiles(beam.DoFn):
    """(path, split) -> (split, {field: value}) for each record; unreadable data, and records with a value over
    `max_cell_bytes` or a NUL byte in text (`components.data.cell_limits`), to 'errors'."""

    def __init__(self, max_cell_bytes=cell_limits.DEFAULT_MAX_CELL_BYTES):
        self._max_cell_bytes = max_cell_bytes

    def process(self, element):
        path, split = element
        count = 0
        try:
            with FileSystems.open(path) as handle:
                for record in _avro_reader(path, handle):
                    count += 1
                    values = {name: feature_value(value) for name, value in record.items()}
                    bad_cell = cell_limits.row_problem(values, self._max_cell_bytes)
                    if bad_cell:
                        yield beam.pvalue.TaggedOutput("errors", cell_limits.problem_line(
                            f"{path}, record {count}", *bad_cell, kind="field"))
                        continue
                    yield split, values
        except StageError as error:
            yield beam.pvalue.TaggedOutput("errors", str(error))
        except (ValueError, EOFError, OSError) as error:
            yield beam.pvalue.TaggedOutput(
                "errors", f"{path}, after record {count}: unreadable Avro data ({error or type(error).__name__}): "
                "replace the file.")


# --- TFRecords of tf.Examples --------------------------------------------------------------------

_KIND_TYPES = {"int64_list": "int", "float_list": "float", "bytes_list": "string"}


def example_feature_types(serialized):
    """{feature: 'int' | 'float' | 'string'} of a serialized tf.Example."""
    from components.data.tf_example import parse_example

    example = parse_example(serialized)
    return {name: _KIND_TYPES[feature.WhichOneof("kind")]
            for name, feature in example.features.feature.items() if feature.WhichOneof("kind")}


class ReadTFRecordFiles(beam.DoFn):
    """(path, split) -> (split, serialized tf.Example) for each record, unchanged; bad data, and examples with
    a bytes value over `max_cell_bytes` (`components.data.cell_limits`), to 'errors'."""

    def __init__(self, max_cell_bytes=cell_limits.DEFAULT_MAX_CELL_BYTES):
        self._max_cell_bytes = max_cell_bytes

    def process(self, element):
        from apache_beam.io.filesystem import CompressionTypes

        # Beam's own record reader (length and CRC checks), used per file to name the file at fault.
        from apache_beam.io.tfrecordio import _TFRecordUtil
        from google.protobuf.message import DecodeError

        from components.data.tf_example import parse_example

        path, split = element
        count = 0
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
                while True:
                    record = _TFRecordUtil.read_record(handle)
                    if record is None:
                        break
                    example = parse_example(record)
                    count += 1
                    bad_cell = (cell_limits.example_problem(example, self._max_cell_bytes)
                                if len(record) > self._max_cell_bytes else None)
                    if bad_cell:
                        yield beam.pvalue.TaggedOutput("errors", cell_limits.problem_line(
                            f"{path}, record {count}", *bad_cell, kind="feature"))
                        continue
                    yield split, record
        except (ValueError, OSError, EOFError, DecodeError) as error:
            reason = str(error).split(":")[0] or type(error).__name__
            yield beam.pvalue.TaggedOutput(
                "errors", f"{path}, after record {count}: not a TFRecord file of tf.Examples ({reason}): "
                "replace the file, or give --data-format for other files.")


class InferExampleTypes(beam.CombineFn):
    """{feature: type} over every example; a feature with two kinds is reported in the output."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, types):
        for name, kind in types.items():
            accumulator.setdefault(name, set()).add(kind)
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = {}
        for accumulator in accumulators:
            for name, kinds in accumulator.items():
                merged.setdefault(name, set()).update(kinds)
        return merged

    def extract_output(self, accumulator):
        return {name: "/".join(sorted(kinds)) for name, kinds in sorted(accumulator.items())}
