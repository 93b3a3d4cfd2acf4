"""Every source and split mode through `python pipeline.py run`, on the penguins data in each format.

CSV with the hash split is the demo run (`test_end_to_end.py`); here, each other source runs the whole
pipeline once with another split mode, with few training steps: Parquet with given split files, Avro
split by a year cut-off, TFRecords of tf.Examples split by a hash of a column, and a PostgreSQL query
read in partitions with the hash split. The database URL reaches ingest only through the environment.
"""
import csv
import glob
import os

import fastavro
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from components.stage_logic.ingest import demo_data_pattern
from postgres_server import PASSWORD, READER_PASSWORD
from test_end_to_end import NUMERIC, run_pipeline

# A whole run per source, with a real PostgreSQL server.
pytestmark = pytest.mark.slow

FIELDS = [("id", "int"), ("species", "string"), ("island", "string"), ("bill_length_mm", "float"),
          ("bill_depth_mm", "float"), ("flipper_length_mm", "int"), ("body_mass_g", "int"), ("sex", "string"),
          ("year", "int")]
QUICK = ["--train-steps", "20", "--threshold", "0", "--statistics-root", ""]


@pytest.fixture(scope="module")
def penguins():
    """The demo rows, typed, with None for NA and an `id` column."""
    with open(demo_data_pattern(), newline="") as source:
        rows = list(csv.DictReader(source))
    return [{"id": i, **{name: None if value == "NA" else NUMERIC[name](value) if name in NUMERIC else value
                         for name, value in row.items()}} for i, row in enumerate(rows)]


def write_parquet_splits(folder, rows):
    schema = pa.schema([(name, {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}[kind])
                        for name, kind in FIELDS])
    os.makedirs(folder)
    for split, part in (("train", [r for r in rows if r["id"] % 4]), ("eval", [r for r in rows if not r["id"] % 4])):
        pq.write_table(pa.Table.from_pylist(part, schema=schema), os.path.join(folder, f"{split}.parquet"))
    return os.path.join(folder, "{SPLIT}.parquet")


def write_avro(path, rows):
    kinds = {"int": "long", "float": "double", "string": "string"}
    schema = {"type": "record", "name": "Penguin",
              "fields": [{"name": name, "type": ["null", kinds[kind]]} for name, kind in FIELDS]}
    with open(path, "wb") as sink:
        fastavro.writer(sink, fastavro.parse_schema(schema), rows)
    return path


def write_tfrecords(path, rows):
    with tf.io.TFRecordWriter(path) as writer:
        for row in rows:
            feature = {}
            for name, kind in FIELDS:
                value = row[name]
                if value is None:
                    continue
                feature[name] = (tf.train.Feature(int64_list=tf.train.Int64List(value=[value])) if kind == "int" else
                                 tf.train.Feature(float_list=tf.train.FloatList(value=[value])) if kind == "float" else
                                 tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()])))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return path


def load_table(url, rows):
    kinds = {"int": "integer", "float": "double precision", "string": "text"}
    with psycopg.connect(url) as connection:
        connection.execute("DROP TABLE IF EXISTS penguins")
        connection.execute(f"CREATE TABLE penguins ({', '.join(f'{n} {kinds[k]}' for n, k in FIELDS)})")
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO penguins VALUES ({', '.join(['%s'] * len(FIELDS))})",
                               [tuple(row[name] for name, _ in FIELDS) for row in rows])


def split_sizes(pipeline_root):
    sizes = {}
    for split in ("train", "eval"):
        files = glob.glob(os.path.join(pipeline_root, "*", "ingest", "examples", f"Split-{split}", "*.gz"))
        sizes[split] = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
    return sizes


@pytest.mark.parametrize("source", ["parquet given splits", "avro year cut-off", "tfrecord column hash",
                                    "postgresql partitioned query"])
def test_every_source_and_split_mode_runs_end_to_end(tmp_path, penguins, postgres_url, reader_url, monkeypatch,
                                                      source):
    data = tmp_path / "data"
    os.makedirs(data)
    if source == "parquet given splits":
        flags = ["--data", write_parquet_splits(str(data / "parquet"), penguins)]
        expected = {"train": sum(1 for row in penguins if row["id"] % 4),
                    "eval": sum(1 for row in penguins if not row["id"] % 4)}
    elif source == "avro year cut-off":
        flags = ["--data", write_avro(str(data / "penguins.avro"), penguins), "--split-column", "year",
                 "--split-cutoff", "2009"]
        expected = {"train": 224, "eval": 120}
    elif source == "tfrecord column hash":
        flags = ["--data", write_tfrecords(str(data / "penguins.tfrecord"), penguins), "--split-column", "id"]
        expected = None
    else:
        load_table(postgres_url, penguins)
        # As the read-only role docs/sources.md documents: ingest refuses the superuser that owns the table.
        monkeypatch.setenv("LIVING_PIPELINE_DATABASE_URL", reader_url)
        flags = ["--query", "SELECT * FROM penguins", "--query-partition-column", "id"]
        expected = None
    process, result = run_pipeline(tmp_path, *flags, *QUICK)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert all(stage["status"] == "SUCCESS" for stage in result["stages"].values()), result["stages"]
    sizes = split_sizes(str(tmp_path / "outputs"))
    assert sum(sizes.values()) == len(penguins) == 344
    if expected:
        assert sizes == expected
    else:
        assert 0.55 < sizes["train"] / 344 < 0.78, "about two to one"
    assert result["outputs"]["eval_metrics"]["example_count"] == sizes["eval"]
    if source.startswith("postgresql"):
        assert "LIVING_PIPELINE_DATABASE_URL" not in (tmp_path / "outputs" / "pipeline.yaml").read_text()
        written = [process.stdout, process.stderr]
        for path in glob.glob(str(tmp_path / "outputs" / "**" / "*"), recursive=True):
            if os.path.isfile(path):
                with open(path, "rb") as artifact:
                    written.append(artifact.read().decode(errors="replace"))
        assert any("SELECT * FROM penguins" in text for text in written), "the query is recorded"
        assert not any(secret in text for text in written for secret in (PASSWORD, READER_PASSWORD, reader_url)), \
            "the URL never is"


@pytest.mark.parametrize("case,expected", [
    ("failing query", "The PostgreSQL query --query 'SELECT * FROM pengiuns' failed: relation \"pengiuns\" does "
                      "not exist: fix the query."),
    ("corrupt avro", "penguins.avro is not a readable Avro file"),
])
def test_a_bad_source_stops_the_run_with_one_line_naming_it(tmp_path, reader_url, monkeypatch, case, expected):
    if case == "failing query":
        monkeypatch.setenv("LIVING_PIPELINE_DATABASE_URL", reader_url)
        flags = ["--query", "SELECT * FROM pengiuns"]
    else:
        (tmp_path / "penguins.avro").write_bytes(b"Obj\x01 not avro at all")
        flags = ["--data", str(tmp_path / "penguins.avro")]
    process, result = run_pipeline(tmp_path, *flags)
    assert process.returncode == 1
    assert len(result["errors"]) == 1 and expected in result["errors"][0]
    assert [name for name, stage in result["stages"].items() if stage["status"] == "FAILURE"] == ["ingest"]
    assert READER_PASSWORD not in process.stdout + process.stderr
    assert not os.path.exists(tmp_path / "serving")
