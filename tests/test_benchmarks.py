"""The benchmark suite as a smoke test: its smallest size, both variants, every output it promises."""
import csv
import filecmp
import json
import subprocess
import sys

import pytest
from PIL import Image

from benchmarks.generate import generate
from components import stage_table

STAGES = [stage.name for stage in stage_table.STAGES]


def test_generator_is_deterministic_and_bounded(tmp_path):
    first = generate("demo", 300_000, 7, str(tmp_path / "a"))
    second = generate("demo", 300_000, 7, str(tmp_path / "b"))
    assert len(first) == 2, "files of at most 250,000 rows"
    assert all(filecmp.cmp(a, b, shallow=False) for a, b in zip(first, second))
    with open(first[1], newline="") as source:
        rows = list(csv.DictReader(source))
    assert len(rows) == 50_000
    assert {row["species"] for row in rows} == {"Adelie", "Gentoo", "Chinstrap"}
    missing = sum(row["body_mass_g"] == "" for row in rows) / len(rows)
    assert 0.01 < missing < 0.03


def test_wide_variant_has_60_features_and_a_label(tmp_path):
    (path,) = generate("wide", 1000, 0, str(tmp_path))
    with open(path, newline="") as source:
        header = next(csv.reader(source))
    assert len(header) == 61 and header[-1] == "label"


@pytest.mark.slow
def test_smallest_size_end_to_end(tmp_path):
    subprocess.run([sys.executable, "-m", "benchmarks.run", "--sizes", "10000", "--variants", "demo,wide",
                    "--out", str(tmp_path)], check=True, capture_output=True, text=True, timeout=900)
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["import_floor_seconds"] > 0
    assert [(e["variant"], e["rows"]) for e in report["results"]] == [("demo", 10000), ("wide", 10000)]
    for entry in report["results"]:
        assert not entry["failure"]
        assert entry["ingest_floor_seconds"] > 0
        assert list(entry["stages"]) == STAGES
        for stage in entry["stages"].values():
            assert stage["seconds"] > 0 and stage["rows_per_second"] > 0 and stage["floor_ratio"] > 0
            assert 0 < stage["peak_mb"] < 4096
        assert entry["stages"]["transform"]["peak_mb"] > 200, "TensorFlow alone takes more"
    table = (tmp_path / "results.md").read_text()
    assert "| demo | 10,000 | transform |" in table and "| wide | 10,000 | **whole run** |" in table
    with Image.open(tmp_path / "results.png") as image:
        assert image.size[0] > 600


def test_beam_args_reach_pipeline_py_as_one_value(tmp_path, monkeypatch):
    """Beam arguments start with a dash: given as a word of their own, pipeline.py's parser takes one for a flag."""
    import benchmarks.run

    commands = []
    monkeypatch.setattr(benchmarks.run.subprocess, "run",
                        lambda command, **_: commands.append(command) or subprocess.CompletedProcess(command, 0))
    benchmarks.run.run_pipeline("demo", 100, str(tmp_path), "--pickle_library=dill")
    [command] = commands
    assert command[1:3] == [benchmarks.run.os.path.join(benchmarks.run.REPO, "pipeline.py"), "run"]
    from pipeline_cli import parse_args

    assert parse_args(command[2:]).beam_args == "--pickle_library=dill"
