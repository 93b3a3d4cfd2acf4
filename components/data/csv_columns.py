"""Ingest's CSV reading a block of rows at a time, column by column, with the row-by-row path's exact results.

`components.stage_logic.ingest` reads a CSV file row by row with Python's `csv` module, infers each column's type
from every cell and builds each `tf.train.Example` message from Python. This module does the same work
on blocks of rows with pyarrow and numpy, and gives the same answers:

- **Parsing.** pyarrow reads every cell as text. A file it cannot read the same way as Python's `csv`
  module (a row with the wrong number of fields, text that is not UTF-8, an unreadable quote) makes
  `read_blocks` raise `RowPathNeeded`; the caller then reads that file row by row, which names the line.
- **Types and values** follow `cell_level` and `cell_value`, which the row path uses too. A whole
  column is classified at once only where the answer is certain: an exact missing marker, an ASCII
  integer of at most 18 digits, an ASCII decimal. Every other distinct cell goes through those two
  functions, so spaces, signs, underscores, `nan` or long integers come out as they do row by row.
- **Examples.** Each row's `tf.train.Example` is assembled from the columns' wire-format pieces, in the
  feature order and with the bytes that `tf_example.serialize_example` writes for the same values.
"""
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from apache_beam.io.filesystem import CompressedFile
from apache_beam.io.filesystems import FileSystems

from components.data.tf_example import serialize_example

MISSING_VALUES = frozenset({"", "NA", "N/A", "NULL", "null"})
# Types in widening order: a column takes the widest type any of its values needs.
TYPE_NAMES = ("missing", "int", "float", "string")
MISSING, INT, FLOAT, STRING = range(len(TYPE_NAMES))
_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_INT_PATTERN = r"^-?[0-9]{1,18}$"  # always within int64; pyarrow reads it as Python's int() does
# A point or an exponent: digits alone are integers, or (past 18 digits) left to the row path's rules.
_DECIMAL_PATTERN = r"^-?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?|[0-9]+[eE][+-]?[0-9]{1,3})$"
_UNCHANGED_BY_STRIP = r"(?s)^[!-~](?:.*[!-~])?$"  # printable ASCII at both ends: strip() leaves it as is
_BLOCK_BYTES = 8 << 20
_EMPTY = pa.scalar(b"", pa.large_binary())


class RowPathNeeded(Exception):
    """pyarrow could not read a file as Python's csv module does; read it row by row instead."""


def read_blocks(path, column_count, delimiter=","):
    """Yields the data rows of the CSV file at `path`, its fields separated by `delimiter` (one character), as
    lists of `column_count` pyarrow string arrays. pyarrow drops a UTF-8 byte-order mark, as the row path does.

    Raises RowPathNeeded when pyarrow cannot read the file. That is only known when the block holding the
    problem is reached, so a caller that acts on blocks must have read the whole file once before.
    """
    names = [f"column_{index}" for index in range(column_count)]
    try:
        with open_binary(path) as raw:
            reader = pa_csv.open_csv(
                raw,
                # The header is read as a data row (dropped below), so pyarrow checks its field count too.
                read_options=pa_csv.ReadOptions(block_size=_BLOCK_BYTES, use_threads=False, column_names=names),
                parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(
                    null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False, check_utf8=True,
                    column_types=dict.fromkeys(names, pa.string())))
            header = True
            for batch in reader:
                columns = batch.columns
                if header:
                    columns, header = [column[1:] for column in columns], False
                if len(columns[0]):
                    yield columns
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise RowPathNeeded(path) from error


def has_bad_cell(columns, max_cell_bytes):
    """Whether a block's text columns hold a cell over `max_cell_bytes` bytes or a NUL byte (the row path
    then says which: `components.data.cell_limits`)."""
    for column in columns:
        longest = pc.max(pc.binary_length(column)).as_py()
        if (longest or 0) > max_cell_bytes or pc.any(pc.match_substring(column, "\x00")).as_py():
            return True
    return False


def open_binary(path):
    """The file at `path` (local or in a bucket, decompressed if it ends in .gz or .bz2), to read as bytes."""
    raw = FileSystems.open(path)
    return io.BufferedReader(_ReadableFile(raw)) if isinstance(raw, CompressedFile) else raw


class _ReadableFile(io.RawIOBase):
    """A file object pyarrow can read, around Beam's decompressing reader (its `closed` is not a property)."""

    def __init__(self, source):
        super().__init__()
        self._source = source

    def readable(self):
        return True

    def close(self):
        self._source.close()
        super().close()

    def readinto(self, buffer):
        data = self._source.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def cell_level(text):
    """The type level one cell needs: its stripped text is missing, or read by int() or float(), or text."""
    text = text.strip()
    if text in MISSING_VALUES:
        return MISSING
    try:
        return INT if _INT64_MIN <= int(text) <= _INT64_MAX else FLOAT
    except ValueError:
        pass
    try:
        float(text)
        return FLOAT
    except ValueError:
        return STRING


def cell_value(text, level):
    """One cell's value in a column of type `level`: int, float or stripped text (None when missing)."""
    text = text.strip()
    if text in MISSING_VALUES:
        return None
    return {INT: int, FLOAT: float}.get(level, str)(text)


class Classifier:
    """Type levels and typed values of whole text columns, by `cell_level` and `cell_value`."""

    def __init__(self):
        self._missing = pa.array(sorted(MISSING_VALUES), pa.string())

    def _uncertain(self, column, certain):
        """The distinct cells `certain` does not cover."""
        return pc.unique(pc.filter(column, pc.invert(certain))).to_pylist()

    def column_level(self, column):
        """The widest type level any cell of `column` needs."""
        missing = pc.is_in(column, value_set=self._missing)
        ints = pc.match_substring_regex(column, _INT_PATTERN)
        decimals = pc.match_substring_regex(column, _DECIMAL_PATTERN)
        level = FLOAT if pc.any(decimals).as_py() else INT if pc.any(ints).as_py() else MISSING
        for text in self._uncertain(column, pc.or_(pc.or_(missing, ints), decimals)):
            level = max(level, cell_level(text))
            if level == STRING:
                break
        return level

    def column_values(self, column, level):
        """`column` as typed values (int64, float64 or string) with nulls where a cell is missing."""
        missing = pc.is_in(column, value_set=self._missing)
        if level == STRING:
            certain = pc.or_(missing, pc.match_substring_regex(column, _UNCHANGED_BY_STRIP))
            values, kind = pc.if_else(missing, pa.scalar(None, pa.string()), column), pa.string()
        else:
            kind = pa.int64() if level == INT else pa.float64()
            plain = pc.match_substring_regex(column, _INT_PATTERN)
            if level == FLOAT:
                plain = pc.or_(plain, pc.match_substring_regex(column, _DECIMAL_PATTERN))
            certain = pc.or_(missing, plain)
            values = pc.cast(pc.if_else(plain, column, pa.scalar(None, pa.string())), kind)
        uncertain = self._uncertain(column, certain)
        if not uncertain:
            return values
        converted = pa.array([cell_value(text, level) for text in uncertain], kind)
        index = pc.index_in(column, value_set=pa.array(uncertain, pa.string()))
        return pc.if_else(pc.is_null(index), values, pc.take(converted, index))


def feature_order(names):
    """`names` in the order `serialize_example` writes features (protobuf's deterministic map order)."""
    wire = serialize_example(dict.fromkeys(names, 0))
    order, position = [], _read_varint(wire, 1)[1]
    while position < len(wire):
        length, start = _read_varint(wire, position + 1)
        key_length, key_start = _read_varint(wire, start + 1)
        order.append(wire[key_start:key_start + key_length].decode())
        position = start + length
    return order


def _read_varint(data, position):
    value, shift = 0, 0
    while True:
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if byte < 0x80:
            return value, position


def _varint_pieces(values):
    """Each unsigned 64-bit value's protobuf varint: (bytes, one row of 10 per value; used lengths)."""
    values = np.asarray(values, dtype=np.uint64)
    pieces = np.zeros((len(values), 10), dtype=np.uint8)
    lengths = np.ones(len(values), dtype=np.int64)
    remaining = values.copy()
    for index in range(10):
        low = (remaining & np.uint64(0x7F)).astype(np.uint8)
        remaining >>= np.uint64(7)
        more = remaining != 0
        pieces[:, index] = low | (more.astype(np.uint8) << 7)
        if not more.any():
            break
        lengths += more
    return pieces, lengths


def _varint(value):
    pieces, lengths = _varint_pieces([value])
    return pieces[0, :lengths[0]].tobytes()


def _varints(values):
    """Each unsigned 64-bit value's protobuf varint, as a pyarrow binary array."""
    return _varint_array(*_varint_pieces(values))


def _varint_array(pieces, lengths):
    return _binary(pieces[np.arange(10) < lengths[:, None]], lengths)


def _binary(data, lengths, valid=None):
    """A pyarrow binary array from the concatenated bytes of its values and their lengths."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    validity = None if valid is None or valid.all() else pa.array(valid).buffers()[1]
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(lengths), [validity, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))],
        null_count=-1 if validity is not None else 0)


def _length_delimited(tag, body):
    """`tag`, the length of each value of `body`, then the value (a protobuf length-delimited field)."""
    lengths = pc.fill_null(pc.binary_length(body), 0).to_numpy(zero_copy_only=False)
    return pc.binary_join_element_wise(pa.scalar(bytes([tag]), pa.large_binary()), _varints(lengths), body, _EMPTY)


def _entry_prefix(key_field, feature_length):
    """The bytes of a map entry up to its Feature's contents: the entry's tag and length, key, Feature's tag
    and length."""
    body_length = len(key_field) + 1 + len(_varint(feature_length)) + feature_length
    return b"\x0a" + _varint(body_length) + key_field + b"\x12" + _varint(feature_length)


def _feature_entries(name, values):
    """Each row's `Features.feature` map entry for `name` (null where the value is missing)."""
    valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
    key = name.encode()
    key_field = b"\x0a" + _varint(len(key)) + key
    if pa.types.is_floating(values.type):  # Feature.float_list, FloatList.value (packed), one float32
        floats = pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False).astype(np.float32)
        prefix = np.frombuffer(_entry_prefix(key_field, 8) + b"\x12\x06\x0a\x04", dtype=np.uint8)
        entries = np.empty((len(floats), len(prefix) + 4), dtype=np.uint8)
        entries[:, :len(prefix)] = prefix
        entries[:, len(prefix):] = floats.view(np.uint8).reshape(-1, 4)
        return _binary(entries.reshape(-1), np.full(len(floats), entries.shape[1]), valid)
    if pa.types.is_int64(values.type):  # Feature.int64_list, Int64List.value (packed), one varint
        pieces, lengths = _varint_pieces(pc.fill_null(values, 0).to_numpy(zero_copy_only=False).view(np.uint64))
        prefixes = [_entry_prefix(key_field, 4 + length) + bytes([0x1A, 2 + length, 0x0A, length])
                    for length in range(1, 11)]
        width = len(prefixes[0])
        if all(len(prefix) == width for prefix in prefixes):
            table = np.frombuffer(b"".join(prefixes), dtype=np.uint8).reshape(10, width)
            entries = np.concatenate([table[lengths - 1], pieces], axis=1)
            used = np.arange(width + 10) < (width + lengths)[:, None]
            return _binary(entries[used], width + lengths, valid)
        feature = _length_delimited(0x1A, _length_delimited(0x0A, _varint_array(pieces, lengths)))
    else:  # Feature.bytes_list, BytesList.value
        text = pc.cast(pc.fill_null(values, ""), pa.large_binary())
        feature = _length_delimited(0x0A, _length_delimited(0x0A, text))
    entry = pc.binary_join_element_wise(pa.scalar(key_field, pa.large_binary()), _length_delimited(0x12, feature),
                                        _EMPTY)
    entries = _length_delimited(0x0A, entry)  # Features.feature
    return pc.if_else(pa.array(valid), entries, pa.scalar(None, pa.large_binary()))


def serialize_columns(named_values, order, rows):
    """Each of `rows` rows' serialized tf.train.Example from `{name: typed pyarrow array}`, as
    `serialize_example` writes it.

    `order` is `feature_order` of (at least) the names; a row with no value at all is an empty Example.
    """
    entries = [_feature_entries(name, named_values[name]) for name in order if name in named_values]
    if not entries:
        return [b""] * rows
    features = pc.binary_join_element_wise(*entries, _EMPTY, null_handling="replace", null_replacement="")
    examples = _length_delimited(0x0A, features)  # Example.features
    empty = pc.equal(pc.binary_length(features), 0)
    return pc.if_else(empty, _EMPTY, examples).to_pylist()


def hash_keys(columns):
    """Each row's hash-split key: its cells joined by the unit separator, as the row path builds it."""
    if len(columns) == 1:
        return pc.cast(columns[0], pa.binary()).to_pylist()
    return pc.cast(pc.binary_join_element_wise(*columns, "\x1f"), pa.binary()).to_pylist()
