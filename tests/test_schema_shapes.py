"""Inferred schemas shaped as TFX's SchemaGen shapes them (issue 28), on scikit-learn's wine table as a newcomer
exports it (tests/stranger_data.py: empty cells in two numeric columns and in a text column).

A column with a value in every row of the span is dense (a shape, a FixedLenFeature); a column with empty cells
is sparse (a VarLenFeature). Then what each consumer of the schema makes of the two: a later span that leaves a
dense column empty is stopped by validate with one line naming the column, even with --warn-on-anomalies; a
serving sample that does is named as requests the served model would refuse; a schema kept before inferred
schemas had shapes is used as written; and (slow) transform, train and the serving signature on both shapes,
and --update-schema making the column sparse, after which evaluate compares the new model with the serving one
on the eval examples that the serving one can read.
"""
import csv

import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_transform.tf_metadata import schema_utils

import stranger_data
from components.errors import StageError
from components.stage_logic.ingest import ingest_examples
from components.stage_logic.schema import load_schema, make_schema
from components.stage_logic.statistics import generate_statistics, load_statistics
from components.stage_logic.validate import validate_statistics
from components.state.statistics_store import keep_schema, model_store, stored_spans

MODEL = "wine"
MODULE = stranger_data.module_path(MODEL)


def read_table(path):
    with open(path, newline="") as source:
        rows = list(csv.DictReader(source))
    return list(rows[0]), rows


def filled_columns(path):
    """The columns of a CSV file with a value in every row."""
    header, rows = read_table(path)
    return {column for column in header if all(row[column] != "" for row in rows)}


def span_statistics(root, span):
    """Ingest and statistics of `root`'s span `span` -> (statistics folder, ingest metadata)."""
    metadata = ingest_examples(stranger_data.span_path(str(root), MODEL, span), str(root / f"examples-{span}"))
    generate_statistics(str(root / f"examples-{span}"), str(root / f"statistics-{span}"))
    return str(root / f"statistics-{span}"), metadata


def write_span_with_empty_cells(root, span, column, every=15):
    """Span 1's rows as span `span`, with `column` emptied in every `every`-th row; returns how many were emptied."""
    header, rows = read_table(stranger_data.span_path(str(root), MODEL, 1))
    for index, row in enumerate(rows):
        if index % every == 0:
            row[column] = ""
    stranger_data.write_csv(stranger_data.span_path(str(root), MODEL, span), header,
                            [[row[name] for name in header] for row in rows])
    return len(range(0, len(rows), every))


@pytest.fixture(scope="module")
def first_span(tmp_path_factory):
    """Span 1 of the wine table: its schema inferred, validated and kept for the model."""
    root = tmp_path_factory.mktemp("shapes")
    path = stranger_data.write_span(str(root), MODEL, 1)
    statistics, ingested = span_statistics(root, 1)
    store = str(root / "store")
    metadata = make_schema(statistics, str(root / "schema-1"), module=MODULE, statistics_root=store,
                           model_name=MODEL, span=1)
    validate_statistics(statistics, str(root / "schema-1"), str(root / "anomalies-1"), span=1, statistics_root=store,
                        schema_metadata=metadata, model_name=MODEL)
    dense = sorted(filled_columns(path) & set(metadata["features"]))
    return {"root": root, "csv": path, "store": store, "schema_dir": str(root / "schema-1"), "metadata": metadata,
            "ingested": ingested, "dense": dense, "column": next(c for c in dense if c != stranger_data.label_column(
                MODEL))}


def test_an_inferred_schema_is_dense_where_every_row_has_one_value(first_span):
    header, _ = read_table(first_span["csv"])
    with_empty_cells = set(header) - filled_columns(first_span["csv"])
    assert {"malic_acid", "ash", "note"} == with_empty_cells, "the table has empty cells in these columns"
    schema = load_schema(first_span["schema_dir"])
    dense = {feature.name for feature in schema.feature if feature.HasField("shape")}
    assert dense == set(first_span["dense"]) == set(header) - with_empty_cells
    for feature in schema.feature:
        if feature.name in dense:
            assert feature.presence.min_fraction == 1 and [dim.size for dim in feature.shape.dim] == [1]
        else:
            assert (feature.value_count.min, feature.value_count.max) == (1, 1)
            assert not feature.presence.HasField("min_fraction")
    # What transform, the serving signature and evaluate parse raw examples with.
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    assert {name for name, item in spec.items() if isinstance(item, tf.io.FixedLenFeature)} == dense
    assert {name for name, item in spec.items() if isinstance(item, tf.io.VarLenFeature)} == with_empty_cells
    assert "| alcohol | FLOAT | at least 100% |" in first_span["metadata"]["report"]
    assert first_span["metadata"]["report"].count("| sparse |") == len(with_empty_cells)


def test_a_later_span_with_an_empty_cell_in_a_dense_column_is_stopped_by_validate(first_span, tmp_path):
    root, column = first_span["root"], first_span["column"]
    emptied = write_span_with_empty_cells(root, 2, column)
    statistics, _ = span_statistics(root, 2)
    metadata = make_schema(statistics, str(tmp_path / "schema"), module=MODULE, statistics_root=first_span["store"],
                           model_name=MODEL, span=2)
    assert metadata["origin"] == "kept"
    counts = {split: load_statistics(statistics, split).datasets[0] for split in ("train", "eval")}
    missing = {split: next(f for f in dataset.features if f.path.step[0] == column).num_stats.common_stats.num_missing
               for split, dataset in counts.items()}
    assert sum(missing.values()) == emptied
    named = "; ".join(f"empty in {int(missing[split])} of {counts[split].num_examples} {split} rows"
                      for split in ("train", "eval") if missing[split])

    with pytest.raises(StageError) as blocked:
        validate_statistics(statistics, str(tmp_path / "schema"), str(tmp_path / "a"), span=2,
                            statistics_root=first_span["store"], schema_metadata=metadata, model_name=MODEL)
    first_line = str(blocked.value).splitlines()[0]
    assert first_line.startswith("Span 2 disagrees with the kept schema, version 1 of model 'wine' ")
    assert f"on 1 column(s): {column} ({named}; a dense feature of the schema, required in every row)" in first_line
    assert "--update-schema" in first_line

    # --warn-on-anomalies cannot let it through: transform could not read the column.
    with pytest.raises(StageError) as still_blocked:
        validate_statistics(statistics, str(tmp_path / "schema"), str(tmp_path / "b"), blocking=False, span=2,
                            statistics_root=first_span["store"], schema_metadata=metadata, model_name=MODEL)
    first_line = str(still_blocked.value).splitlines()[0]
    assert first_line.startswith("Span 2 has missing values in 1 column(s) that the kept schema, version 1 of "
                                 "model 'wine' ")
    assert f"requires in every row (dense features, as TFX's SchemaGen infers a column filled in every row of its " \
           f"span): {column} ({named}). Transform cannot read such rows, so --warn-on-anomalies cannot let them " \
           "through: fill in the values, or, if the column may be empty from now on, rerun with --update-schema" \
           in first_line
    assert stored_spans(model_store(first_span["store"], MODEL)) == [1], "a stopped span is not kept"


def test_a_serving_sample_without_a_dense_column_is_named_as_requests_the_model_refuses(first_span, tmp_path):
    root, column = first_span["root"], first_span["column"]
    label = stranger_data.label_column(MODEL)
    header, rows = read_table(first_span["csv"])
    header = [name for name in header if name != label]
    for row in rows[:10]:
        row[column] = ""
    serving = stranger_data.write_csv(str(tmp_path / "serving.csv"), header, [[row[n] for n in header] for row in rows])
    generate_statistics(str(root / "examples-1"), str(tmp_path / "statistics"), serving_data=serving)
    with pytest.raises(StageError) as blocked:
        validate_statistics(str(tmp_path / "statistics"), first_span["schema_dir"], str(tmp_path / "a"),
                            schema_metadata=first_span["metadata"])
    assert str(blocked.value).splitlines()[0] == (
        f"The serving sample has missing values in 1 column(s) that the schema requires in every row (dense "
        f"features: the served model refuses a request without them): {column} (empty in 10 of {len(rows)} serving "
        "rows). Make clients send them, or make the columns optional in a curated --schema: value_count { min: 1 "
        "max: 1 } instead of their shape, and a presence min_fraction below 1.")
    # Not a training split: with --warn-on-anomalies it is a warning, as before.
    result = validate_statistics(str(tmp_path / "statistics"), first_span["schema_dir"], str(tmp_path / "b"),
                                 blocking=False, schema_metadata=first_span["metadata"])
    assert {(row["split"], row["feature"]) for row in result["anomalies"] if row["check"] == "schema"} == {
        ("serving", column)}


def test_a_schema_kept_before_inferred_schemas_had_shapes_is_used_as_written(first_span, tmp_path):
    """A store whose kept schema has no shapes, as runs before this change kept them (TFDV's inference without
    shapes: one value when present, and only the label required): a later span with an empty cell in an
    always-filled column passes, and the schema stays sparse."""
    root, column = first_span["root"], first_span["column"]
    store = str(tmp_path / "old-store")
    old = load_schema(first_span["schema_dir"])
    for feature in old.feature:
        if feature.HasField("shape"):
            feature.ClearField("shape")
            feature.value_count.min = feature.value_count.max = 1
        if feature.name != stranger_data.label_column(MODEL):
            feature.presence.ClearField("min_fraction")
    keep_schema(model_store(store, MODEL), 1, text_format.MessageToString(old), span=1)
    write_span_with_empty_cells(root, 3, column)
    statistics, _ = span_statistics(root, 3)
    metadata = make_schema(statistics, str(tmp_path / "schema"), module=MODULE, statistics_root=store,
                           model_name=MODEL, span=3)
    assert metadata["origin"] == "kept"
    assert not any(feature.HasField("shape") for feature in load_schema(str(tmp_path / "schema")).feature)
    result = validate_statistics(statistics, str(tmp_path / "schema"), str(tmp_path / "a"), span=3,
                                 statistics_root=store, schema_metadata=metadata, model_name=MODEL)
    assert [row for row in result["anomalies"] if row["check"] == "schema"] == []


@pytest.mark.slow
def test_transform_train_serving_and_update_schema_take_both_shapes(first_span, tmp_path):
    """Transform and train on the dense schema; the serving signature requires a dense feature and not a sparse
    one; --update-schema makes the column sparse, and evaluate measures the new model and the serving one on the
    eval examples the serving one can read."""
    from components.stage_logic.evaluate import evaluate_model, required_features
    from components.stage_logic.train import SERVING_SIGNATURE, train_model
    from components.stage_logic.transform import transform_examples
    from components.tf_serving.warmup import raw_examples, without_feature

    root, column = first_span["root"], first_span["column"]
    label = stranger_data.label_column(MODEL)

    def trained(examples, schema_dir, name):
        graph, transformed = str(tmp_path / f"graph-{name}"), str(tmp_path / f"transformed-{name}")
        transform_examples(examples, schema_dir, MODULE, graph, transformed)
        model = str(tmp_path / f"model-{name}")
        result = train_model(transformed, graph, MODULE, model, train_steps=200, examples_dir=examples)
        return model, result

    model, result = trained(str(root / "examples-1"), first_span["schema_dir"], "dense")
    assert result["final"]["val_accuracy"] > 0.8
    assert set(required_features(model)) == set(first_span["dense"])
    serve = tf.saved_model.load(model).signatures[SERVING_SIGNATURE]
    [example] = [without_feature(e, label) for e in raw_examples(str(root / "examples-1"), count=1)]
    assert serve(examples=tf.constant([without_feature(example, "malic_acid")]))["probabilities"].shape == (1, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"Feature: {column} .* is required but could not be"):
        serve(examples=tf.constant([without_feature(example, column)]))

    # Span 4 leaves the column empty in some rows; --update-schema keeps it as version 2, where it is sparse.
    write_span_with_empty_cells(root, 4, column)
    statistics, ingested = span_statistics(root, 4)
    metadata = make_schema(statistics, str(tmp_path / "schema-4"), module=MODULE, statistics_root=first_span["store"],
                           model_name=MODEL, span=4, update_schema=True)
    assert metadata["origin"] == "updated"
    updated = {feature.name: feature for feature in load_schema(str(tmp_path / "schema-4")).feature}
    assert not updated[column].HasField("shape")
    candidate, _ = trained(str(root / "examples-4"), str(tmp_path / "schema-4"), "updated")
    eval_statistics = load_statistics(statistics, "eval").datasets[0]
    unreadable = int(next(f for f in eval_statistics.features if f.path.step[0] == column)
                     .num_stats.common_stats.num_missing)
    assert unreadable >= 1, "some of the emptied rows are in the eval split"
    total = ingested["row_counts"]["eval"]
    decision = evaluate_model(candidate, str(root / "examples-4"), str(tmp_path / "schema-4"), MODULE,
                              str(tmp_path / "evaluation"), baseline_dir=model, baseline_version=1, threshold=0.5)
    assert decision["reasons"][0] == (
        f"Both models were measured on the {total - unreadable} of {total} eval examples that serving model version "
        f"1 can read: it requires {column} in every example (a dense feature of the schema it was trained with), "
        "which this span's schema lets be empty.")
    overall = decision["overall"]
    assert overall["candidate"]["example_count"] == overall["baseline"]["example_count"] == total - unreadable
    assert decision["baseline_version"] == 1 and any("serving model version 1" in r for r in decision["reasons"][1:])
