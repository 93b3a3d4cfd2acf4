"""Schema (TFX's SchemaGen and ImportSchemaGen): inferred from the train statistics, or a curated file.

An inferred schema keeps what TFDV infers about types, category values and which columns exist, but
not how often a feature may be missing, which one split cannot tell: only the label must be in every
training example (if it was in the train split). Features get no fixed shape, so a value missing in
any split is a missing value, not a parse error; a curated schema can be stricter. It also gets
TFDV's TRAINING and SERVING environments, with the label left out of SERVING, so that serving
requests (which carry no label) validate cleanly.
"""
import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import layout, storage
from components.errors import StageError

SCHEMA_FILE = "schema.pbtxt"
TRAINING_ENVIRONMENT = "TRAINING"
SERVING_ENVIRONMENT = "SERVING"


def schema_file(schema_dir):
    return os.path.join(schema_dir, SCHEMA_FILE)


def read_schema_text(path):
    with open(path) as source:
        return text_format.Parse(source.read(), schema_pb2.Schema())


def load_schema(schema_dir):
    return read_schema_text(schema_file(schema_dir))


def read_curated_schema(path):
    """Loads a schema in text format (a path or a gs:// or s3:// URI), with an error naming the file."""
    if not (storage.exists(path, "--schema") if storage.is_remote(path) else os.path.isfile(path)):
        raise StageError(f"--schema {path!r} does not exist: give the path of a schema.pbtxt, "
                         "or leave --schema out to infer one from the data.")
    try:
        return text_format.Parse(storage.read_text(path, "--schema"), schema_pb2.Schema())
    except text_format.ParseError as error:
        raise StageError(f"--schema {path!r} is not a TFDV schema in text format: {error}") from None


def infer_schema(statistics_dir, label_key):
    # TFDV (and with it TensorFlow) is imported only when a schema is inferred: a curated schema
    # needs neither, and the stage then starts in a fraction of a second.
    import tensorflow_data_validation as tfdv
    from components.statistics import load_statistics

    schema = tfdv.infer_schema(load_statistics(statistics_dir, layout.TRAIN), infer_feature_shape=False)
    schema.default_environment.extend([TRAINING_ENVIRONMENT, SERVING_ENVIRONMENT])
    for feature in schema.feature:
        if feature.name == label_key:
            feature.not_in_environment.append(SERVING_ENVIRONMENT)
        else:
            feature.presence.ClearField("min_fraction")
    return schema


def make_schema(statistics_dir, output_dir, curated_schema_path="", module=""):
    """Writes `schema.pbtxt` under `output_dir`; returns where it came from and its features."""
    if curated_schema_path:
        schema = read_curated_schema(curated_schema_path)
        origin = f"curated: {curated_schema_path}"
    else:
        from components.user_module import load_user_module
        schema = infer_schema(statistics_dir, load_user_module(module).LABEL_KEY if module else "")
        origin = "inferred from the train statistics"
    os.makedirs(output_dir, exist_ok=True)
    with open(schema_file(output_dir), "w") as sink:
        sink.write(text_format.MessageToString(schema))
    return {"origin": origin, "features": [feature.name for feature in schema.feature],
            "report": schema_markdown(schema, origin)}


def _domain(schema, feature):
    if feature.HasField("int_domain"):
        domain = feature.int_domain
        return f"{domain.min if domain.HasField('min') else ''} to {domain.max if domain.HasField('max') else ''}"
    if feature.HasField("float_domain"):
        domain = feature.float_domain
        return f"{domain.min if domain.HasField('min') else ''} to {domain.max if domain.HasField('max') else ''}"
    if feature.domain:
        values = next((d.value for d in schema.string_domain if d.name == feature.domain), [])
        return ", ".join(values)
    return ""


def _threshold(comparator):
    if comparator.HasField("infinity_norm"):
        return f"L-inf {comparator.infinity_norm.threshold:g}"
    if comparator.HasField("jensen_shannon_divergence"):
        return f"JSD {comparator.jensen_shannon_divergence.threshold:g}"
    return ""


def schema_markdown(schema, origin):
    """The schema as a Markdown table: type, presence, domain, environments, drift and skew thresholds."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    from components.reports import markdown_table

    rows = []
    for feature in schema.feature:
        presence = (f"at least {feature.presence.min_fraction:.0%}" if feature.presence.HasField("min_fraction")
                    else "optional")
        environments = ", ".join(env for env in schema.default_environment
                                 if env not in feature.not_in_environment) or "all"
        rows.append((feature.name, schema_pb2.FeatureType.Name(feature.type), presence, _domain(schema, feature),
                     environments, _threshold(feature.drift_comparator), _threshold(feature.skew_comparator)))
    return (f"# Schema\n\n{len(schema.feature)} features, {origin}.\n\n"
            + markdown_table(["feature", "type", "presence", "domain", "environments", "drift", "skew"], rows)
            + "\n")
