"""Hostile input, issue 30 items 4 and 5: cells nobody should accept, and flags checked before anything runs.

- A cell over `--max-cell-bytes` (1 MiB by default; the issue's single 50 MB cell made a 51 MB model) and a
  NUL byte in text are refused by ingest, from every source that makes cells, in one line naming the file,
  the line (row, record) and the column; binary values may hold NUL bytes.
- Every flag of `run`, `submit` (and its `--param` values), `compile` and `models` is checked at the command
  line: a hostile value (a unicode digit, a negative, zero, NaN, infinity, a huge number, an empty or
  300-character name, a root that is a file, a malformed COLUMN=X) ends in one line naming the flag and what
  to give, nothing runs, and no message asks to "report it". The stages keep their own checks for specs run
  from a dashboard.
"""
import csv
import math
import os

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from components.data.cell_limits import DEFAULT_MAX_CELL_BYTES
from components.errors import StageError
from components.evaluation.blessing import check_thresholds
from components.platform.argument_checks import check_folder
from components.stage_logic.ingest import ingest_examples, ingest_serving_sample
from components.stage_logic.validate import validate_statistics
from pipeline_cli import main

FIFTY_MB = 50 * 1024 * 1024
HEADER = ["id", "species", "note"]


def rows(count=60, **changed):
    """`count` rows of (id, species, note); `changed` sets the note of row id N (`n7="..."`)."""
    return [[i, ("Adelie", "Gentoo")[i % 2], changed.get(f"n{i}", f"seen on day {i}")] for i in range(count)]


def write_csv(path, data, header=HEADER):
    with open(path, "w", newline="", encoding="utf-8") as sink:
        writer = csv.writer(sink)
        writer.writerow(header)
        writer.writerows(data)
    return str(path)


def refusal(tmp_path, data, **settings):
    """ingest's one-line refusal of `data`."""
    with pytest.raises(StageError) as raised:
        ingest_examples(data, str(tmp_path / "examples"), split_ratios="train:1,eval:1", **settings)
    message = str(raised.value)
    assert "\n" not in message and "report it" not in message
    return message


# --- Cells -----------------------------------------------------------------------------------------------


def test_the_issues_50_mb_cell_is_refused_by_default_naming_file_line_and_column(tmp_path):
    data = write_csv(tmp_path / "big.csv", rows(n7="A" * FIFTY_MB))
    message = refusal(tmp_path, data)
    assert message.startswith(f"{data}, line 9, column 'note': a cell of {FIFTY_MB} bytes, over the "
                              f"{DEFAULT_MAX_CELL_BYTES}-byte limit (--max-cell-bytes)")


def test_a_nul_byte_in_a_csv_cell_is_refused_whether_read_by_blocks_or_by_rows(tmp_path):
    data = write_csv(tmp_path / "nul.csv", rows(n31="Dre\x00am"))
    expected = f"{data}, line 33, column 'note': holds a NUL byte"
    assert refusal(tmp_path, data).startswith(expected)
    # A split by a column reads rows one by one: the same line.
    assert refusal(tmp_path, data, split_column="species").startswith(expected)


def test_a_nul_byte_in_a_csv_header_is_refused(tmp_path):
    data = write_csv(tmp_path / "header.csv", rows(), header=["id", "spe\x00cies", "note"])
    assert refusal(tmp_path, data) == (f"{data}, line 1: column 2's name holds a NUL byte (\\x00): remove it from "
                                       "the header.")


def test_the_limit_counts_utf8_bytes_and_a_cell_at_the_limit_passes(tmp_path):
    note = "é" * 600  # 1200 bytes in 600 characters
    data = write_csv(tmp_path / "accents.csv", rows(n4=note))
    metadata = ingest_examples(data, str(tmp_path / "at-limit"), split_ratios="train:1,eval:1", max_cell_bytes=1200)
    assert sum(metadata["row_counts"].values()) == 60
    assert refusal(tmp_path, data, max_cell_bytes=1199).startswith(
        f"{data}, line 6, column 'note': a cell of 1200 bytes, over the 1199-byte limit")


def test_the_serving_sample_is_held_to_the_same_limits(tmp_path):
    sample = write_csv(tmp_path / "serving.csv", rows(20, n3="x\x00"))
    with pytest.raises(StageError, match=r"serving\.csv, line 5, column 'note': holds a NUL byte"):
        ingest_serving_sample(sample, str(tmp_path / "serving"))


def typed_rows(**changed):
    return [{"id": i, "note": changed.get(f"n{i}", f"seen on day {i}"), "raw": b"\x00\x01" * 4} for i in range(40)]


def write_parquet(path, data):
    pq.write_table(pa.Table.from_pylist(data, schema=pa.schema([("id", pa.int64()), ("note", pa.string()),
                                                                 ("raw", pa.binary())])), path, row_group_size=16)
    return str(path)


def write_avro(path, data):
    schema = {"type": "record", "name": "Row", "fields": [{"name": "id", "type": "long"},
                                                          {"name": "note", "type": "string"},
                                                          {"name": "raw", "type": "bytes"}]}
    with open(path, "wb") as sink:
        fastavro.writer(sink, schema, data)
    return str(path)


def write_tfrecord(path, data):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in data:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "id": tf.train.Feature(int64_list=tf.train.Int64List(value=[row["id"]])),
                "note": tf.train.Feature(bytes_list=tf.train.BytesList(value=[row["note"].encode()])),
                "raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[row["raw"]])),
            })).SerializeToString())
    return str(path)


@pytest.mark.parametrize("writer,where,kind", [
    (write_parquet, "row 21", "column"),  # in the second row group of 16
    (write_avro, "record 21", "field"),
    (write_tfrecord, "record 21", "feature"),
])
def test_typed_sources_refuse_an_outsized_value_and_keep_binary_values_with_nul_bytes(tmp_path, writer, where,
                                                                                      kind):
    extension = writer.__name__.removeprefix("write_")
    fine = writer(tmp_path / f"fine.{extension}", typed_rows())  # "raw" holds NUL bytes: binary, accepted
    assert sum(ingest_examples(fine, str(tmp_path / "fine"), split_ratios="train:1,eval:1",
                               min_eval_examples=1)["row_counts"].values()) == 40
    big = writer(tmp_path / f"big.{extension}", typed_rows(n20="y" * 5000))
    assert refusal(tmp_path, big, max_cell_bytes=4096, min_eval_examples=1).startswith(
        f"{big}, {where}, {kind} 'note': a cell of 5000 bytes, over the 4096-byte limit (--max-cell-bytes)")


@pytest.mark.parametrize("writer,where,kind", [(write_parquet, "row 21", "column"), (write_avro, "record 21", "field")])
def test_typed_sources_refuse_a_nul_byte_in_text(tmp_path, writer, where, kind):
    data = writer(tmp_path / f"nul.{writer.__name__.removeprefix('write_')}", typed_rows(n20="Bisc\x00oe"))
    assert refusal(tmp_path, data, min_eval_examples=1).startswith(f"{data}, {where}, {kind} 'note': holds a NUL byte")


@pytest.mark.slow
def test_database_rows_are_held_to_the_same_limits(tmp_path, database_url):
    query = ("SELECT g AS id, CASE WHEN g = 7 THEN repeat('x', 5000) ELSE 'fine' END AS note "
             "FROM generate_series(1, 40) AS g")
    message = refusal(tmp_path, "", query=query, query_partition_column="id", max_cell_bytes=4096,
                      min_eval_examples=1)
    assert message.startswith("--query \"SELECT g AS id, CASE WHEN g = 7 THEN repeat('x', 5000)")
    assert message.endswith("the row where id = 7, column 'note': a cell of 5000 bytes, over the 4096-byte limit "
                            "(--max-cell-bytes): shorten or drop the value, or raise --max-cell-bytes if values this "
                            "large are meant to be there.")
    assert database_url not in message


# --- Flags ----------------------------------------------------------------------------------------------


def one_line_refusal(capsys, argv):
    """Runs the command line in this process; its exit status and its one line of error."""
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        status = exit_.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert status in (1, 2), lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ") and "report it" not in lines[0] and "Traceback" not in lines[0]
    return lines[0]


@pytest.fixture
def places(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    return {"file": str(a_file), "folder": str(tmp_path / "a-folder"), "missing": str(tmp_path / "missing"),
            "root": str(tmp_path / "outputs")}


LONG_NAME = "m" * 300
RUN_CASES = [
    (["--split-ratios", "train:²,eval:1"], "--split-ratios 'train:²,eval:1': write it as name:weight pairs"),
    (["--split-ratios", "train:0,eval:1"], "whole weights from 1 to"),
    (["--split-ratios", "train:1,test:1"], "must name 'train' and 'eval' once each"),
    (["--split-cutoff", "2008"], "--split-cutoff '2008' needs --split-column"),
    (["--model-name", LONG_NAME], "has 300 characters"),
    (["--model-name", "../up"], "is not a model name"),
    (["--train-steps", "²"], "argument --train-steps: invalid int value: '²': give a whole number in ASCII digits"),
    (["--train-steps", "0"], "--train-steps 0: give a whole number from 1 to 2147483647"),
    (["--train-steps", "-5"], "--train-steps -5: give a whole number from 1"),
    (["--train-steps", str(10 ** 30)], "--train-steps 1000000000000000000000000000000: give a whole number"),
    (["--span", "-1"], "--span -1: give a whole number from 0"),
    (["--query-partitions", "0"], "--query-partitions 0: give a whole number from 1"),
    (["--min-slice-examples", "-1"], "--min-slice-examples -1: give a whole number from 0"),
    (["--threshold", "nan"], "--threshold nan can never pass"),
    (["--threshold", "inf"], "--threshold inf can never pass"),
    (["--threshold", "2"], "--threshold 2 can never pass"),
    (["--threshold", "-5"], "--threshold -5: give a threshold from 0 to 1"),
    (["--threshold", "-inf"], "argument --threshold: expected one argument: give it a value (one that starts with"),
    (["--threshold", "²"], "argument --threshold: invalid float value: '²': give a number"),
    (["--slice-threshold", "nan"], "--slice-threshold nan could never pass"),
    (["--tolerance", "inf"], "--tolerance inf: give a finite number"),
    (["--tolerance", "nan"], "--tolerance nan: give a finite number"),
    (["--drift-threshold", "nan"], "--drift-threshold 'nan': a threshold is a number of 0 or more"),
    (["--drift-threshold", "fare=nan"], "a threshold is a number of 0 or more"),
    (["--drift-threshold", "=0.3"], "--drift-threshold '=0.3': name the column before '='"),
    (["--drift-threshold", "fare==0.3"], "give a number (e.g. 0.1), or COLUMN=NUMBER"),
    (["--skew-threshold", "-1"], "--skew-threshold '-1': a threshold is a number of 0 or more"),
    (["--max-cell-bytes", "0"], "--max-cell-bytes 0: give a whole number of bytes from 1 to 1073741824"),
    (["--max-cell-bytes", str(2 ** 40)], "--max-cell-bytes 1099511627776: give a whole number of bytes"),
    (["--csv-delimiter", "::"], "--csv-delimiter '::' is not a delimiter ingest reads"),
    (["--hyperparameters", "[1]"], "is not a JSON object"),
    (["--data-format", "xml"], "argument --data-format: invalid choice: 'xml'"),
    (["--serving-root", ""], "--serving-root is empty"),
    (["--serving-root", "{file}"], "--serving-root '{file}' is a file: give a folder for the published models"),
    (["--serving-root", "{file}/models"], "lies below {file}, which is a file"),
    (["--statistics-root", "{file}"], "--statistics-root '{file}' is a file"),
    (["--pipeline-root", "{file}"], "--pipeline-root '{file}' is a file"),
    (["--schema", "{folder}"], "--schema '{folder}' is a folder"),
    (["--schema", "{missing}.pbtxt"], "--schema '{missing}.pbtxt' does not exist"),
    (["--module", "{missing}.py"], "--module '{missing}.py' does not exist"),
    (["--data", "{missing}/*.csv"], "No file matches --data '{missing}/*.csv'"),
    (["--serving-data", "{missing}.csv"], "No file matches --serving-data"),
    (["--summary-json", "{folder}"], "--summary-json '{folder}' is a folder"),
    (["--summary-json", "{file}/summary.json"], "{file} is a file, not a folder"),
    (["--dataflow-max-workers", "-1"], "--dataflow-max-workers -1: give a whole number from 0"),
    (["--image", ""], "--image is empty"),
]


@pytest.mark.parametrize("flags,expected", RUN_CASES, ids=[" ".join(flags)[:40] for flags, _ in RUN_CASES])
def test_run_refuses_each_hostile_flag_in_one_line_before_anything_runs(capsys, places, flags, expected):
    base = ["run", "--pipeline-root", places["root"], "--serving-root", places["root"] + "-serving",
            "--statistics-root", places["root"] + "-statistics"]
    line = one_line_refusal(capsys, base + [flag.format(**places) for flag in flags])
    assert expected.format(**places) in line
    assert not os.path.exists(places["root"]), "the run's folder was made: something ran"


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("spec") / "pipeline.yaml")
    assert main(["compile", "--output", path]) == 0
    return path


SUBMIT_CASES = [
    (["--param", "split_ratios=train:²,eval:1"], "--param split_ratios 'train:²,eval:1': write it as name:weight"),
    (["--param", "train_steps=-1"], "--param train_steps -1: give a whole number from 1"),
    (["--param", "span=-1"], "--param span -1: give a whole number from 0"),
    (["--param", "threshold=NaN"], "--param threshold nan can never pass"),
    (["--param", "threshold=-0.5"], "--param threshold -0.5: give a threshold from 0 to 1"),
    (["--param", "tolerance=inf"], "--param tolerance inf: give a finite number"),
    (["--param", "drift_threshold=-1"], "--param drift_threshold -1.0: a threshold is a number of 0 or more"),
    (["--param", "drift_column_thresholds=fare=nan"], "--param drift_column_thresholds fare= 'nan'"),
    (["--param", "model_name=" + LONG_NAME], "--param model_name '" + LONG_NAME + "' has 300 characters"),
    (["--param", "hyperparameters=[1]"], "--param hyperparameters '[1]' is not a JSON object"),
    (["--param", "data_format=xml"], "--param data_format 'xml': give one of csv, parquet, avro, tfrecord"),
    (["--param", "max_cell_bytes=0"], "--param max_cell_bytes 0: give a whole number of bytes"),
    (["--param", "serving_root="], "--param serving_root is empty"),
    (["--param", "split_cutoff=5"], "--param split_cutoff '5' needs --param split_column"),
    (["--timeout", "-1", "--wait"], "--timeout -1: give a whole number from 1"),
    (["--max-concurrency", "0"], "--max-concurrency 0: give a whole number from 1"),
    (["--version-name", LONG_NAME], "--version-name has 300 characters: give at most 100"),
]


@pytest.mark.parametrize("flags,expected", SUBMIT_CASES, ids=[" ".join(flags)[:40] for flags, _ in SUBMIT_CASES])
def test_submit_refuses_each_hostile_flag_and_param_before_contacting_anything(capsys, spec, flags, expected):
    # Port 9 (discard) on loopback: were anything sent, the refusal would be about the connection instead.
    argv = ["submit", "--host", "http://127.0.0.1:9", "--spec", spec, "--param", "serving_root=/mnt/serving", *flags]
    assert expected in one_line_refusal(capsys, argv)


@pytest.mark.parametrize("argv,expected", [
    (["submit", "--host", "localhost:8888"], "--host 'localhost:8888' is not an http:// or https:// URL"),
    (["compile", "--output", "{folder}"], "--output '{folder}': give a path ending in .yaml"),
    (["compile", "--output", "{file}/pipeline.yaml"], "{file} is a file, not a folder"),
    (["compile", "--kfp-volume", "State_Volume!"], "--kfp-volume 'State_Volume!' is not a Kubernetes "
                                                   "PersistentVolumeClaim name"),
    (["compile", "--kfp-s3-endpoint", "minio:9000"], "--kfp-s3-endpoint 'minio:9000' is not an http://"),
    (["compile", "--image", " "], "--image is empty"),
    (["models", "--serving-root", "{file}"], "--serving-root '{file}' is a file"),
])
def test_compile_submit_and_models_flags_are_refused_in_one_line(capsys, places, argv, expected):
    assert expected.format(**places) in one_line_refusal(capsys, [arg.format(**places) for arg in argv])


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder: run the tests as a user to check "
                                              "this")
def test_a_folder_this_user_cannot_write_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(StageError, match="is not readable and writable by this user"):
        check_folder(str(locked / "serving"), "--serving-root", "the published models")
    with pytest.raises(StageError, match="is not readable and writable by this user"):
        check_folder(str(locked), "--serving-root", "the published models")


def test_stages_still_refuse_hostile_values_from_a_spec_run_on_a_dashboard(tmp_path):
    """A spec run from a dashboard takes any value: the stages give the same one line."""
    with pytest.raises(StageError, match=r"--split-ratios 'train:²,eval:1': write it as name:weight pairs"):
        ingest_examples("", str(tmp_path / "examples"), split_ratios="train:²,eval:1")
    with pytest.raises(StageError, match="--max-cell-bytes 0: give a whole number of bytes"):
        ingest_examples("", str(tmp_path / "examples"), max_cell_bytes=0)
    for threshold in (math.nan, -1.0):  # measured before these checks: an unexpected error, "please report it"
        with pytest.raises(StageError, match="--drift-threshold .*: a threshold is a number of 0 or more"):
            validate_statistics(str(tmp_path / "statistics"), str(tmp_path / "schema"), str(tmp_path / "anomalies"),
                                drift_threshold=threshold)
    with pytest.raises(StageError, match="--tolerance nan: give a finite number"):
        check_thresholds("classification", 0.8, 0.0, tolerance=math.nan)  # evaluate's first check
    with pytest.raises(StageError, match="--threshold -5: give a threshold from 0 to 1"):
        check_thresholds("regression", -5.0)


@pytest.mark.slow
def test_the_cell_limit_reaches_ingest_through_the_compiled_spec(tmp_path):
    """One whole run: --max-cell-bytes travels as the spec's max_cell_bytes parameter, and the ingest stage's
    refusal is the run's one line; nothing is published."""
    import subprocess
    import sys

    from helpers import REPO

    data = write_csv(tmp_path / "notes.csv", rows(n12="z" * 300))
    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--data", data, "--max-cell-bytes", "200",
         "--serving-root", str(tmp_path / "serving"), "--pipeline-root", str(tmp_path / "outputs"),
         "--statistics-root", str(tmp_path / "statistics")], capture_output=True, text=True, timeout=600)
    assert process.returncode != 0
    output = process.stdout + process.stderr
    assert (f"ingest: {data}, line 14, column 'note': a cell of 300 bytes, over the 200-byte limit "
            "(--max-cell-bytes)") in output
    assert "Traceback" not in output and "report it" not in output
    assert not os.path.exists(tmp_path / "serving")
