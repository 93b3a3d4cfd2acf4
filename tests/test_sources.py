"""Ingest from every source and in every split mode, on one small data set written in each format.

The same rows as CSV, Parquet (pyarrow), Avro (fastavro), TFRecords of tf.Examples (TensorFlow) and a
table of a real PostgreSQL server must give the same tf.Examples with the same types, and, but for CSV
(whose hash split hashes the rows' text, as it always has), in the same splits; typed sources keep
timestamps, booleans, bytes, decimals and times as documented; bad sources fail with one line naming them.
"""
import csv
import datetime
import decimal
import glob
import os

import fastavro
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from components.data import layout
from components.errors import StageError
from components.stage_logic.ingest import ingest_examples

UTC = datetime.timezone.utc
COLUMNS = ["id", "species", "bill_length_mm", "body_mass_g", "observed_on"]
ROWS = [{
    "id": i,
    "species": ("Adelie", "Gentoo", "Chinstrap")[i % 3],
    "bill_length_mm": None if i % 11 == 0 else round(35 + i * 0.37, 2),
    "body_mass_g": None if i % 13 == 5 else 3000 + 25 * i,
    "observed_on": datetime.date(2008, 1, 1) + datetime.timedelta(days=6 * i),
} for i in range(60)]
FIRST_HALF = datetime.date(2008, 7, 1)


def read_split(examples_dir, split):
    """A split's examples as comparable values: {feature: (kind, values)} per example, sorted."""
    files = glob.glob(layout.examples_pattern(examples_dir, split))
    examples = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        examples.append(tuple(sorted(
            (name, feature.WhichOneof("kind"), tuple(getattr(feature, feature.WhichOneof("kind")).value))
            for name, feature in example.features.feature.items())))
    return sorted(examples)


def read_all(examples_dir, splits=("train", "eval")):
    return {split: read_split(examples_dir, split) for split in splits}


def all_rows(examples_dir):
    return sorted(read_split(examples_dir, "train") + read_split(examples_dir, "eval"))


def write_csv(path, rows=ROWS):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(["NA" if row[c] is None else row[c].isoformat() if c == "observed_on" else row[c]
                             for c in COLUMNS])
    return str(path)


PARQUET_SCHEMA = pa.schema([("id", pa.int64()), ("species", pa.string()), ("bill_length_mm", pa.float64()),
                            ("body_mass_g", pa.int32()), ("observed_on", pa.date32())])


def write_parquet(path, rows=ROWS, row_group_size=16):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA), path, row_group_size=row_group_size)
    return str(path)


AVRO_SCHEMA = {"type": "record", "name": "Penguin", "fields": [
    {"name": "id", "type": "long"}, {"name": "species", "type": "string"},
    {"name": "bill_length_mm", "type": ["null", "double"]}, {"name": "body_mass_g", "type": ["null", "int"]},
    {"name": "observed_on", "type": {"type": "int", "logicalType": "date"}}]}


def write_avro(path, rows=ROWS, schema=AVRO_SCHEMA):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as sink:
        fastavro.writer(sink, fastavro.parse_schema(schema), rows)
    return str(path)


def write_tfrecord(path, rows=ROWS):
    """tf.Examples written with TensorFlow's own API, as another system would hand them over."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in rows:
            feature = {"id": tf.train.Feature(int64_list=tf.train.Int64List(value=[row["id"]])),
                       "species": tf.train.Feature(bytes_list=tf.train.BytesList(value=[row["species"].encode()])),
                       "observed_on": tf.train.Feature(bytes_list=tf.train.BytesList(
                           value=[row["observed_on"].isoformat().encode()]))}
            if row["bill_length_mm"] is not None:
                feature["bill_length_mm"] = tf.train.Feature(float_list=tf.train.FloatList(
                    value=[row["bill_length_mm"]]))
            if row["body_mass_g"] is not None:
                feature["body_mass_g"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[row["body_mass_g"]]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return str(path)


def load_table(url, name="penguins", rows=ROWS):
    with psycopg.connect(url) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {name}")
        connection.execute(f"CREATE TABLE {name} (id bigint, species text, bill_length_mm double precision, "
                           "body_mass_g integer, observed_on date)")
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {name} VALUES (%s, %s, %s, %s, %s)",
                               [tuple(row[c] for c in COLUMNS) for row in rows])


WRITERS = {"csv": write_csv, "parquet": write_parquet, "avro": write_avro, "tfrecord.gz": write_tfrecord}
EXPECTED_TYPES = {"id": "int", "species": "string", "bill_length_mm": "float", "body_mass_g": "int",
                  "observed_on": "string"}


@pytest.fixture(scope="module")
def csv_examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("csv")
    metadata = ingest_examples(write_csv(root / "data.csv"), str(root / "examples"))
    return str(root / "examples"), metadata


@pytest.fixture(scope="module")
def parquet_examples(tmp_path_factory):
    """The reference for typed sources' splits."""
    root = tmp_path_factory.mktemp("parquet")
    metadata = ingest_examples(write_parquet(str(root / "data.parquet")), str(root / "examples"))
    return str(root / "examples"), metadata


def test_csv_reference_has_the_expected_rows_and_types(csv_examples):
    path, metadata = csv_examples
    assert sum(metadata["row_counts"].values()) == 60
    assert metadata["column_types"] == EXPECTED_TYPES
    examples = read_all(path)
    assert len(examples["train"]) == metadata["row_counts"]["train"] > 30
    everything = examples["train"] + examples["eval"]
    assert sum(1 for e in everything if "bill_length_mm" not in dict((n, v) for n, *v in e)) == 6
    assert sum(1 for e in everything if "body_mass_g" not in dict((n, v) for n, *v in e)) == 5


@pytest.mark.parametrize("extension", ["parquet", "avro", "tfrecord.gz"])
def test_every_format_gives_the_same_examples(tmp_path, csv_examples, parquet_examples, extension):
    data = WRITERS[extension](str(tmp_path / f"data.{extension}"))
    metadata = ingest_examples(data, str(tmp_path / "examples"))
    assert metadata["source"] == extension.split(".")[0]
    assert metadata["column_types"] == EXPECTED_TYPES
    assert all_rows(str(tmp_path / "examples")) == all_rows(csv_examples[0])
    assert metadata["row_counts"] == parquet_examples[1]["row_counts"]
    assert read_all(str(tmp_path / "examples")) == read_all(parquet_examples[0]), "the same splits"


@pytest.mark.slow
def test_postgresql_gives_the_same_examples_read_in_parallel_partitions(tmp_path, csv_examples, parquet_examples,
                                                                         database_url):
    load_table(database_url)
    whole = ingest_examples("", str(tmp_path / "whole"), query="SELECT * FROM penguins;")
    assert whole["source"] == "postgresql" and whole["query_partitions"] == 1
    assert whole["column_types"] == EXPECTED_TYPES
    assert all_rows(str(tmp_path / "whole")) == all_rows(csv_examples[0])
    assert read_all(str(tmp_path / "whole")) == read_all(parquet_examples[0])

    partitioned = ingest_examples("", str(tmp_path / "partitioned"), query="SELECT * FROM penguins",
                                  query_partition_column="id", query_partitions=4)
    assert partitioned["query_partitions"] == 4
    assert partitioned["row_counts"] == parquet_examples[1]["row_counts"]
    assert read_all(str(tmp_path / "partitioned")) == read_all(parquet_examples[0])
    assert database_url not in str(partitioned)


@pytest.mark.slow
def test_a_partition_column_with_nulls_reads_them_too(tmp_path, database_url):
    """body_mass_g is null in 5 rows: they are read as a partition of their own."""
    load_table(database_url, "with_nulls")
    metadata = ingest_examples("", str(tmp_path / "out"), query="SELECT * FROM with_nulls",
                               query_partition_column="body_mass_g", query_partitions=3)
    assert metadata["query_partitions"] == 4, "three ranges and the rows where the column is null"
    assert sum(metadata["row_counts"].values()) == 60


# --- Types ---------------------------------------------------------------------------------------

SEEN_AT = [datetime.datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC) + datetime.timedelta(hours=i)
           for i in range(6)]
TYPED_ROWS = [{"id": i, "seen_at": SEEN_AT[i], "flag": i % 2 == 0, "payload": bytes([i, 255, 0]),
               "price": decimal.Decimal(f"{i}.25"), "at_time": datetime.time(13, 45, i, 250000),
               "note": None if i == 3 else f"n{i}"} for i in range(6)]


def expected_typed_features(row):
    micros = (row["seen_at"] - datetime.datetime(1970, 1, 1, tzinfo=UTC)) // datetime.timedelta(microseconds=1)
    features = {"id": ("int64_list", (row["id"],)), "seen_at": ("int64_list", (micros,)),
                "flag": ("int64_list", (int(row["flag"]),)), "payload": ("bytes_list", (row["payload"],)),
                "price": ("float_list", (float(tf.constant(float(row["price"]), tf.float32).numpy()),)),
                "at_time": ("bytes_list", (row["at_time"].isoformat().encode(),))}
    if row["note"] is not None:
        features["note"] = ("bytes_list", (row["note"].encode(),))
    return tuple(sorted((name, kind, values) for name, (kind, values) in features.items()))


TYPED_COLUMN_TYPES = {"id": "int", "seen_at": "int", "flag": "int", "payload": "bytes", "price": "float",
                      "at_time": "string", "note": "string"}


def write_typed_parquet(path):
    schema = pa.schema([("id", pa.int64()), ("seen_at", pa.timestamp("us", tz="UTC")), ("flag", pa.bool_()),
                        ("payload", pa.binary()), ("price", pa.decimal128(8, 2)), ("at_time", pa.time64("us")),
                        ("note", pa.dictionary(pa.int8(), pa.string()))])
    pq.write_table(pa.Table.from_pylist(TYPED_ROWS, schema=schema), path)
    return path


def write_typed_avro(path):
    schema = {"type": "record", "name": "Typed", "fields": [
        {"name": "id", "type": "long"},
        {"name": "seen_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "flag", "type": "boolean"}, {"name": "payload", "type": "bytes"},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2}},
        {"name": "at_time", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "note", "type": ["null", "string"]}]}
    return write_avro(path, TYPED_ROWS, schema)


def typed_query(url):
    with psycopg.connect(url) as connection:
        connection.execute("DROP TABLE IF EXISTS typed")
        connection.execute("CREATE TABLE typed (id integer, seen_at timestamptz, flag boolean, payload bytea, "
                           "price numeric(8, 2), at_time time, note varchar(10))")
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO typed VALUES (%s, %s, %s, %s, %s, %s, %s)",
                               [tuple(row.values()) for row in TYPED_ROWS])
    return "SELECT * FROM typed"


@pytest.mark.slow
@pytest.mark.parametrize("source", ["parquet", "avro", "postgresql"])
def test_typed_sources_keep_timestamps_booleans_bytes_decimals_and_times(tmp_path, source, postgres_url,
                                                                          reader_url, monkeypatch):
    if source == "postgresql":
        monkeypatch.setenv("LIVING_PIPELINE_DATABASE_URL", reader_url)
        monkeypatch.setenv("PGTZ", "Europe/Paris")  # a session time zone other than UTC changes nothing
        arguments = {"data_pattern": "", "query": typed_query(postgres_url)}
    else:
        writer = write_typed_parquet if source == "parquet" else write_typed_avro
        arguments = {"data_pattern": writer(str(tmp_path / f"typed.{source}"))}
    metadata = ingest_examples(output_dir=str(tmp_path / "out"), split_ratios="train:1,eval:1", min_eval_examples=1,
                               **arguments)
    assert metadata["column_types"] == TYPED_COLUMN_TYPES
    examples = read_split(str(tmp_path / "out"), "train") + read_split(str(tmp_path / "out"), "eval")
    assert sorted(examples) == sorted(expected_typed_features(row) for row in TYPED_ROWS)


def test_naive_timestamps_are_utc_and_millisecond_parquet_scales(tmp_path):
    naive = [datetime.datetime(2024, 3, 1, 0, 0, 0, 5000), datetime.datetime(1969, 12, 31, 23, 59, 59)]
    table = pa.table({"at": pa.array(naive, pa.timestamp("ms"))})
    pq.write_table(table, str(tmp_path / "t.parquet"))
    metadata = ingest_examples(str(tmp_path / "t.parquet"), str(tmp_path / "out"), split_column="at",
                               split_cutoff="2000-01-01", min_eval_examples=1)
    assert metadata["row_counts"] == {"train": 1, "eval": 1}
    assert read_split(str(tmp_path / "out"), "eval") == [(("at", "int64_list", (1709251200005000,)),)]
    assert read_split(str(tmp_path / "out"), "train") == [(("at", "int64_list", (-1000000,)),)]


@pytest.mark.slow
def test_postgresql_json_becomes_text_and_unsupported_types_say_what_to_do(tmp_path, database_url):
    metadata = ingest_examples("", str(tmp_path / "json"), split_ratios="train:1,eval:1", min_eval_examples=1,
                               query="""SELECT id, '{"b": 1, "a": [2]}'::jsonb AS doc """
                                     """FROM generate_series(1, 20) AS id""")
    assert metadata["column_types"] == {"id": "int", "doc": "string"}
    examples = read_split(str(tmp_path / "json"), "train") + read_split(str(tmp_path / "json"), "eval")
    assert sorted(examples, key=lambda example: example[1][2]) == [
        (("doc", "bytes_list", (b'{"a": [2], "b": 1}',)), ("id", "int64_list", (number,))) for number in range(1, 21)]
    with pytest.raises(StageError, match=r"column 'waited' has PostgreSQL type interval, which ingest does not "
                                         r"take: cast it in the query"):
        ingest_examples("", str(tmp_path / "out"), query="SELECT interval '1 day' AS waited")


# --- Split modes ---------------------------------------------------------------------------------

def test_given_split_folders_are_kept(tmp_path):
    write_csv(tmp_path / "train" / "part-1.csv", ROWS[:25])
    write_csv(tmp_path / "train" / "part-2.csv", ROWS[25:40])
    write_csv(tmp_path / "eval" / "part-1.csv", ROWS[40:52])
    write_csv(tmp_path / "test" / "part-1.csv", ROWS[52:])
    metadata = ingest_examples(str(tmp_path / "{SPLIT}" / "*.csv"), str(tmp_path / "out"))
    assert metadata["split_mode"] == "given"
    assert metadata["split_names"] == ["train", "eval", "test"]
    assert metadata["row_counts"] == {"train": 40, "eval": 12, "test": 8}
    assert sorted(os.listdir(tmp_path / "out")) == ["Split-eval", "Split-test", "Split-train", "column_types.json"]


def test_given_split_files_with_spans(tmp_path):
    for span, size in ((1, 30), (2, 60)):
        write_parquet(str(tmp_path / f"span-{span}" / "train.parquet"), ROWS[:size - 10])
        write_parquet(str(tmp_path / f"span-{span}" / "eval.parquet"), ROWS[size - 10:size])
    metadata = ingest_examples(str(tmp_path / "span-{SPAN}" / "{SPLIT}.parquet"), str(tmp_path / "out"))
    assert (metadata["span"], metadata["row_counts"]) == (2, {"train": 50, "eval": 10})


def test_existing_examples_keep_their_splits(tmp_path, csv_examples):
    """TFX's ImportExampleGen: another pipeline's examples, split folders and all, pass through unchanged."""
    metadata = ingest_examples(os.path.join(csv_examples[0], "Split-{SPLIT}", "*.gz"), str(tmp_path / "out"))
    assert metadata["row_counts"] == csv_examples[1]["row_counts"]
    assert read_all(str(tmp_path / "out")) == read_all(csv_examples[0])


@pytest.mark.slow
def test_split_by_date_cutoff(tmp_path, database_url):
    data = write_avro(str(tmp_path / "data.avro"))
    expected = {"train": sum(row["observed_on"] < FIRST_HALF for row in ROWS),
                "eval": sum(row["observed_on"] >= FIRST_HALF for row in ROWS)}
    assert expected == {"train": 31, "eval": 29}
    metadata = ingest_examples(data, str(tmp_path / "avro"), split_column="observed_on", split_cutoff="2008-07-01")
    assert metadata["split_mode"] == "column cutoff" and metadata["row_counts"] == expected
    dates = {split: {value.decode() for example in examples for name, _, (value,) in example if name == "observed_on"}
             for split, examples in read_all(str(tmp_path / "avro")).items()}
    assert max(dates["train"]) == "2008-06-29" and min(dates["eval"]) == "2008-07-05"

    load_table(database_url)
    metadata = ingest_examples("", str(tmp_path / "sql"), query="SELECT * FROM penguins", split_column="id",
                               split_cutoff="45")
    assert metadata["row_counts"] == {"train": 45, "eval": 15}


def test_split_by_column_hash_keeps_groups_together(tmp_path):
    data = write_parquet(str(tmp_path / "data.parquet"))
    metadata = ingest_examples(data, str(tmp_path / "out"), split_column="observed_on", split_ratios="train:1,eval:1")
    assert metadata["split_mode"] == "column hash"
    assert sum(metadata["row_counts"].values()) == 60 and all(metadata["row_counts"].values())
    metadata = ingest_examples(data, str(tmp_path / "species"), split_column="species", split_ratios="train:1,eval:1")
    by_split = {split: {value for example in examples for name, _, (value,) in example if name == "species"}
                for split, examples in read_all(str(tmp_path / "species")).items()}
    assert not by_split["train"] & by_split["eval"], "a species is never in both splits"
    assert by_split["train"] | by_split["eval"] == {b"Adelie", b"Gentoo", b"Chinstrap"}


@pytest.mark.parametrize("settings,message", [
    ({"split_cutoff": "2008-07-01"}, "--split-cutoff '2008-07-01' needs --split-column"),
    ({"split_column": "weight", "split_cutoff": "3"}, "--split-column 'weight' is not a column of the data"),
    ({"split_column": "observed_on", "split_cutoff": "2001-01-01"},
     "The train split has no rows: .* with --split-cutoff '2001-01-01' on --split-column 'observed_on' "
     "gave train 0, eval"),
    ({"split_column": "body_mass_g", "split_cutoff": "4000"}, "A row has no value in --split-column 'body_mass_g'"),
    ({"split_column": "id", "split_cutoff": "soon"}, "--split-cutoff 'soon' is not a number, date or time"),
])
def test_bad_split_settings(tmp_path, settings, message):
    data = write_csv(tmp_path / "data.csv")
    with pytest.raises(StageError, match=message):
        ingest_examples(data, str(tmp_path / "out"), **settings)


def test_given_splits_need_train_and_eval(tmp_path):
    write_csv(tmp_path / "training" / "a.csv", ROWS[:30])
    write_csv(tmp_path / "eval" / "a.csv", ROWS[30:])
    with pytest.raises(StageError, match="found the splits eval, training: name the folders or files of two of "
                                         "them 'train' and 'eval'"):
        ingest_examples(str(tmp_path / "{SPLIT}" / "*.csv"), str(tmp_path / "out"))


# --- Bad sources ---------------------------------------------------------------------------------

def test_corrupt_parquet_names_the_file(tmp_path):
    write_parquet(str(tmp_path / "good.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(StageError, match=r"bad\.parquet is not a readable Parquet file \(.*\): replace or remove it"):
        ingest_examples(str(tmp_path / "*.parquet"), str(tmp_path / "out"))


def test_parquet_with_damaged_data_pages_names_the_file_and_row_group(tmp_path):
    path = write_parquet(str(tmp_path / "damaged.parquet"), row_group_size=60)
    content = bytearray(open(path, "rb").read())
    content[4:200] = b"\xff" * 196
    open(path, "wb").write(bytes(content))
    with pytest.raises(StageError, match=r"damaged\.parquet, row group 0: unreadable Parquet data"):
        ingest_examples(path, str(tmp_path / "out"))


def test_corrupt_avro_names_the_file(tmp_path):
    (tmp_path / "bad.avro").write_bytes(b"Obj\x01 broken")
    with pytest.raises(StageError, match=r"bad\.avro is not a readable Avro file \(.*\): replace or remove it"):
        ingest_examples(str(tmp_path / "bad.avro"), str(tmp_path / "out"))


def test_truncated_avro_names_the_file(tmp_path):
    path = write_avro(str(tmp_path / "cut.avro"))
    content = open(path, "rb").read()
    open(path, "wb").write(content[:-40])
    with pytest.raises(StageError, match=r"cut\.avro, after record \d+: unreadable Avro data"):
        ingest_examples(path, str(tmp_path / "out"))


def test_files_that_are_not_tfrecords_name_the_file(tmp_path):
    (tmp_path / "odd.tfrecord").write_bytes(b"just some text, not records")
    with pytest.raises(StageError, match=r"odd\.tfrecord, after record 0: not a TFRecord file of tf.Examples"):
        ingest_examples(str(tmp_path / "odd.tfrecord"), str(tmp_path / "out"))


def test_unknown_extension_asks_for_the_format(tmp_path):
    write_csv(tmp_path / "data.txt")
    with pytest.raises(StageError, match=r"Cannot tell the format of --data .*data\.txt.*pass --data-format"):
        ingest_examples(str(tmp_path / "data.txt"), str(tmp_path / "out"))
    metadata = ingest_examples(str(tmp_path / "data.txt"), str(tmp_path / "out"), data_format="csv")
    assert sum(metadata["row_counts"].values()) == 60


@pytest.mark.slow
def test_failing_query_names_the_query(tmp_path, database_url):
    with pytest.raises(StageError, match=r"The PostgreSQL query --query 'SELECT \* FROM no_such_table' failed: "
                                         r'relation "no_such_table" does not exist: fix the query\.'):
        ingest_examples("", str(tmp_path / "out"), query="SELECT * FROM no_such_table")


@pytest.mark.slow
def test_query_that_fails_while_reading_names_the_query(tmp_path, database_url):
    load_table(database_url)
    with pytest.raises(StageError, match=r"The PostgreSQL query --query 'SELECT id, 1 / \(id - 30\) AS x FROM "
                                         r"penguins' failed: division by zero"):
        ingest_examples("", str(tmp_path / "out"), query="SELECT id, 1 / (id - 30) AS x FROM penguins",
                        query_partition_column="id")


@pytest.mark.slow
def test_query_can_only_read(tmp_path, database_url):
    load_table(database_url)
    with psycopg.connect(database_url) as connection:
        connection.execute("CREATE SEQUENCE IF NOT EXISTS counter")
    with pytest.raises(StageError, match=r"^--query 'DELETE FROM penguins RETURNING \*' is not a read-only query"):
        ingest_examples("", str(tmp_path / "out"), query="DELETE FROM penguins RETURNING *")
    with pytest.raises(StageError, match=r"calls nextval\(\), which advances a sequence: ingest only runs queries"):
        ingest_examples("", str(tmp_path / "out"), query="SELECT nextval('counter') AS n")
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM penguins").fetchone()[0] == 60
        assert connection.execute("SELECT last_value, is_called FROM counter").fetchone() == (1, False)


INJECTION = "SELECT 1 AS one) AS x; COMMIT; DROP TABLE penguins; SELECT * FROM (SELECT 1 AS one"


def writing_queries(marker):
    """Queries that would change the database (or the server's disk) if they ran as written."""
    return [
        INJECTION,
        "SELECT 1 AS one) AS x; COMMIT; INSERT INTO penguins (id) VALUES (999); SELECT * FROM (SELECT 1 AS one",
        "SELECT 1 AS one) AS x; SET TRANSACTION READ WRITE; DELETE FROM penguins; SELECT * FROM (SELECT 1 AS one",
        "INSERT INTO penguins (id) VALUES (999)",
        "UPDATE penguins SET species = 'Dodo'",
        "DELETE FROM penguins",
        f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'",
        f"SELECT 1 AS one) AS x; COPY (SELECT 1) TO PROGRAM 'touch {marker}'; SELECT * FROM (SELECT 1 AS one",
        "WITH gone AS (DELETE FROM penguins RETURNING *) SELECT * FROM gone",
        "SELECT set_config('default_transaction_read_only', 'off', false) AS x) AS y; "
        "UPDATE penguins SET species = 'Dodo'; SELECT * FROM (SELECT 1 AS one",
    ]


def assert_penguins_untouched(url, marker):
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT id, species FROM penguins ORDER BY id").fetchall()
    assert rows == [(row["id"], row["species"]) for row in ROWS]
    assert not os.path.exists(marker), "COPY ... TO PROGRAM ran"


@pytest.mark.slow
def test_a_query_that_writes_or_holds_several_statements_fails_with_one_line_and_changes_nothing(
        tmp_path, database_url):
    load_table(database_url)
    marker = str(tmp_path / "copy-to-program-ran")
    os.chmod(tmp_path, 0o777)  # so that the server (user postgres) could create the marker, were COPY to run
    for query in writing_queries(marker):
        with pytest.raises(StageError) as raised:
            ingest_examples("", str(tmp_path / "out"), query=query)
        message = str(raised.value)
        assert "\n" not in message and message.startswith(("--query ", "The PostgreSQL query --query ")), message
        assert any(reason in message for reason in (
            "holds more than one statement", "is not a read-only query", "read-only transaction",
            "must be at the top level", "is not valid PostgreSQL", "calls set_config()")), message
        assert_penguins_untouched(database_url, marker)
    # PostgreSQL's grammar finds it is not one query before anything is sent.
    with pytest.raises(StageError, match=r"^--query 'SELECT 1 AS one\) AS x; COMMIT; DROP TABLE penguins; "
                                         r"SELECT \* FROM \(SELECT 1 A\.\.\.' is not valid PostgreSQL \(syntax "
                                         r"error at or near \"\)\""):
        ingest_examples("", str(tmp_path / "out"), query=INJECTION, query_partition_column="one")


@pytest.mark.slow
def test_the_partition_readers_cannot_write_either(tmp_path, database_url):
    """The readers on the Beam workers, given writing text directly (as if describe had been bypassed)."""
    from components.data.postgres import QuerySource, ReadQueryPartitions

    load_table(database_url)
    marker = str(tmp_path / "copy-to-program-ran")
    os.chmod(tmp_path, 0o777)
    for query in writing_queries(marker):
        for column, partition in (("", ("all",)), ("id", ("range", 0, 100)), ("id", ("null",))):
            reader = ReadQueryPartitions(QuerySource(query, {}, {}, [partition]), column)
            outputs = list(reader.process(partition))
            assert len(outputs) == 1 and outputs[0].tag == "errors", (query, outputs)
            assert_penguins_untouched(database_url, marker)


@pytest.mark.slow
def test_the_session_itself_is_read_only(database_url, reader_url):
    """Even a statement that escaped the transaction could not write: the session starts read-only."""
    from components.data.postgres import _connect

    load_table(database_url)
    with _connect(reader_url) as connection:
        connection.autocommit = True
        assert connection.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            connection.execute("DELETE FROM penguins")
    assert_penguins_untouched(database_url, "/nonexistent")


@pytest.mark.slow
def test_connection_failure_never_shows_the_password(tmp_path, postgres_url, monkeypatch):
    from postgres_server import PASSWORD

    wrong = postgres_url.replace(PASSWORD, "wrong-" + PASSWORD)
    monkeypatch.setenv("LIVING_PIPELINE_DATABASE_URL", wrong)
    with pytest.raises(StageError, match=r"Cannot connect to PostgreSQL with \$LIVING_PIPELINE_DATABASE_URL "
                                         r"\(.*password authentication failed.*\): set") as raised:
        ingest_examples("", str(tmp_path / "out"), query="SELECT 1 AS one")
    assert PASSWORD not in str(raised.value) and wrong not in str(raised.value)


@pytest.mark.slow
def test_libpq_variables_work_without_the_url(tmp_path, reader_url, monkeypatch):
    from psycopg.conninfo import conninfo_to_dict

    monkeypatch.delenv("LIVING_PIPELINE_DATABASE_URL", raising=False)
    settings = conninfo_to_dict(reader_url)
    for name, variable in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"), ("password", "PGPASSWORD"),
                           ("dbname", "PGDATABASE")):
        monkeypatch.setenv(variable, str(settings[name]))
    metadata = ingest_examples("", str(tmp_path / "out"), query="SELECT generate_series(1, 10) AS n",
                               split_ratios="train:1,eval:1", min_eval_examples=1)
    assert sum(metadata["row_counts"].values()) == 10


def test_data_and_query_together_are_refused(tmp_path):
    with pytest.raises(StageError, match="--data and --query are both given"):
        ingest_examples(write_csv(tmp_path / "d.csv"), str(tmp_path / "out"), query="SELECT 1")
