"""Schema (TFX's SchemaGen and ImportSchemaGen): a curated file, the schema kept for this data, or one
inferred from the span.

The schema lives with the model's spans. The first run of a model with a statistics store
(`--statistics-root`) infers it from the statistics of every split of its span, so the span it came from
always passes, and validate keeps it in the model's folder of the store once the span passes; that
model's later spans are validated against the kept schema, so a
new category, a type change, a dropped or new column and a missing label are anomalies, not a new
truth. `--update-schema` accepts a deliberate change: the schema is inferred again from this span and
kept as the next version. A curated `--schema` always wins. Without a store the schema is inferred from
each span anew, and the summary says that later spans are not held to it.

An inferred schema is shaped as TFX's SchemaGen shapes it by default (`infer_feature_shape=True`): a
feature with exactly one value in every example of every split of the span gets a shape (`shape { dim {
size: 1 } }` and presence `min_fraction: 1`), so it is dense: a `FixedLenFeature` that reaches
`preprocessing_fn` as a [batch, 1] tensor and that the serving signature requires in every request. Any
other feature (empty in some row, absent from a split, several values in a row) gets `value_count` and
no shape, so it is sparse (a `VarLenFeature`, a SparseTensor), and how often it may be missing is left
open, which one span cannot tell. A later span that leaves a dense feature empty is stopped by validate,
naming the column (`dense_gaps`), before transform tries to read it. A category domain tolerates new
values in up to `1 - DOMAIN_MASS` of a span's values (TFDV's `min_domain_mass`), so a rare new category
is not an anomaly and a new common one is. A text column whose values are mostly unique (free text) gets
no domain at all. A curated or kept schema is used as written (a schema kept before inferred schemas had
shapes has none: all its features stay sparse). The schema has TFDV's TRAINING and SERVING environments,
with the label left out of SERVING, so that serving requests (which carry no label) validate cleanly.
"""
import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components.data import layout
from components.errors import StageError
from components.state.statistics_store import keep_schema, kept_schema, model_store
from components.state.storage import Storage, is_remote

SCHEMA_FILE = "schema.pbtxt"
TRAINING_ENVIRONMENT = "TRAINING"
SERVING_ENVIRONMENT = "SERVING"
# The share of a span's values of a categorical feature that must be in the schema's domain.
DOMAIN_MASS = 0.99
# Where a schema sets no TFDV comparator (an inferred or kept schema), drift and skew are judged by the calibrated
# measures of components/validation/drift_measures.py (docs/drift.md): normalized Wasserstein distance for numbers,
# L-infinity distance for categories, both with this default threshold.
DEFAULT_DRIFT_THRESHOLD = 0.1
DEFAULT_SKEW_THRESHOLD = 0.1
_COLUMN_DROPPED = "SCHEMA_MISSING_COLUMN"


def schema_file(schema_dir):
    return os.path.join(schema_dir, SCHEMA_FILE)


def read_schema_text(path):
    with open(path) as source:
        return text_format.Parse(source.read(), schema_pb2.Schema())


def load_schema(schema_dir):
    return read_schema_text(schema_file(schema_dir))


def read_curated_schema(path, storage=None):
    """Loads a schema in text format (a path or a gs:// or s3:// URI), with an error naming the file."""
    storage = storage or Storage()
    if not (storage.exists(path, "--schema") if is_remote(path) else os.path.isfile(path)):
        raise StageError(f"--schema {path!r} does not exist: give the path of a schema.pbtxt, "
                         "or leave --schema out to infer one from the data.")
    try:
        return text_format.Parse(storage.read_text(path, "--schema"), schema_pb2.Schema())
    except text_format.ParseError as error:
        raise StageError(f"--schema {path!r} is not a TFDV schema in text format: {error}") from None


def _span_statistics(statistics_dir):
    """{split: DatasetFeatureStatistics over all its examples} of the span's splits (not the serving sample).

    Read as protos, without TFDV: a kept or curated schema then needs neither TFDV nor TensorFlow.
    """
    found = {}
    for split in layout.split_names(statistics_dir):
        if split == layout.SERVING:
            continue
        statistics = statistics_pb2.DatasetFeatureStatisticsList()
        with open(layout.statistics_file(statistics_dir, split), "rb") as source:
            statistics.ParseFromString(source.read())
        overall = [d for d in statistics.datasets if d.name in ("", "All Examples")] or statistics.datasets[:1]
        found[split] = overall[0]
    return found


def statistics_name(feature):
    """A feature's name in statistics (a path of one step for tf.Examples; `name` in older statistics)."""
    return ".".join(feature.path.step) or feature.name


def _feature_names(dataset):
    return sorted(statistics_name(feature) for feature in dataset.features)


def check_label(statistics, label_key, module):
    """Stops with one line when the span has no label column (in any split, or in the train split)."""
    if not label_key:
        return
    train = statistics.get(layout.TRAIN)
    if train is not None and label_key in _feature_names(train):
        return
    columns = sorted({name for dataset in statistics.values() for name in _feature_names(dataset)})
    shown = ", ".join(columns[:20]) + (f" and {len(columns) - 20} more" if len(columns) > 20 else "")
    where = "has no values in the train split" if any(
        label_key in _feature_names(d) for d in statistics.values()) else "is not a column of the data"
    raise StageError(f"The label {label_key!r} (LABEL_KEY of --module {module!r}) {where}: the data's columns "
                     f"are {shown}; fix the data, or set LABEL_KEY to the column to predict.")


def _is_free_text(feature_statistics):
    """True when most distinct values of a string feature occur once: text, not categories."""
    if not feature_statistics.HasField("string_stats"):
        return False
    stats = feature_statistics.string_stats
    buckets = stats.rank_histogram.buckets
    if stats.unique > len(buckets):
        return True
    return 2 * sum(1 for bucket in buckets if bucket.sample_count <= 1) > stats.unique


def _drop_domain(schema, feature):
    domains = [domain for domain in schema.string_domain if domain.name != feature.domain]
    feature.ClearField("domain")
    del schema.string_domain[:]
    schema.string_domain.extend(domains)


def _values_per_example(feature):
    """How many values a feature with a shape has in each example (1 for `shape { dim { size: 1 } }`)."""
    count = 1
    for dim in feature.shape.dim:
        count *= dim.size
    return count


def _common_statistics(feature_statistics):
    kind = feature_statistics.WhichOneof("stats")
    return getattr(feature_statistics, kind).common_stats if kind else None


def dense_gaps(schema, dataset, environment=None, split=""):
    """{feature: what is wrong} for each feature that `schema` gives a shape (dense: that many values in every
    example, as tfx-bsl and the serving signature read it) which the statistics `dataset` of a split do not
    fill: "not in the train split", "empty in 3 of 120 train rows", or "1 to 2 values in a row of the train
    split, not 1" (`split` names it). With `environment`, features the schema leaves out of it (the label in
    SERVING) are not asked for."""
    by_name = {statistics_name(feature): feature for feature in dataset.features}
    rows, the_split = (f"{split} rows", f"the {split} split") if split else ("rows", "the split")
    gaps = {}
    for feature in schema.feature:
        if not feature.HasField("shape") or not dataset.num_examples:
            continue
        if environment and (environment in feature.not_in_environment or (
                feature.in_environment and environment not in feature.in_environment)):
            continue
        expected = _values_per_example(feature)
        common = _common_statistics(by_name[feature.name]) if feature.name in by_name else None
        if common is None or not common.num_non_missing:
            gaps[feature.name] = f"not in {the_split}"
        elif common.num_missing:
            gaps[feature.name] = f"empty in {int(common.num_missing)} of {int(dataset.num_examples)} {rows}"
        elif not common.min_num_values == common.max_num_values == expected:
            gaps[feature.name] = (f"{int(common.min_num_values)} to {int(common.max_num_values)} values in a row "
                                  f"of {the_split}, not {expected}")
    return gaps


def _make_sparse(feature):
    """A dense feature made sparse: the same number of values when present, but no shape, and it may be missing."""
    count = _values_per_example(feature)
    feature.ClearField("shape")
    feature.value_count.min = feature.value_count.max = count
    feature.presence.ClearField("min_fraction")


def infer_schema(statistics, label_key):
    """A schema inferred from every split's statistics, that every one of those splits passes."""
    # TFDV (and with it TensorFlow) is imported only when a schema is inferred.
    import tensorflow_data_validation as tfdv

    def as_list(dataset):
        return statistics_pb2.DatasetFeatureStatisticsList(datasets=[dataset])

    # As TFX's SchemaGen does: inferred from the train split with shapes, then updated with each other split,
    # which drops the shape of a feature that split leaves empty in some example.
    train = statistics[layout.TRAIN]
    schema = tfdv.infer_schema(as_list(train), infer_feature_shape=True)
    for split, dataset in statistics.items():
        if split != layout.TRAIN:
            schema = tfdv.update_schema(schema, as_list(dataset))
    features = {feature.name: feature for feature in schema.feature}
    # update_schema keeps the shape of a feature a split lacks altogether; tfx-bsl could not read that split.
    for dataset in statistics.values():
        for name in dense_gaps(schema, dataset):
            _make_sparse(features[name])
    by_name = {statistics_name(f): f for d in statistics.values() for f in d.features}
    schema.default_environment.extend([TRAINING_ENVIRONMENT, SERVING_ENVIRONMENT])
    for feature in schema.feature:
        if feature.domain and feature.name in by_name and _is_free_text(by_name[feature.name]):
            _drop_domain(schema, feature)
        if feature.domain:
            feature.distribution_constraints.min_domain_mass = DOMAIN_MASS
        if feature.name == label_key:
            feature.not_in_environment.append(SERVING_ENVIRONMENT)
        elif not feature.HasField("shape"):
            # A dense feature keeps min_fraction 1, which tfx-bsl requires of a shape; a sparse one may be missing.
            feature.presence.ClearField("min_fraction")
    # A column that some split of this span lacks (rarely filled in) is optional, not dropped.
    for dataset in statistics.values():
        anomalies = tfdv.validate_statistics(as_list(dataset), schema, TRAINING_ENVIRONMENT)
        for name, info in anomalies.anomaly_info.items():
            kinds = {type(info).Type.Name(reason.type) for reason in info.reason}
            if _COLUMN_DROPPED in kinds and name in features and name != label_key:
                features[name].presence.ClearField("min_count")
    return schema


def make_schema(statistics_dir, output_dir, curated_schema_path="", module="", statistics_root="",
                update_schema=False, model_name="", span=0, empty_columns=(), storage=None):
    """Writes `schema.pbtxt` under `output_dir`; returns where it came from, its version and features.

    The kept schema is `model_name`'s, in its folder of the statistics store. `keep_as_version` (0: none) is
    the version validate keeps the schema as once the span passes. `empty_columns` are header columns
    without a value in this span: an inferred schema cannot have them, and keeps their names, so that a
    later span that fills them in is told so rather than alarmed by a "new" column.
    """
    storage = storage or Storage()
    store = model_store(statistics_root, model_name) if statistics_root else ""
    version, kept_text, origin_of_kept = (0, "", {}) if curated_schema_path else kept_schema(store, storage)
    keep_as_version = 0
    kept = {}
    if curated_schema_path:
        schema = read_curated_schema(curated_schema_path, storage)
        origin, description = "curated", f"curated: {curated_schema_path}"
    elif version and not update_schema:
        schema = text_format.Parse(kept_text, schema_pb2.Schema())
        kept = {"model": model_name, "version": version, "span": int(origin_of_kept.get("span") or 0),
                "location": origin_of_kept["location"],
                "empty_columns": list(origin_of_kept.get("empty_columns") or [])}
        origin, description = "kept", f"kept schema {describe_kept_schema(kept)}"
    else:
        # Inferring needs the label (required, and left out of SERVING); a curated or kept schema names
        # it already, and without importing the module (and TensorFlow) the stage takes a fraction of a second.
        from components.training.user_module import load_user_module

        statistics = _span_statistics(statistics_dir)
        label_key = load_user_module(module, storage).LABEL_KEY if module else ""
        check_label(statistics, label_key, module)
        schema = infer_schema(statistics, label_key)
        if store:
            keep_as_version = version + 1
            origin = "updated" if version else "inferred"
            description = (f"inferred from this span (--update-schema), to be kept as version {keep_as_version} "
                           f"of model {model_name!r} in {store} once the span passes validation" if version else
                           f"inferred from this span's {', '.join(statistics)} statistics; kept for model "
                           f"{model_name!r} in {store} once the span passes validation, and its later spans are "
                           "validated against it")
        else:
            origin = "inferred"
            description = ("inferred from this span and not kept: no statistics store (--statistics-root ''), "
                           "so later spans are not validated against it")
    os.makedirs(output_dir, exist_ok=True)
    with open(schema_file(output_dir), "w") as sink:
        sink.write(text_format.MessageToString(schema))
    return {"origin": origin, "description": description, "schema_version": keep_as_version or version,
            "keep_as_version": keep_as_version, "statistics_root": store if keep_as_version else "",
            "model_name": model_name, "span": int(span), "kept_schema": kept,
            "empty_columns": sorted(empty_columns) if origin in ("inferred", "updated") else [],
            "features": [feature.name for feature in schema.feature],
            "report": schema_markdown(schema, description)}


def describe_kept_schema(kept):
    """A kept schema in words: model, version, the span it came from and where it is."""
    # Numbers in KFP metadata come back as floats.
    came_from = f"inferred from span {int(kept['span'])}" if kept.get("span") else "inferred from a run without spans"
    return f"version {int(kept['version'])} of model {kept['model']!r} ({came_from}, at {kept['location']})"


def keep_inferred_schema(schema_dir, metadata, storage=None):
    """Keeps a schema that was inferred for the statistics store (after its span passed); returns where."""
    storage = storage or Storage()
    version = int(metadata.get("keep_as_version", 0))
    if not version:
        return ""
    with open(schema_file(schema_dir)) as source:
        return keep_schema(metadata["statistics_root"], version, source.read(), int(metadata.get("span") or 0),
                           list(metadata.get("empty_columns") or []), storage)


def _value_range(domain):
    """A numeric domain in words: "25 to 70", "at least 2007", "at most 7000", or "any value"."""
    from components.reports import number

    low = number(domain.min) if domain.HasField("min") else None
    high = number(domain.max) if domain.HasField("max") else None
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    return f"at most {high}" if high is not None else "any value"


def _domain(schema, feature):
    if feature.HasField("int_domain"):
        return _value_range(feature.int_domain)
    if feature.HasField("float_domain"):
        return _value_range(feature.float_domain)
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
    """The schema as a Markdown table: type, presence, domain, environments, drift and skew thresholds, and the
    tensor each feature reaches preprocessing_fn as (dense with a shape, else sparse)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    from components.reports import markdown_table

    rows = []
    for feature in schema.feature:
        presence = (f"at least {feature.presence.min_fraction:.0%}" if feature.presence.HasField("min_fraction")
                    else "optional")
        environments = ", ".join(env for env in schema.default_environment
                                 if env not in feature.not_in_environment) or "all"
        tensor = (f"dense {[dim.size for dim in feature.shape.dim]}" if feature.HasField("shape") else "sparse")
        rows.append((feature.name, schema_pb2.FeatureType.Name(feature.type), presence, _domain(schema, feature),
                     environments, _threshold(feature.drift_comparator), _threshold(feature.skew_comparator), tensor))
    return (f"# Schema\n\n{len(schema.feature)} features, {origin}.\n\n"
            + markdown_table(["feature", "type", "presence", "domain", "environments", "drift", "skew", "tensor"],
                             rows)
            + "\n")
