"""CSV dialects on a table nobody here wrote (scikit-learn's wine data): a byte-order mark, `;`, tab and `|`
separated files read as the plain comma file is, the one-line hint for a file read with the wrong delimiter,
and the one-line header mismatch naming the first column that differs. Slow: one `pipeline.py run` of a `;`
file with a byte-order mark and a serving sample of the same kind, publishing a model."""
import glob
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from components.data import csv_columns, csv_dialect, layout
from components.errors import StageError
from components.stage_logic.ingest import ingest_examples, ingest_serving_sample
from helpers import REPO
from pipeline_cli import main

WINE_MODULE = os.path.join(REPO, "tests", "modules", "wine_module.py")


def wine_frame():
    """The wine table as a newcomer exports it: a named class as the label (`cultivar`)."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["cultivar"] = [f"cultivar {'ABC'[target]}" for target in frame.pop("target")]
    return frame


def write_wine(path, sep=",", encoding="utf-8", frame=None):
    """The table as a CSV file (pandas writes a byte-order mark for utf-8-sig, as Excel does)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    (wine_frame() if frame is None else frame).to_csv(path, sep=sep, index=False, encoding=encoding)
    return str(path)


def records(examples_dir):
    found = {}
    for split in ("train", "eval"):
        paths = sorted(glob.glob(layout.examples_pattern(str(examples_dir), split)))
        found[split] = sorted(record.numpy() for record in tf.data.TFRecordDataset(paths, compression_type="GZIP"))
    return found


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The table as a plain comma CSV without a byte-order mark, ingested: what every dialect must give."""
    folder = tmp_path_factory.mktemp("plain")
    metadata = ingest_examples(write_wine(folder / "wine.csv"), str(folder / "out"))
    return metadata, records(folder / "out")


@pytest.mark.parametrize("sep, flag", [(",", ","), (";", ";"), ("\t", "tab"), ("\t", "\\t"), ("\t", "\t"),
                                       ("|", "|")])
def test_every_dialect_with_a_byte_order_mark_gives_the_plain_files_examples(tmp_path, plain, sep, flag):
    data = write_wine(tmp_path / "wine.csv", sep=sep, encoding="utf-8-sig")
    with open(data, "rb") as source:
        assert source.read(3) == b"\xef\xbb\xbf"
    metadata = ingest_examples(data, str(tmp_path / "out"), csv_delimiter=flag)
    assert list(metadata["column_types"])[:2] == ["alcohol", "malic_acid"]  # no "\ufeffalcohol"
    assert metadata["column_types"] == plain[0]["column_types"]
    assert metadata["column_types"]["cultivar"] == "string" and metadata["column_types"]["proline"] == "float"
    assert metadata["row_counts"] == plain[0]["row_counts"]
    assert records(tmp_path / "out") == plain[1]  # the same rows in the same splits, byte for byte


def test_a_semicolon_file_read_row_by_row_gives_what_pyarrow_gives(tmp_path, plain, monkeypatch):
    def pyarrow_cannot_read(path, column_count, delimiter=","):
        raise csv_columns.RowPathNeeded(path)
        yield  # a generator, as the real reader is

    monkeypatch.setattr(csv_columns, "read_blocks", pyarrow_cannot_read)
    data = write_wine(tmp_path / "wine.csv", sep=";", encoding="utf-8-sig")
    metadata = ingest_examples(data, str(tmp_path / "out"), csv_delimiter=";")
    assert metadata["column_types"] == plain[0]["column_types"]
    assert records(tmp_path / "out") == plain[1]


def test_a_semicolon_serving_sample_with_a_byte_order_mark_keeps_its_column_names(tmp_path):
    frame = wine_frame().drop(columns=["cultivar"])
    data = write_wine(tmp_path / "requests.csv", sep=";", encoding="utf-8-sig", frame=frame)
    assert ingest_serving_sample(data, str(tmp_path / "out"), csv_delimiter=";") == len(frame)
    paths = glob.glob(layout.examples_pattern(str(tmp_path / "out"), layout.SERVING))
    first = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(paths, compression_type="GZIP"))).numpy())
    assert set(first.features.feature) == set(frame.columns)


@pytest.mark.parametrize("sep, hint", [(";", "--csv-delimiter ';'"), ("\t", "--csv-delimiter tab")])
def test_a_file_read_with_the_wrong_delimiter_stops_with_one_line_naming_the_flag(tmp_path, sep, hint):
    data = write_wine(tmp_path / "wine.csv", sep=sep, encoding="utf-8-sig")
    with pytest.raises(StageError) as raised:
        ingest_examples(data, str(tmp_path / "out"))
    message = str(raised.value)
    assert message.splitlines() == [message]
    assert message.startswith(f"{data}: the header is one column, 'alcohol")
    assert message.endswith(f"where fields are split at commas: pass {hint}.")
    assert "proline" not in message  # the header is cut short, not listed whole


def test_a_comma_file_read_as_semicolons_gets_the_hint_back(tmp_path):
    data = write_wine(tmp_path / "wine.csv")
    with pytest.raises(StageError, match=r"holding commas where fields are split at semicolons: "
                                         r"pass --csv-delimiter ','\.$"):
        ingest_examples(data, str(tmp_path / "out"), csv_delimiter=";")


def test_a_ragged_semicolon_row_names_its_line_and_the_delimiter(tmp_path):
    data = write_wine(tmp_path / "wine.csv", sep=";")
    with open(data, "a") as sink:
        sink.write("13.2;1.78;2.14\n")
    with pytest.raises(StageError, match=r"wine\.csv, line 180: 3 fields where the header has 14: fix the row or "
                                         r"quote fields that hold semicolons\.$"):
        ingest_examples(data, str(tmp_path / "out"), csv_delimiter=";")


@pytest.mark.parametrize("change, expected", [
    (lambda frame: frame.rename(columns={"magnesium": "Magnesium"}),
     "b.csv: column 5 is 'Magnesium' where {a} has 'magnesium'"),
    (lambda frame: frame.drop(columns=["hue"]),
     "b.csv: column 11 is 'od280/od315_of_diluted_wines' where {a} has 'hue'"),
    (lambda frame: frame[["malic_acid", "alcohol", *frame.columns[2:]]],
     "b.csv: column 1 is 'malic_acid' where {a} has 'alcohol' (the same columns in another order)"),
    (lambda frame: frame.drop(columns=["cultivar"]),
     "b.csv: column 14 is missing (13 columns) where {a} has 'cultivar'"),
    (lambda frame: frame.assign(batch=1),
     "b.csv: column 15 is 'batch', after the last column of {a} (14 columns)"),
])
def test_a_header_mismatch_names_the_first_differing_column_in_one_line(tmp_path, change, expected):
    first = write_wine(tmp_path / "a.csv", encoding="utf-8-sig")  # a byte-order mark is no difference
    write_wine(tmp_path / "b.csv", frame=change(wine_frame()))
    with pytest.raises(StageError) as raised:
        ingest_examples(str(tmp_path / "*.csv"), str(tmp_path / "out"))
    message = str(raised.value)
    assert message.splitlines() == [message]
    assert message == f"{tmp_path / expected.format(a=first)}: every file of a span needs the same header."
    assert "proline" not in message  # not the whole headers


def test_delimiter_spellings_and_a_refused_one():
    assert [csv_dialect.delimiter_name(text) for text in (",", ";", "|", "\t", "\\t", "tab", "TAB", " ; ", "")] == [
        ",", ";", "|", "tab", "tab", "tab", "tab", ";", ","]
    assert csv_dialect.delimiter("\\t") == "\t" and csv_dialect.delimiter("") == ","
    with pytest.raises(StageError, match=r"^--csv-delimiter ':' is not a delimiter ingest reads: give ',', ';', "
                                         r"'\|' or a tab \(as tab or '\\t'\)\.$"):
        csv_dialect.delimiter(":")


def test_run_refuses_an_unknown_delimiter_in_one_line_before_any_stage(tmp_path, capsys):
    code = main(["run", "--data", str(tmp_path / "wine.csv"), "--csv-delimiter", "::",
                 "--pipeline-root", str(tmp_path / "outputs")])
    stderr = capsys.readouterr().err
    assert code == 2 and stderr == "Error: --csv-delimiter '::' is not a delimiter ingest reads: give ',', ';', " \
                                   "'|' or a tab (as tab or '\\t').\n"
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_a_semicolon_file_with_a_byte_order_mark_publishes_a_model(tmp_path):
    frame = wine_frame()
    data = write_wine(tmp_path / "data" / "wine.csv", sep=";", encoding="utf-8-sig", frame=frame)
    requests = write_wine(tmp_path / "data" / "requests.csv", sep=";", encoding="utf-8-sig",
                          frame=frame.drop(columns=["cultivar"]))
    summary = tmp_path / "summary.json"
    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--data", data, "--csv-delimiter", ";",
         "--serving-data", requests, "--module", WINE_MODULE, "--model-name", "wine",
         "--serving-root", str(tmp_path / "serving"), "--statistics-root", str(tmp_path / "statistics"),
         "--pipeline-root", str(tmp_path / "outputs"), "--summary-json", str(summary)],
        capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stdout[-4000:] + process.stderr[-3000:]
    assert "Traceback" not in process.stdout + process.stderr
    result = json.loads(summary.read_text())
    assert result["errors"] == [] and result["outputs"]["pushed_model"]["pushed"] is True
    [types] = glob.glob(str(tmp_path / "outputs" / "**" / "column_types.json"), recursive=True)
    with open(types) as source:
        assert list(json.load(source))[:2] == ["alcohol", "malic_acid"]
    assert glob.glob(str(tmp_path / "outputs" / "**" / "Split-serving" / "FeatureStats.pb"), recursive=True)
    assert os.path.isfile(tmp_path / "serving" / "wine" / "1" / "saved_model.pb")
