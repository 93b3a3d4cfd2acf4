"""Ingest's block-at-a-time CSV reading gives what reading row by row gives: the same examples, splits and types.

The row-by-row path (Python's csv module, each cell typed and each tf.Example built on its own) is the
reference; it is forced by making pyarrow's reading fail, which is what happens to a file pyarrow
cannot read.
"""
import glob
import gzip
import random

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from components.data import csv_columns, layout
from components.data.tf_example import serialize_example
from components.errors import StageError
from components.stage_logic.ingest import ingest_examples

# Cells a hand-made or exported CSV holds, with what the row path makes of each column.
MESSY_COLUMNS = {
    "plain_int": ["1", "-2", "007", "", "NA", "42"],
    "spaced_int": [" 5", "\t6", "+3", "1_000", "N/A", "8"],  # Python's int() reads all of these
    "hex_text": ["0x1F", "12", "", "3", "4", "5"],  # not a number to Python, though pyarrow reads 31
    "huge_int": ["12345678901234567890", "1", "2", "null", "3", "4"],  # beyond int64: a float column
    "decimal": ["1.5", "-.5", "1.", "1e5", "2E-03", "nan"],
    "odd_float": ["inf", "-Infinity", " 2.5 ", "1e400", "3", "NULL"],
    "text": [" padded ", "é\u00a0", "a,b", 'say "hi"', "line\nbreak", "NA "],
    "empty": ["", "NA", "", "N/A", "null", ""],
}
EXPECTED_TYPES = {"plain_int": "int", "spaced_int": "int", "hex_text": "string", "huge_int": "float",
                  "decimal": "float", "odd_float": "float", "text": "string", "empty": "missing"}


def _quote(cell, delimiter=","):
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in delimiter + '"\n') else cell


def _write_messy_csv(path, rows, seed, line_end="\n", delimiter=",", encoding="utf-8"):
    rng = random.Random(seed)
    names = list(MESSY_COLUMNS)
    with open(path, "w", encoding=encoding, newline="") as out:
        out.write(delimiter.join(names) + line_end)
        for _ in range(rows):
            out.write(delimiter.join(_quote(rng.choice(MESSY_COLUMNS[name]), delimiter) for name in names) + line_end)


def _split_records(examples_dir, split):
    records = []
    for path in sorted(glob.glob(layout.examples_pattern(examples_dir, split))):
        records += [record.numpy() for record in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    return records


def _ingest_both_ways(tmp_path, monkeypatch, pattern, **settings):
    by_blocks = ingest_examples(pattern, str(tmp_path / "by_blocks"), **settings)

    def pyarrow_cannot_read(path, column_count, delimiter=","):
        raise csv_columns.RowPathNeeded(path)
        yield  # a generator, as the real reader is

    monkeypatch.setattr(csv_columns, "read_blocks", pyarrow_cannot_read)
    by_rows = ingest_examples(pattern, str(tmp_path / "by_rows"), **settings)
    return by_blocks, by_rows


@pytest.mark.slow
def test_messy_csv_gives_the_same_examples_block_by_block_as_row_by_row(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    _write_messy_csv(data / "part-1.csv", 3000, seed=1)
    _write_messy_csv(data / "part-2.csv", 2000, seed=2, line_end="\r\n")
    by_blocks, by_rows = _ingest_both_ways(tmp_path, monkeypatch, str(data / "*.csv"))

    assert by_blocks == by_rows
    assert by_blocks["column_types"] == EXPECTED_TYPES
    for split in ("train", "eval"):
        blocks, rows = _split_records(tmp_path / "by_blocks", split), _split_records(tmp_path / "by_rows", split)
        assert len(blocks) == by_blocks["row_counts"][split] > 1000
        assert blocks == rows  # byte for byte, in the same order

    examples = [tf.train.Example.FromString(record) for record in _split_records(tmp_path / "by_blocks", "train")]
    values = {name: [] for name in MESSY_COLUMNS}
    for example in examples:
        for name, feature in example.features.feature.items():
            values[name].append(getattr(feature, feature.WhichOneof("kind")).value[0])
    assert set(values["spaced_int"]) == {5, 6, 3, 1000, 8}
    assert set(values["hex_text"]) == {b"0x1F", b"12", b"3", b"4", b"5"}
    assert set(values["text"]) == {b"padded", "é".encode(), b"a,b", b'say "hi"', b"line\nbreak"}
    assert values["empty"] == []
    assert np.isinf(values["odd_float"]).sum() > 0 and 2.5 in values["odd_float"]


@pytest.mark.parametrize("delimiter, name", [("\t", "tab"), (";", ";")])
def test_a_messy_file_with_another_delimiter_and_a_byte_order_mark_gives_the_comma_files_examples(
        tmp_path, monkeypatch, delimiter, name):
    """Tabs inside cells (`\\t6`) and commas are then quoted or not by the other delimiter's rules."""
    for folder, separator, encoding in (("comma", ",", "utf-8"), ("other", delimiter, "utf-8-sig")):
        (tmp_path / folder).mkdir()
        _write_messy_csv(tmp_path / folder / "rows.csv", 600, seed=3, delimiter=separator, encoding=encoding)
    comma = ingest_examples(str(tmp_path / "comma" / "rows.csv"), str(tmp_path / "comma_out"))
    blocks = list(csv_columns.read_blocks(str(tmp_path / "other" / "rows.csv"), len(MESSY_COLUMNS), delimiter))
    assert sum(len(block[0]) for block in blocks) == 600  # pyarrow reads it: the block path is taken
    by_blocks, by_rows = _ingest_both_ways(tmp_path, monkeypatch, str(tmp_path / "other" / "rows.csv"),
                                           csv_delimiter=name)
    assert by_blocks["column_types"] == by_rows["column_types"] == comma["column_types"] == EXPECTED_TYPES
    assert by_blocks["row_counts"] == by_rows["row_counts"] == comma["row_counts"]
    for split in ("train", "eval"):
        expected = _split_records(tmp_path / "comma_out", split)
        assert _split_records(tmp_path / "by_blocks", split) == _split_records(tmp_path / "by_rows", split) == expected


@pytest.mark.slow
def test_given_splits_and_a_cell_larger_than_a_block_match_row_by_row(tmp_path, monkeypatch):
    for split in ("train", "eval"):
        (tmp_path / "data" / split).mkdir(parents=True)
        _write_messy_csv(tmp_path / "data" / split / "rows.csv", 300, seed=len(split))
    with open(tmp_path / "data" / "eval" / "rows.csv", "a", encoding="utf-8") as out:
        long_text = "word " * (2 * csv_columns._BLOCK_BYTES // 5)
        out.write(",".join(["1", "2", "3", "4", "5", "6", f'"{long_text}"', ""]) + "\n")
    by_blocks, by_rows = _ingest_both_ways(tmp_path, monkeypatch, str(tmp_path / "data" / "{SPLIT}" / "*.csv"),
                                           max_cell_bytes=len(long_text) + 1)

    assert by_blocks == by_rows
    assert by_blocks["row_counts"] == {"train": 300, "eval": 301}
    for split in ("train", "eval"):
        assert _split_records(tmp_path / "by_blocks", split) == _split_records(tmp_path / "by_rows", split)


def test_a_ragged_row_stops_ingest_with_its_line_either_way(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    with pytest.raises(StageError, match=r"rows.csv, line 3: 3 fields where the header has 2"):
        ingest_examples(str(path), str(tmp_path / "out"))


def test_column_wise_examples_are_the_bytes_serialize_example_writes():
    rng = np.random.default_rng(7)
    rows = 500
    missing = rng.random((4, rows)) < 0.2
    columns = {
        "count": pa.array([None if gone else int(value) for gone, value in
                           zip(missing[0], rng.integers(-2 ** 63, 2 ** 63 - 1, rows, dtype=np.int64))], pa.int64()),
        "small": pa.array([None if gone else int(value) for gone, value in
                           zip(missing[1], rng.integers(-300, 300, rows))], pa.int64()),
        "weight_kg": pa.array([None if gone else float(value) for gone, value in
                               zip(missing[2], rng.normal(0, 1e6, rows))], pa.float64()),
        "a": pa.array([None if gone else "x" * int(length) + "é" for gone, length in
                       zip(missing[3], rng.integers(0, 400, rows))], pa.string()),
    }
    columns["a" * 200] = pa.array(["long key"] * rows, pa.string())
    columns["n" * 118] = columns["count"]  # an entry's length takes one or two bytes, by the value's
    columns["f" * 300] = columns["weight_kg"]
    expected = [serialize_example({name: values[row].as_py() for name, values in columns.items()})
                for row in range(rows)]
    assert csv_columns.serialize_columns(columns, csv_columns.feature_order(list(columns)), rows) == expected

    nothing = {"count": pa.array([None, None], pa.int64())}
    assert csv_columns.serialize_columns(nothing, ["count"], 2) == [serialize_example({"count": None})] * 2
    assert csv_columns.serialize_columns({}, [], 3) == [serialize_example({})] * 3  # every column empty


@pytest.mark.slow
def test_gzipped_csv_is_read_block_by_block(tmp_path):
    with gzip.open(tmp_path / "rows.csv.gz", "wt", encoding="utf-8") as out:
        out.write("id,score,name\n" + "".join(f"{index},{index * 0.5},name{index % 7}\n" for index in range(200)))
    blocks = list(csv_columns.read_blocks(str(tmp_path / "rows.csv.gz"), 3))
    assert sum(len(block[0]) for block in blocks) == 200 and blocks[0][2][3].as_py() == "name3"

    metadata = ingest_examples(str(tmp_path / "rows.csv.gz"), str(tmp_path / "out"), data_format="csv")
    assert sum(metadata["row_counts"].values()) == 200
    assert metadata["column_types"] == {"id": "int", "score": "float", "name": "string"}
