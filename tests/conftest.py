"""Shared fixtures: the demo data run through the stage logic once per test session, and through
`pipeline.py run` once for all of `make test`'s processes (`demo_run`).

Each stage fixture is one stage's output on the real Palmer penguins data, produced by the real libraries
(Beam, TFDV, TFT, Keras, TFMA), so stage tests build on each other the way the pipeline does.
"""
import csv
import fcntl
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from components.penguins import curated_schema_path
from components.stage_logic.ingest import demo_data_pattern
from helpers import REPO
from pipeline import DEFAULT_MODULE as PENGUIN_MODULE

# slow_marker_check fails a test that starts a pipeline, a server or a browser without the `slow` marker;
# pytester runs it on tests written for that (test_slow_marker_check.py).
pytest_plugins = ["slow_marker_check", "pytester"]


def pytest_configure(config):
    """`tf.keras` is Keras 2 (tf_keras) in these processes, as in the train stage's (components/stages.py):
    TensorFlow reads this variable when `tf.keras` is first used."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Orders the test files by the share of their tests marked `slow`, then by their number of tests, keeping
    each file's own order. With `--no-loadscope-reorder` (the Makefile's), pytest-xdist hands files to its workers
    in this order, so files of whole pipeline runs start first and short files fill in at the end, instead of a
    file with a few long tests starting last (xdist's own order puts the files with the most tests first)."""
    by_file = {}
    for item in items:
        by_file.setdefault(item.path, []).append(item)

    def weight(path):
        tests = by_file[path]
        return -sum(1 for test in tests if test.get_closest_marker("slow")) / len(tests), -len(tests)
    items[:] = [item for path in sorted(by_file, key=weight) for item in by_file[path]]


@pytest.fixture(scope="session")
def penguin_rows():
    with open(demo_data_pattern(), newline="") as source:
        return list(csv.DictReader(source))


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def examples_dir(artifacts):
    from components.stage_logic.ingest import ingest_examples
    path = str(artifacts / "examples")
    metadata = ingest_examples("", path)
    return path, metadata


@pytest.fixture(scope="session")
def statistics_dir(artifacts, examples_dir):
    from components.stage_logic.statistics import generate_statistics
    path = str(artifacts / "statistics")
    generate_statistics(examples_dir[0], path)
    return path


@pytest.fixture(scope="session")
def schema_dir(artifacts, statistics_dir):
    from components.stage_logic.schema import make_schema
    path = str(artifacts / "schema")
    make_schema(statistics_dir, path, curated_schema_path())
    return path


@pytest.fixture(scope="session")
def transform_dirs(artifacts, examples_dir, schema_dir):
    from components.stage_logic.transform import transform_examples
    graph, transformed = str(artifacts / "transform_graph"), str(artifacts / "transformed_examples")
    transform_examples(examples_dir[0], schema_dir, PENGUIN_MODULE, graph, transformed)
    return graph, transformed


@pytest.fixture(scope="session")
def trained_model(artifacts, transform_dirs):
    from components.stage_logic.train import train_model
    path = str(artifacts / "model")
    result = train_model(transform_dirs[1], transform_dirs[0], PENGUIN_MODULE, path, train_steps=300)
    return path, result


@pytest.fixture(scope="session")
def weak_model(artifacts, transform_dirs):
    """A deliberately bad candidate: one training step."""
    from components.stage_logic.train import train_model
    path = str(artifacts / "weak_model")
    train_model(transform_dirs[1], transform_dirs[0], PENGUIN_MODULE, path, train_steps=1)
    return path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`pipeline.py run` on the demo data with its default flags, run once for the whole `make test`: the first
    test process to ask runs it, the others wait for it and read what it left (test_end_to_end.py and
    test_warm_stages.py both need this very run). Its folder holds the pipeline, serving and statistics roots;
    tests that run again against its serving root give their runs pipeline roots of their own. Its temporary
    folder (TMPDIR) is the folder's `temporary`, to see what the run leaves there."""
    base = tmp_path_factory.getbasetemp()
    # With pytest-xdist each worker has its own folder in the session's: the run goes beside them.
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "demo-run"
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "process.json").exists():
            folder.mkdir(exist_ok=True)
            (folder / "temporary").mkdir(exist_ok=True)
            process = subprocess.run(
                [sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--stage-processes", "warm",
                 "--pipeline-root", str(folder / "pipeline"), "--serving-root", str(folder / "serving"),
                 "--statistics-root", str(folder / "statistics"), "--summary-json", str(folder / "summary.json")],
                cwd=REPO, capture_output=True, text=True, timeout=900,
                env={**os.environ, "TMPDIR": str(folder / "temporary")})
            (folder / "process.json").write_text(json.dumps(
                {"returncode": process.returncode, "stdout": process.stdout, "stderr": process.stderr}))
    process = SimpleNamespace(**json.loads((folder / "process.json").read_text()))
    summary = folder / "summary.json"
    return folder, process, json.loads(summary.read_text()) if summary.exists() else None


@pytest.fixture
def write_csv():
    """Writes a CSV file (header, then rows) and returns its path."""
    def write(path, header, rows):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", newline="") as sink:
            writer = csv.writer(sink)
            if header:
                writer.writerow(header)
            writer.writerows(rows)
        return str(path)
    return write


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a real PostgreSQL server on loopback, for this test session (see postgres_server.py)."""
    from postgres_server import running_server
    with running_server() as url:
        yield url


@pytest.fixture(scope="session")
def reader_url(postgres_url):
    """The URL of the read-only role docs/sources.md documents, on the test server (see postgres_server.py)."""
    from postgres_server import create_reader
    return create_reader(postgres_url)


@pytest.fixture
def database_url(postgres_url, reader_url, monkeypatch):
    """Points ingest at the test server the way a user should: through the environment, as the documented
    read-only role. Returns the owner's URL, which sets tables up and checks them afterwards."""
    from components.data.database import DATABASE_URL_VARIABLE
    monkeypatch.setenv(DATABASE_URL_VARIABLE, reader_url)
    return postgres_url
