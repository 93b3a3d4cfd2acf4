"""Schema (TFX's SchemaGen and ImportSchemaGen): inferred from the train statistics, or a curated file."""
import os

import tensorflow_data_validation as tfdv
from google.protobuf import text_format

from components import layout
from components.errors import StageError
from components.statistics import load_statistics

SCHEMA_FILE = "schema.pbtxt"


def schema_file(schema_dir):
    return os.path.join(schema_dir, SCHEMA_FILE)


def load_schema(schema_dir):
    return tfdv.load_schema_text(schema_file(schema_dir))


def read_curated_schema(path):
    """Loads a schema in text format, with an error naming the file when it cannot be used."""
    if not os.path.isfile(path):
        raise StageError(f"--schema {path!r} does not exist: give the path of a schema.pbtxt, "
                         "or leave --schema out to infer one from the data.")
    try:
        return tfdv.load_schema_text(path)
    except text_format.ParseError as error:
        raise StageError(f"--schema {path!r} is not a TFDV schema in text format: {error}") from None


def make_schema(statistics_dir, output_dir, curated_schema_path=""):
    """Writes `schema.pbtxt` under `output_dir`; returns a short description of where it came from."""
    if curated_schema_path:
        schema = read_curated_schema(curated_schema_path)
        origin = f"curated: {curated_schema_path}"
    else:
        schema = tfdv.infer_schema(load_statistics(statistics_dir, layout.TRAIN), infer_feature_shape=True)
        origin = "inferred from the train statistics"
    os.makedirs(output_dir, exist_ok=True)
    tfdv.write_schema_text(schema, schema_file(output_dir))
    return {"origin": origin, "features": [feature.name for feature in schema.feature]}
