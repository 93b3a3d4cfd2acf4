"""Schema (TFX's SchemaGen and ImportSchemaGen): inferred from the train statistics, or a curated file."""
import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import layout
from components.errors import StageError

SCHEMA_FILE = "schema.pbtxt"


def schema_file(schema_dir):
    return os.path.join(schema_dir, SCHEMA_FILE)


def read_schema_text(path):
    with open(path) as source:
        return text_format.Parse(source.read(), schema_pb2.Schema())


def load_schema(schema_dir):
    return read_schema_text(schema_file(schema_dir))


def read_curated_schema(path):
    """Loads a schema in text format, with an error naming the file when it cannot be used."""
    if not os.path.isfile(path):
        raise StageError(f"--schema {path!r} does not exist: give the path of a schema.pbtxt, "
                         "or leave --schema out to infer one from the data.")
    try:
        return read_schema_text(path)
    except text_format.ParseError as error:
        raise StageError(f"--schema {path!r} is not a TFDV schema in text format: {error}") from None


def infer_schema(statistics_dir):
    # TFDV (and with it TensorFlow) is imported only when a schema is inferred: a curated schema
    # needs neither, and the stage then starts in a fraction of a second.
    import tensorflow_data_validation as tfdv
    from components.statistics import load_statistics

    return tfdv.infer_schema(load_statistics(statistics_dir, layout.TRAIN), infer_feature_shape=True)


def make_schema(statistics_dir, output_dir, curated_schema_path=""):
    """Writes `schema.pbtxt` under `output_dir`; returns where it came from and its features."""
    if curated_schema_path:
        schema = read_curated_schema(curated_schema_path)
        origin = f"curated: {curated_schema_path}"
    else:
        schema = infer_schema(statistics_dir)
        origin = "inferred from the train statistics"
    os.makedirs(output_dir, exist_ok=True)
    with open(schema_file(output_dir), "w") as sink:
        sink.write(text_format.MessageToString(schema))
    return {"origin": origin, "features": [feature.name for feature in schema.feature]}
