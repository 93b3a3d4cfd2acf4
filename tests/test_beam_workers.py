"""In process or in worker processes (components/platform/beam_workers.py, beam_options.py, beam_worker.py).

A Beam stage runs Beam's DirectRunner in its own process unless its input is large, in several files, and the
cores are free; --beam-args that set the mode always win. Whichever way it runs, the artifacts are the same:
the slow test runs ingest, statistics, transform and evaluate on the demo data in two worker processes and
compares what they write with the in-process artifacts of the session fixtures (tests/conftest.py). The
workers' peak memory is counted in the stage's, and they end without tracebacks.
"""
import csv
import glob
import os

import pytest
from apache_beam.options.pipeline_options import DirectOptions, SetupOptions

from components.platform import beam_options, beam_workers
from components.platform.beam_workers import MAX_WORKERS, MIN_INPUT_BYTES, choose
from helpers import approximately, records, transformed_columns

BIG = max(MIN_INPUT_BYTES.values())
IN_PROCESS = "--direct_running_mode=in_memory --direct_num_workers=1"
TWO_WORKERS = "--direct_running_mode=multi_processing --direct_num_workers=2"


def never_asked():
    raise AssertionError("the free cores were measured where the input alone decides")


def test_small_or_one_file_inputs_stay_in_process_and_large_ones_take_the_free_cores():
    demo = choose("ingest", [[15_000]], cores=2, idle=never_asked)
    assert demo.workers == 1 and demo.line() == (
        "living-pipeline beam: in process (input 15 kB, under the 24 MB that pays for workers)")
    assert choose("ingest", [[4 * BIG]], cores=2, idle=never_asked).workers == 1  # a worker reads a whole file
    assert choose("transform", [[BIG] * 2, [BIG]], cores=2, idle=lambda: 2.0).workers == 2
    assert choose("transform", [[BIG], [BIG]], cores=2, idle=never_asked).workers == 1  # one file a split
    assert choose("ingest", None, cores=2, idle=never_asked).why == "input size not known"  # a database query
    assert choose("ingest", [[BIG] * 4], cores=1, idle=never_asked).workers == 1

    idle = choose("ingest", [[BIG] * 4], cores=2, idle=lambda: 1.9)
    assert idle.workers == 2 and idle.line() == (
        "living-pipeline beam: 2 worker processes (input 96 MB in 4 files, 1.9 of 2 cores free)")
    busy = choose("ingest", [[BIG] * 4], cores=2, idle=lambda: 1.1)
    assert busy.workers == 1 and busy.why.endswith("1.1 of 2 cores free")
    assert choose("ingest", [[BIG] * 3], cores=16, idle=lambda: 16.0).workers == 3  # one a file
    assert choose("ingest", [[BIG] * 40], cores=16, idle=lambda: 9.0).workers == MAX_WORKERS
    assert choose("ingest", [[BIG] * 4], cores=4, idle=lambda: 4.0, memory=lambda: 2.5e9).workers == 2
    short = choose("ingest", [[BIG] * 4], cores=4, idle=lambda: 4.0, memory=lambda: 1.5e9)
    assert short.workers == 1 and short.why.endswith("1.5 GB of memory free")  # a worker may take 1 GB
    assert choose("statistics", [[7_000_000] * 2, [7_000_000]], cores=2, idle=never_asked).workers == 1
    assert choose("transform", [[7_000_000] * 2, [7_000_000]], cores=2, idle=lambda: 2.0).workers == 2


@pytest.fixture()
def free_machine(monkeypatch):
    monkeypatch.setattr(beam_workers, "usable_cores", lambda: 2)
    monkeypatch.setattr(beam_workers, "idle_cores", lambda: 2.0)
    monkeypatch.setattr(beam_workers, "free_memory", lambda: 8e9)
    yield
    beam_workers.workers_peak_mb()  # removes the folder that options for workers name


def direct(options):
    view = options.view_as(DirectOptions)
    return view.direct_running_mode, view.direct_num_workers


def test_beam_args_that_set_the_mode_or_another_runner_win(free_machine, capsys):
    """Where --beam-args set the mode (also by an abbreviation, as Beam reads it), the input is not even measured."""
    assert direct(beam_options.pipeline_options("", "ingest", lambda: [[BIG] * 4])) == ("multi_processing", 2)
    assert capsys.readouterr().out.startswith("living-pipeline beam: 2 worker processes (input 96 MB in 4 files")
    assert direct(beam_options.pipeline_options("", "ingest", lambda: [[100]])) == ("in_memory", 1)

    for beam_args, expected in ((IN_PROCESS, ("in_memory", 1)), ("--direct_num_workers=1", ("in_memory", 1)),
                                ("--direct_running_mode multi_threading", ("multi_threading", 1)),
                                ("--direct_num=3 --direct_running_mode=multi_processing", ("multi_processing", 3))):
        capsys.readouterr()
        assert direct(beam_options.pipeline_options(beam_args, "transform", never_asked)) == expected, beam_args
        assert capsys.readouterr().out.strip().endswith(", as --beam-args set it"), beam_args
    portable = "--runner=PortableRunner --job_endpoint=localhost:8099"
    options = beam_options.pipeline_options(portable, "evaluate", never_asked)
    assert direct(options) == ("in_memory", 1)
    assert capsys.readouterr().out.strip() == "living-pipeline beam: the PortableRunner that --beam-args give"


def test_worker_processes_get_the_plugin_and_name_their_peaks_folder(free_machine, monkeypatch):
    monkeypatch.delenv(beam_workers.PEAKS_VARIABLE, raising=False)
    options = beam_options.pipeline_options("--beam_plugin=my.plugin", "ingest", lambda: [[BIG] * 2])
    assert options.view_as(SetupOptions).beam_plugins == ["my.plugin", "components.platform.beam_worker"]
    folder = os.environ[beam_workers.PEAKS_VARIABLE]
    assert os.path.basename(folder).startswith(f"living-pipeline-beam-workers-{os.getpid()}-")
    for pid, peak in (("101", "250.5\n"), ("102", "749.5\n")):  # as two workers write them at their exit
        with open(os.path.join(folder, pid), "w") as sink:
            sink.write(peak)
    assert beam_workers.workers_peak_mb() >= 1000.0
    assert not os.path.exists(folder) and beam_workers.PEAKS_VARIABLE not in os.environ
    assert beam_options.pipeline_options("", "ingest", lambda: [[100]]).view_as(SetupOptions).beam_plugins is None


def split_demo_csv(folder):
    """The demo data in two CSV files, so that two workers each read one (the same rows: the same examples)."""
    from components.stage_logic.ingest import demo_data_pattern

    with open(demo_data_pattern(), newline="") as source:
        header, *rows = list(csv.reader(source))
    paths = []
    for part in range(2):
        paths.append(os.path.join(folder, f"part-{part}.csv"))
        with open(paths[-1], "w", newline="") as sink:
            csv.writer(sink).writerows([header, *rows[part::2]])
    return os.path.join(folder, "*.csv")


def numeric_statistics(statistics_dir, split):
    from components.stage_logic.statistics import load_statistics

    dataset = load_statistics(statistics_dir, split).datasets[0]
    exact, rounded = {"examples": dataset.num_examples}, {}
    for feature in dataset.features:
        name = ".".join(feature.path.step)
        if feature.HasField("num_stats"):
            stats = feature.num_stats
            exact[name] = (stats.common_stats.num_non_missing, stats.common_stats.num_missing, stats.min, stats.max,
                           stats.num_zeros)
            rounded[name] = (stats.mean, stats.std_dev, stats.median)
        else:
            stats = feature.string_stats
            exact[name] = (stats.common_stats.num_non_missing, stats.unique,
                           [(value.value, value.frequency) for value in stats.top_values])
    return exact, rounded


@pytest.mark.slow  # runs four Beam stages, each with two worker processes
def test_worker_processes_write_what_the_stage_process_writes(tmp_path, examples_dir, statistics_dir, schema_dir,
                                                              transform_dirs, trained_model, capfd):
    """Ingest, statistics, transform and evaluate in two Beam worker processes each, against the in-process
    fixtures. Examples (every split, record for record) and vocabularies are identical; so are counts, minima,
    maxima and medians. Means, standard deviations, z-scores and metrics come from sums that Beam's combiners
    add in another order when two workers each hold part of a split: on the demo, means and standard
    deviations differ in a double's last bits and z-scores in a float's last bit, so they are compared to a
    relative 1e-6. The transform's module is a file, which the workers cannot import by name."""
    import json

    import components.penguins.module as penguins
    from components.data.layout import EVAL, TRAIN, examples_pattern
    from components.stage_logic.evaluate import evaluate_model
    from components.stage_logic.ingest import ingest_examples
    from components.stage_logic.statistics import generate_statistics
    from components.stage_logic.transform import RANGES_FILE, transform_examples

    examples, statistics = str(tmp_path / "examples"), str(tmp_path / "statistics")
    ingested = ingest_examples(split_demo_csv(tmp_path), examples, beam_args=TWO_WORKERS)
    assert ingested["row_counts"] == examples_dir[1]["row_counts"]
    for split in (TRAIN, EVAL):
        assert len(glob.glob(examples_pattern(examples, split))) == 2, "each worker wrote its own file"
        assert sorted(records(examples, split)) == sorted(records(examples_dir[0], split))

    generate_statistics(examples, statistics, beam_args=TWO_WORKERS)
    for split in (TRAIN, EVAL):
        exact, rounded = numeric_statistics(statistics, split)
        expected_exact, expected_rounded = numeric_statistics(statistics_dir, split)
        assert exact == expected_exact
        assert rounded == {name: pytest.approx(values, rel=1e-6) for name, values in expected_rounded.items()}

    module = tmp_path / "my_penguins.py"
    with open(penguins.__file__) as source:
        module.write_text(source.read())
    graph, transformed = str(tmp_path / "graph"), str(tmp_path / "transformed")
    transform_examples(examples, schema_dir, str(module), graph, transformed, beam_args=TWO_WORKERS)
    in_process_graph, in_process = transform_dirs
    for split in (TRAIN, EVAL):
        (columns, rows), (expected_columns, expected_rows) = (transformed_columns(transformed, split),
                                                              transformed_columns(in_process, split))
        assert len(rows) == len(expected_rows) > 0 and rows == expected_rows
        assert columns.keys() == expected_columns.keys()
        for name, values in expected_columns.items():
            assert columns[name] == pytest.approx(values, rel=1e-6, abs=1e-6), name
    with open(os.path.join(transformed, RANGES_FILE)) as ours, open(os.path.join(in_process, RANGES_FILE)) as theirs:
        ranges, expected_ranges = json.load(ours), json.load(theirs)
    assert ranges.keys() == expected_ranges.keys()
    for name, values in expected_ranges.items():
        assert ranges[name] == pytest.approx(values, rel=1e-6, abs=1e-7), name
    assets = os.path.join("transform_fn", "assets")
    for name in os.listdir(os.path.join(in_process_graph, assets)):
        with open(os.path.join(graph, assets, name), "rb") as ours, \
                open(os.path.join(in_process_graph, assets, name), "rb") as theirs:
            assert ours.read() == theirs.read(), name

    decision = evaluate_model(trained_model[0], examples, schema_dir, penguins.__name__, str(tmp_path / "evaluation"),
                              beam_args=TWO_WORKERS)
    expected = evaluate_model(trained_model[0], examples_dir[0], schema_dir, penguins.__name__,
                              str(tmp_path / "evaluation-in-process"), beam_args=IN_PROCESS)
    assert decision["overall"]["candidate"]["example_count"] == len(records(examples, EVAL))
    assert approximately(decision) == approximately(expected)

    output = capfd.readouterr()
    assert output.out.count("living-pipeline beam: 2 worker processes, as --beam-args set it") == 4
    noise = [line for line in (output.out + output.err).splitlines()
             if "Exception ignored" in line or "Traceback" in line or "cuFFT" in line]
    assert noise == []
    assert beam_workers.workers_peak_mb() > 8 * 100, "eight workers, four of them with TensorFlow"
