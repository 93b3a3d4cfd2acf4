"""The living pipeline's checks on real statistics: drift between spans, training-serving skew,
statistics per slice, and the statistics store that replaces TFX's Resolver."""
import csv
import os

import pytest

from components.data import layout
from components.errors import StageError
from components.stage_logic.ingest import ingest_examples
from components.stage_logic.statistics import generate_statistics, load_all_statistics, load_statistics
from components.stage_logic.validate import validate_statistics
from components.state.statistics_store import (
    conclude_span_verdict,
    drift_baseline,
    model_store,
    previous_span,
    read_span_verdict,
    store_span_statistics,
    stored_spans,
)

MODEL = "penguins"


def write_rows(path, rows, drop=()):
    columns = [name for name in rows[0] if name not in drop]
    with open(path, "w", newline="") as sink:
        writer = csv.DictWriter(sink, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def statistics_of(tmp_path, rows, serving_rows=None, slices=()):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = write_rows(tmp_path / "data.csv", rows)
    serving = write_rows(tmp_path / "serving.csv", serving_rows, drop=("species",)) if serving_rows else ""
    ingest_examples(data, str(tmp_path / "examples"))
    generate_statistics(str(tmp_path / "examples"), str(tmp_path / "statistics"), slice_columns=slices,
                        serving_data=serving)
    return str(tmp_path / "statistics")


def test_a_drifted_span_is_stopped_with_the_distance_and_threshold(tmp_path, statistics_dir, schema_dir,
                                                                   penguin_rows):
    root = str(tmp_path / "store")
    store = model_store(root, MODEL)
    first = validate_statistics(statistics_dir, schema_dir, str(tmp_path / "a1"), span=1, statistics_root=root,
                                model_name=MODEL)
    assert first["checks"]["drift"] == \
        "NOT CHECKED: no span of model 'penguins' before 1 has been kept yet (first span)"
    assert first["drift"] == [] and first["drift_baseline_span"] == 0
    assert stored_spans(store) == [1]
    conclude_span_verdict(store, 1, blessed=True, why=", published as version 1")

    gentoo_only = [row for row in penguin_rows if row["species"] == "Gentoo"]
    drifted = statistics_of(tmp_path / "drifted", gentoo_only)
    with pytest.raises(StageError) as raised:
        validate_statistics(drifted, schema_dir, str(tmp_path / "a2"), span=2, statistics_root=root,
                            model_name=MODEL)
    message = str(raised.value)
    assert "train (drift against span 1): feature 'species': COMPARATOR_L_INFTY_HIGH" in message
    assert "train (drift against span 1): feature 'island': COMPARATOR_L_INFTY_HIGH" in message
    assert stored_spans(store) == [1], "a refused span must not become the next span's reference"

    rows = validate_statistics(drifted, schema_dir, str(tmp_path / "a3"), blocking=False, span=2,
                               statistics_root=root, model_name=MODEL)["anomalies"]
    species = next(r for r in rows if r["check"] == "drift" and r["feature"] == "species")
    assert species["threshold"] == pytest.approx(0.25)
    assert species["measured"] > 0.5
    result = validate_statistics(drifted, schema_dir, str(tmp_path / "a4"), blocking=False, span=2,
                                 statistics_root=root, schema_metadata={"origin": "curated"}, model_name=MODEL)
    assert result["drift_baseline_span"] == 1
    assert result["checks"]["drift"].startswith(
        "7 of 8 features checked against span 1, the last span of model 'penguins' before 2 whose data was accepted "
        "(its data passed validation and its model was blessed, published as version 1)")
    by_feature = {row["feature"]: row for row in result["drift"]}
    assert by_feature["species"]["outcome"] == "ABOVE THRESHOLD" and by_feature["species"]["distance"] > 0.5
    assert by_feature["year"]["outcome"] == "not checked: no threshold for it in the schema"


def test_only_a_span_whose_data_was_accepted_becomes_the_drift_baseline(tmp_path, statistics_dir, schema_dir,
                                                                        penguin_rows):
    """Let through with --warn-on-anomalies, or its model not blessed (shuffled labels pass validation): the next
    span is still compared with the last span whose data passed validation and whose model was blessed."""
    root = str(tmp_path / "store")
    store = model_store(root, MODEL)
    validate_statistics(statistics_dir, schema_dir, str(tmp_path / "a1"), span=1, statistics_root=root,
                        model_name=MODEL)
    conclude_span_verdict(store, 1, blessed=True, why=", published as version 1")
    gentoo_only = statistics_of(tmp_path / "drifted", [row for row in penguin_rows if row["species"] == "Gentoo"])
    overridden = validate_statistics(gentoo_only, schema_dir, str(tmp_path / "a2"), span=2, statistics_root=root,
                                     model_name=MODEL, blocking=False)
    assert overridden["anomalies"] and overridden["span_verdict"]["validation"] == "overridden"
    conclude_span_verdict(store, 2, blessed=True, why=", published as version 2")
    validate_statistics(statistics_dir, schema_dir, str(tmp_path / "a3"), span=3, statistics_root=root,
                        model_name=MODEL)
    conclude_span_verdict(store, 3, blessed=False, why=" (accuracy 0.31 is below the threshold 0.8)")
    validate_statistics(statistics_dir, schema_dir, str(tmp_path / "a4"), span=4, statistics_root=root,
                        model_name=MODEL)  # its run then failed: push never concluded its verdict

    assert stored_spans(store) == [1, 2, 3, 4]
    assert [read_span_verdict(store, span)["accepted"] for span in (1, 2, 3, 4)] == [True, False, False, False]
    assert "let through with --warn-on-anomalies" in read_span_verdict(store, 2)["reason"]
    assert "not blessed (accuracy 0.31" in read_span_verdict(store, 3)["reason"]
    assert drift_baseline(store, 5)[0] == 1
    fifth = validate_statistics(statistics_dir, schema_dir, str(tmp_path / "a5"), span=5, statistics_root=root,
                                model_name=MODEL)
    assert fifth["drift_baseline_span"] == 1
    assert "its data passed validation and its model was blessed" in fifth["checks"]["drift"]


def test_serving_requests_without_the_label_pass_and_skew_is_measured(tmp_path, penguin_rows, schema_dir):
    statistics = statistics_of(tmp_path, penguin_rows, serving_rows=penguin_rows[::3])
    assert load_statistics(statistics, "serving").datasets[0].num_examples == len(penguin_rows[::3])
    result = validate_statistics(statistics, schema_dir, str(tmp_path / "anomalies"))
    assert result["anomalies"] == []
    assert result["checks"]["skew"].startswith("7 of 7 features checked against the serving sample")
    assert {row["feature"] for row in result["skew"] if row["distance"] is not None} == {
        "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"}


def test_skewed_serving_data_is_an_anomaly(tmp_path, penguin_rows, schema_dir):
    torgersen = [row for row in penguin_rows if row["island"] == "Torgersen"]
    statistics = statistics_of(tmp_path, penguin_rows, serving_rows=torgersen)
    rows = validate_statistics(statistics, schema_dir, str(tmp_path / "anomalies"), blocking=False)["anomalies"]
    skew = [r for r in rows if r["check"] == "skew"]
    assert {"island"} <= {r["feature"] for r in skew}
    island = next(r for r in skew if r["feature"] == "island")
    assert island["split"] == "serving (skew against train)"
    assert island["measured"] > island["threshold"] == pytest.approx(0.25)


def test_a_serving_sample_in_an_unknown_format_is_a_clear_error(tmp_path, examples_dir):
    (tmp_path / "requests.json").write_text("{}")
    with pytest.raises(StageError, match="--serving-data .*requests.json': give CSV files"):
        generate_statistics(examples_dir[0], str(tmp_path / "s"), serving_data=str(tmp_path / "requests.json"))


def test_statistics_per_slice(tmp_path, penguin_rows):
    statistics = statistics_of(tmp_path, penguin_rows, slices=["island"])
    names = {dataset.name for dataset in load_all_statistics(statistics, "train").datasets}
    assert names == {"All Examples", "island_Biscoe", "island_Dream", "island_Torgersen"}
    overall = load_statistics(statistics, "train").datasets
    assert len(overall) == 1 and overall[0].name == "All Examples"


def test_statistics_store_keeps_the_newest_earlier_span_and_replaces_reruns(tmp_path, statistics_dir):
    root = str(tmp_path / "store")
    for span in (1, 3, 4):
        store_span_statistics(statistics_dir, root, span, ["train", "eval"])
    assert stored_spans(root) == [1, 3, 4]
    assert (previous_span(root, 4), previous_span(root, 3), previous_span(root, 2), previous_span(root, 1)) == \
        (3, 1, 1, None)
    store_span_statistics(statistics_dir, root, 3, ["train", "eval"])
    files = sorted(os.listdir(os.path.join(root, "span-3", "Split-train")))
    assert files == ["FeatureStats.pb"]
    with open(layout.statistics_file(os.path.join(root, "span-3"), "train"), "rb") as stored, \
            open(layout.statistics_file(statistics_dir, "train"), "rb") as original:
        assert stored.read() == original.read()
