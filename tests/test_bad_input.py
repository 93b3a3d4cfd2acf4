"""The bad-input catalogue: each case gives an anomaly report or one clear error naming the file (and
row or column where known). End-to-end runs of some of them are in test_end_to_end.py."""
import csv

import pytest

from components.errors import StageError
from components.stage_logic.ingest import ingest_examples
from components.stage_logic.statistics import generate_statistics
from components.stage_logic.validate import validate_statistics

# Just under ingest's default cell limit (components/data/cell_limits.py); a larger cell is refused at ingest
# (tests/test_hostile_cells_and_flags.py).
LONG_FIELD = 1_000_000


def write_penguins(path, rows, header=None):
    header = header or list(rows[0])
    with open(path, "w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(header)
        writer.writerows([row.get(column, "") for column in header] for row in rows)
    return str(path)


def anomalies_of(tmp_path, data, schema_dir):
    """Ingest, statistics and validate against the curated schema; the StageError's message."""
    ingest_examples(data, str(tmp_path / "examples"))
    generate_statistics(str(tmp_path / "examples"), str(tmp_path / "statistics"))
    with pytest.raises(StageError) as raised:
        validate_statistics(str(tmp_path / "statistics"), schema_dir, str(tmp_path / "anomalies"))
    return str(raised.value)


def modified(rows, every, column, value):
    return [dict(row, **{column: value}) if i % every == 0 else row for i, row in enumerate(rows)]


@pytest.mark.parametrize("case,change,expected", [
    ("wrong types", lambda rows: modified(rows, 4, "body_mass_g", "heavy"),
     ["feature 'body_mass_g': UNEXPECTED_DATA_TYPE", 'such as "heavy"']),
    ("NaN values", lambda rows: modified(rows, 9, "bill_length_mm", "nan"),
     ["feature 'bill_length_mm': FLOAT_TYPE_HAS_NAN"]),
    ("inf values", lambda rows: modified(rows, 9, "bill_depth_mm", "inf"),
     ["feature 'bill_depth_mm': FLOAT_TYPE_HAS_INF"]),
    ("extra columns", lambda rows: [dict(row, tag="x") for row in rows],
     ["feature 'tag': SCHEMA_NEW_COLUMN"]),
    ("missing columns", lambda rows: [{k: v for k, v in row.items() if k != "island"} for row in rows],
     ["feature 'island': SCHEMA_MISSING_COLUMN"]),
    ("a 1 MB field", lambda rows: modified(rows, 1000, "island", "A" * LONG_FIELD),
     ["feature 'island': ENUM_TYPE_UNEXPECTED_STRING_VALUES"]),
])
def test_bad_values_are_reported_as_anomalies(tmp_path, penguin_rows, schema_dir, case, change, expected):
    message = anomalies_of(tmp_path, write_penguins(tmp_path / "data.csv", change(penguin_rows)), schema_dir)
    for text in expected:
        assert text in message
    assert len(message) < 20_000, "a report names the problem; it does not repeat a 1 MB value"


def test_non_utf8_header(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("espèce,île\nAdélie,Dream\n".encode("latin-1"))
    with pytest.raises(StageError, match=r"latin1\.csv is not UTF-8 text: re-encode it as UTF-8"):
        ingest_examples(str(path), str(tmp_path / "out"))


def test_non_utf8_row(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"species,island\n" + b"Adelie,Dream\n" * 5000 + b"Gentoo,Bisc\xf6e\n")
    with pytest.raises(StageError, match=r"mixed\.csv, after line \d+: not UTF-8 text: re-encode the file"):
        ingest_examples(str(path), str(tmp_path / "out"))


def test_duplicated_header(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("species,island,island\nAdelie,Dream,Dream\n")
    with pytest.raises(StageError, match=r"twice\.csv: the header names island more than once"):
        ingest_examples(str(path), str(tmp_path / "out"))

