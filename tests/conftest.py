"""Shared fixtures: the demo data run through the stage logic once per test session.

Each fixture is one stage's output on the real Palmer penguins data, produced by the real libraries
(Beam, TFDV, TFT, Keras, TFMA), so stage tests build on each other the way the pipeline does.
"""
import csv
import os

import pytest

from components.penguins import curated_schema_path
from components.stage_logic.ingest import demo_data_pattern
from pipeline import DEFAULT_MODULE as PENGUIN_MODULE

# slow_marker_check fails a test that starts a pipeline, a server or a browser without the `slow` marker;
# pytester runs it on tests written for that (test_slow_marker_check.py).
pytest_plugins = ["slow_marker_check", "pytester"]


def pytest_configure(config):
    """`tf.keras` is Keras 2 (tf_keras) in these processes, as in the train stage's (components/stages.py):
    TensorFlow reads this variable when `tf.keras` is first used."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


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
