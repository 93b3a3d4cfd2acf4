"""Ingest on real CSV files: splits, spans and versions, types, missing values and bad input."""
import glob
import gzip
import os

import pytest
import tensorflow as tf

from components.data import layout
from components.errors import StageError
from components.stage_logic.ingest import ingest_examples, parse_split_ratios, resolve_input

HEADER = ["species", "island", "bill_length_mm", "body_mass_g"]


def read_examples(examples_dir, split):
    records = tf.data.TFRecordDataset(glob.glob(layout.examples_pattern(examples_dir, split)),
                                      compression_type="GZIP")
    return [tf.train.Example.FromString(record.numpy()) for record in records]


def test_demo_data_splits_about_two_to_one(examples_dir):
    _, metadata = examples_dir
    counts = metadata["row_counts"]
    assert counts["train"] + counts["eval"] == 344
    assert 0.55 < counts["train"] / 344 < 0.78
    assert metadata["split_names"] == ["train", "eval"]
    assert metadata["column_types"] == {
        "species": "string", "island": "string", "bill_length_mm": "float", "bill_depth_mm": "float",
        "flipper_length_mm": "int", "body_mass_g": "int", "sex": "string", "year": "int"}


def test_written_examples_match_the_counts_and_are_gzipped(examples_dir):
    path, metadata = examples_dir
    for split in ("train", "eval"):
        files = glob.glob(layout.examples_pattern(path, split))
        with gzip.open(files[0]) as compressed:
            compressed.read(16)
        assert len(read_examples(path, split)) == metadata["row_counts"][split]


def test_missing_values_become_absent_features(examples_dir, penguin_rows):
    path, _ = examples_dir
    examples = read_examples(path, "train") + read_examples(path, "eval")
    with_missing_mass = [e for e in examples if "body_mass_g" not in e.features.feature]
    expected = sum(1 for row in penguin_rows if row["body_mass_g"] == "NA")
    assert len(with_missing_mass) == expected == 2
    sexless = [e for e in examples if "sex" not in e.features.feature]
    assert len(sexless) == sum(1 for row in penguin_rows if row["sex"] == "NA") == 11
    for example in examples:
        for feature in example.features.feature.values():
            assert feature.WhichOneof("kind") is not None


def test_types_survive(examples_dir):
    example = read_examples(examples_dir[0], "train")[0].features.feature
    assert example["body_mass_g"].int64_list.value
    assert example["bill_length_mm"].float_list.value
    assert example["species"].bytes_list.value[0] in {b"Adelie", b"Chinstrap", b"Gentoo"}


def test_split_is_deterministic(tmp_path, examples_dir):
    again = str(tmp_path / "again")
    metadata = ingest_examples("", again)
    assert metadata["row_counts"] == examples_dir[1]["row_counts"]
    first = sorted(e.SerializeToString(deterministic=True) for e in read_examples(examples_dir[0], "eval"))
    second = sorted(e.SerializeToString(deterministic=True) for e in read_examples(again, "eval"))
    assert first == second


def test_custom_split_ratios(tmp_path, write_csv):
    rows = [["Adelie", "Dream", f"{30 + i / 10}", str(3000 + i)] for i in range(600)]
    data = write_csv(tmp_path / "data.csv", HEADER, rows)
    counts = ingest_examples(data, str(tmp_path / "out"), split_ratios="train:1,eval:1")["row_counts"]
    assert counts["train"] + counts["eval"] == 600
    assert 240 < counts["train"] < 360


def test_latest_span_and_version_are_taken(tmp_path, write_csv):
    for span, version, rows in [(1, 1, 30), (2, 1, 40), (2, 2, 50), (10, 1, 60), (10, 3, 70)]:
        write_csv(tmp_path / f"span-{span}" / f"v{version}" / "data.csv", HEADER,
                  [["Adelie", "Dream", f"{35 + row / 10:.1f}", "3750"] for row in range(rows)])
    pattern = str(tmp_path / "span-{SPAN}" / "v{VERSION}" / "*.csv")
    latest = ingest_examples(pattern, str(tmp_path / "latest"))
    assert (latest["span"], latest["version"], sum(latest["row_counts"].values())) == (10, 3, 70)
    span_two = ingest_examples(pattern, str(tmp_path / "two"), span=2)
    assert (span_two["span"], span_two["version"], sum(span_two["row_counts"].values())) == (2, 2, 50)


def test_span_that_does_not_exist(tmp_path, write_csv):
    write_csv(tmp_path / "span-1" / "data.csv", HEADER, [["Adelie", "Dream", "39.1", "3750"]])
    with pytest.raises(StageError, match=r"Span 4 not found .* available spans are 1\."):
        resolve_input(str(tmp_path / "span-{SPAN}" / "*.csv"), span=4)


def test_pattern_that_matches_nothing(tmp_path):
    with pytest.raises(StageError, match="No file matches --data"):
        ingest_examples(str(tmp_path / "missing" / "*.csv"), str(tmp_path / "out"))


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(StageError, match=r"empty\.csv is empty: a CSV file must start with a header"):
        ingest_examples(str(empty), str(tmp_path / "out"))


def test_header_only_file(tmp_path, write_csv):
    data = write_csv(tmp_path / "header.csv", HEADER, [])
    with pytest.raises(StageError, match="hold a header but no data rows"):
        ingest_examples(data, str(tmp_path / "out"))


def test_ragged_row_names_file_and_line(tmp_path, write_csv):
    data = write_csv(tmp_path / "ragged.csv", HEADER,
                     [["Adelie", "Dream", "39.1", "3750"], ["Adelie", "Dream", "39.1"]])
    with pytest.raises(StageError, match=r"ragged\.csv, line 3: 3 fields where the header has 4"):
        ingest_examples(data, str(tmp_path / "out"))


def test_files_of_a_span_must_share_a_header(tmp_path, write_csv):
    write_csv(tmp_path / "a.csv", HEADER, [["Adelie", "Dream", "39.1", "3750"]])
    write_csv(tmp_path / "b.csv", HEADER[::-1], [["3750", "39.1", "Dream", "Adelie"]])
    with pytest.raises(StageError, match="every file of a span needs the same header"):
        ingest_examples(str(tmp_path / "*.csv"), str(tmp_path / "out"))


@pytest.mark.parametrize("ratios", ["train:2", "train:2,eval:0", "train:2,eval:x", "train:1,train:1,eval:1"])
def test_bad_split_ratios(ratios):
    with pytest.raises(StageError, match="--split-ratios"):
        parse_split_ratios(ratios)


def test_extra_splits_are_kept(tmp_path, write_csv):
    data = write_csv(tmp_path / "d.csv", HEADER, [["Adelie", "Dream", f"{i}", "1"] for i in range(90)])
    metadata = ingest_examples(data, str(tmp_path / "out"), split_ratios="train:1,eval:1,test:1")
    assert set(metadata["row_counts"]) == {"train", "eval", "test"}
    assert sorted(os.listdir(tmp_path / "out")) == ["Split-eval", "Split-test", "Split-train",
                                                    "column_types.json"]
