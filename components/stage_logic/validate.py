"""Validate (TFX's ExampleValidator): anomalies, drift and skew, from the statistics.

- Schema: every split against the schema, in its environment (the serving sample in SERVING, so
  serving requests without the label are fine).
- Drift: this span's train split against that of the last earlier span of the model whose data was
  accepted, found in the statistics store, on every feature: with the thresholds the schema sets, or where it sets none
  (an inferred or kept schema) with the default ones (`--drift-threshold`): L-infinity distance for
  categories, Jensen-Shannon divergence for numbers. The train split is compared because it is the
  larger and the one the model learns.
- Skew: the serving sample, when given, against the train split, the same way (`--skew-threshold`).

Every feature's distance and threshold is in the result and the report; a check that could not run
says why ("NOT CHECKED: ..."), never that it passed. Each schema anomaly carries the share of the split's
examples it concerns, where the statistics tell it (missing, of the wrong type, outside the domain).

Anomalies block the run by default, with a message listing each one (led, when the span disagrees with
the model's kept schema, by a line naming that schema and the two ways forward); with `blocking=False`
they are reported as warnings and the run goes on, except where a train or eval split leaves a dense
feature of the schema (one with a shape) empty: transform could not read it, so that always stops here,
with one line naming the columns. A span that is let through is stored in the model's
folder of the statistics store with its verdict; it becomes a later span's drift baseline only once push
records it accepted (validation passed without an override, model blessed).
"""
import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.data import layout
from components.errors import StageError
from components.stage_logic.schema import (
    DEFAULT_DRIFT_THRESHOLD,
    DEFAULT_SKEW_THRESHOLD,
    SERVING_ENVIRONMENT,
    TRAINING_ENVIRONMENT,
    dense_gaps,
    describe_kept_schema,
    keep_inferred_schema,
    load_schema,
    statistics_name,
)
from components.stage_logic.statistics import load_statistics, ordered_splits
from components.state.statistics_store import (
    VALIDATION_OVERRIDDEN,
    VALIDATION_PASSED,
    drift_baseline,
    local_span_statistics,
    model_store,
    record_span_verdict,
    store_span_statistics,
    stored_spans,
)
from components.state.storage import Storage
from components.validation import drift_measures
from components.validation.column_settings import check_threshold

ANOMALIES_FILE = "SchemaDiff.pb"
_COMPARATOR_PREFIX = "COMPARATOR_"
_NEW_COLUMN = "SCHEMA_NEW_COLUMN"
_MAX_DETAIL = 500


def _shorten(text):
    """TFDV quotes offending values in full; a report keeps the first few hundred characters."""
    if len(text) <= _MAX_DETAIL:
        return text
    return f"{text[:_MAX_DETAIL]}... ({len(text) - _MAX_DETAIL} more characters)"


def _measurements(anomalies, check):
    """{feature: (measured value, threshold)} of the drift or skew measurements."""
    found = {}
    for info in anomalies.drift_skew_info:
        measurements = info.drift_measurements if check == "drift" else info.skew_measurements
        if measurements:
            worst = max(measurements, key=lambda m: m.value - m.threshold)
            found[".".join(info.path.step)] = (worst.value, worst.threshold)
    return found


_ABSENCE_KINDS = {"FEATURE_TYPE_LOW_FRACTION_PRESENT", "FEATURE_TYPE_LOW_NUMBER_PRESENT", "FEATURE_TYPE_NOT_PRESENT",
                  "SCHEMA_MISSING_COLUMN"}
_WRONG_TYPE_KINDS = {"FLOAT_TYPE_NOT_FLOAT", "INT_TYPE_NOT_INT_STRING", "INT_TYPE_NOT_STRING", "UNEXPECTED_DATA_TYPE",
                     "BOOL_TYPE_UNEXPECTED_STRING", "BOOL_TYPE_UNEXPECTED_FLOAT"}
# A dense feature (one with a shape) that some examples leave empty, or fill with another number of values.
_SHAPE_KIND = "INVALID_FEATURE_SHAPE"
_OUT_OF_RANGE_KINDS = {"INT_TYPE_SMALL_INT", "INT_TYPE_BIG_INT", "FLOAT_TYPE_SMALL_FLOAT", "FLOAT_TYPE_BIG_FLOAT"}


def _out_of_range_count(feature, schema_feature):
    """About how many values lie outside the schema's numeric range, from the standard histogram
    (a bucket across a bound counts in proportion)."""
    domain = (schema_feature.int_domain if schema_feature.HasField("int_domain") else
              schema_feature.float_domain if schema_feature.HasField("float_domain") else None)
    histogram = next((h for h in feature.num_stats.histograms if h.type == h.STANDARD), None)
    if domain is None or histogram is None:
        return None
    low = domain.min if domain.HasField("min") else float("-inf")
    high = domain.max if domain.HasField("max") else float("inf")
    outside = 0.0
    for bucket in histogram.buckets:
        width = bucket.high_value - bucket.low_value
        inside_low, inside_high = max(bucket.low_value, low), min(bucket.high_value, high)
        if width <= 0:
            inside = 1.0 if low <= bucket.low_value <= high else 0.0
        else:
            inside = max(inside_high - inside_low, 0.0) / width
        outside += bucket.sample_count * (1.0 - inside)
    return outside


def affected_share(dataset, schema, feature_name, kind):
    """The share of the split's examples an anomaly concerns, where the statistics tell it, else None:
    examples without the feature, with values of the wrong type, out of the domain or out of range."""
    feature = next((f for f in dataset.features if ".".join(f.path.step) == feature_name), None)
    schema_feature = next((f for f in schema.feature if f.name == feature_name), None)
    examples = dataset.num_examples
    if feature is None or not examples:
        return 1.0 if feature is None and examples and kind in _ABSENCE_KINDS else None
    stats = feature.num_stats if feature.HasField("num_stats") else feature.string_stats
    common = stats.common_stats
    if kind in _ABSENCE_KINDS or (kind == _SHAPE_KIND and common.num_missing):
        return common.num_missing / examples
    if kind in _WRONG_TYPE_KINDS:
        return common.num_non_missing / examples
    if kind == "ENUM_TYPE_UNEXPECTED_STRING_VALUES" and schema_feature is not None and feature.HasField("string_stats"):
        domain = set(next((d.value for d in schema.string_domain if d.name == schema_feature.domain), []))
        domain |= set(schema_feature.string_domain.value)
        counts = ([(b.label, b.sample_count) for b in feature.string_stats.rank_histogram.buckets]
                  or [(v.value, v.frequency) for v in feature.string_stats.top_values])
        return sum(count for value, count in counts if value not in domain) / examples
    if kind in _OUT_OF_RANGE_KINDS and schema_feature is not None and feature.HasField("num_stats"):
        outside = _out_of_range_count(feature, schema_feature)
        return None if outside is None else outside / examples
    return None


def _anomaly_rows(split, anomalies, check="schema", compared_with="", comparisons_only=False, dataset=None,
                  schema=None):
    """One row per anomaly reason; drift and skew rows carry the measured value and threshold, schema
    rows the share of the split's examples concerned (given the split's statistics and the schema)."""
    rows = []
    infos = list(anomalies.anomaly_info.items())
    if anomalies.HasField("dataset_anomaly_info"):
        infos.append(("(dataset)", anomalies.dataset_anomaly_info))
    measured = _measurements(anomalies, check) if check != "schema" else {}
    for feature, info in sorted(infos):
        for reason in info.reason:
            kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type)
            is_comparison = kind.startswith(_COMPARATOR_PREFIX)
            if comparisons_only and not is_comparison:
                continue
            row = {"split": f"{split} ({check} against {compared_with})" if is_comparison else split,
                   "feature": feature, "check": check if is_comparison else "schema",
                   "kind": kind, "detail": _shorten(reason.description or reason.short_description)}
            if is_comparison and feature in measured:
                row["measured"], row["threshold"] = measured[feature]
            if not is_comparison and dataset is not None and schema is not None:
                row["share"] = affected_share(dataset, schema, feature, kind)
            rows.append(row)
    return rows


def format_anomalies(rows):
    return "\n".join(f"  - {r['split']}: feature '{r['feature']}': {r['kind']}: {r['detail']}" for r in rows)


def _write_anomalies(output_dir, name, anomalies):
    os.makedirs(layout.split_dir(output_dir, name), exist_ok=True)
    with open(os.path.join(layout.split_dir(output_dir, name), ANOMALIES_FILE), "wb") as sink:
        sink.write(anomalies.SerializeToString())


def _comparator_threshold(comparator):
    for measure, field in (("L-infinity", "infinity_norm"), ("Jensen-Shannon", "jensen_shannon_divergence")):
        if comparator.HasField(field):
            return measure, getattr(comparator, field).threshold
    return None, None


def _comparator(feature, check):
    return feature.drift_comparator if check == "drift" else feature.skew_comparator


def compared_features(schema, anomalies, check):
    """One row per feature of `schema` with a TFDV comparator (a curated schema's): the distance measured (or
    why none), the threshold, the verdict."""
    measured = _measurements(anomalies, check)
    rows = []
    for feature in schema.feature:
        measure, threshold = _comparator_threshold(_comparator(feature, check))
        if measure is None:
            continue
        row = {"feature": feature.name, "measure": f"{measure} (the schema's)", "threshold": threshold,
               "judged": False}
        if feature.name not in measured:
            row.update(distance=None, outcome="not checked: absent from one of the two data sets")
        else:
            distance = measured[feature.name][0]
            row.update(distance=distance, judged=True, outcome="ABOVE THRESHOLD" if distance > threshold else "ok",
                       reason=f"the schema's {measure} comparator measured {distance:.3g}")
        rows.append(row)
    return rows


_VERDICT_OUTCOMES = {drift_measures.DRIFT: "DRIFT", drift_measures.OK: "ok"}
_MEASURE_KINDS = {drift_measures.NUMERIC_MEASURE: "NORMALIZED_WASSERSTEIN", drift_measures.CATEGORICAL_MEASURE:
                  "L_INFINITY"}


def _verdict_row(verdict, ignore_flag):
    """A FeatureVerdict as a row of the feature-by-feature table."""
    chart = verdict.to_json()
    if verdict.verdict == drift_measures.IGNORED:
        outcome = f"not checked: ignored ({ignore_flag})"
    elif verdict.verdict == drift_measures.NOT_JUDGED:
        outcome = f"not checked: {verdict.reason}"
    else:
        outcome = _VERDICT_OUTCOMES[verdict.verdict]
    return {"feature": verdict.feature, "measure": verdict.measure or None, "threshold": verdict.threshold,
            "distance": verdict.value, "outcome": outcome, "reason": verdict.reason, "p_value": verdict.p_value,
            "judged": verdict.verdict in _VERDICT_OUTCOMES, "chart": chart["bins"] or chart["categories"],
            "chart_kind": verdict.kind}


def measured_features(baseline, current, schema, check, *, curated, default_threshold, column_thresholds=None,
                      ignored=(), tfdv_anomalies=None):
    """(rows, anomaly rows) of a drift or skew check: each feature judged by the schema's TFDV comparator where it
    names one (a curated schema), else by the calibrated measures of components/validation/drift_measures.py.

    A curated schema's features without a comparator stay unchecked unless given a threshold of their own
    (`column_thresholds`); a default threshold of 0 turns the measures off. The skew check leaves out the
    features serving requests do not carry (the label)."""
    column_thresholds = dict(column_thresholds or {})
    ignore_flag = "--drift-ignore" if check == "drift" else "not in serving requests"
    rows = compared_features(schema, tfdv_anomalies, check) if tfdv_anomalies is not None else []
    by_tfdv = {row["feature"] for row in rows}
    not_served = {f.name for f in schema.feature if SERVING_ENVIRONMENT in f.not_in_environment}
    present = {statistics_name(f) for dataset in (baseline, current) for f in dataset.features}
    candidates = sorted(present - by_tfdv - (not_served if check == "skew" else set()))
    if curated:
        for feature in schema.feature:
            if feature.name not in by_tfdv and feature.name not in column_thresholds and feature.name not in ignored:
                rows.append({"feature": feature.name, "measure": None, "threshold": None, "distance": None,
                             "judged": False, "outcome": "not checked: no threshold for it in the schema"})
        candidates = [name for name in candidates if name in column_thresholds or name in ignored]
    elif not default_threshold:
        flag = "--drift-threshold" if check == "drift" else "--skew-threshold"
        rows.extend({"feature": name, "measure": None, "threshold": None, "distance": None, "judged": False,
                     "outcome": f"not checked: {flag} 0"} for name in candidates
                    if name not in column_thresholds and name not in ignored)
        candidates = [name for name in candidates if name in column_thresholds or name in ignored]
    rows.extend({"feature": f.name, "measure": None, "threshold": None, "distance": None, "judged": False,
                 "outcome": "not checked: no values in either data set"} for f in schema.feature
                if f.name not in present and f.name not in by_tfdv and not (check == "skew" and f.name in not_served))
    categorical = {f.name for f in schema.feature if f.int_domain.is_categorical}
    verdicts = drift_measures.judge_drift(
        _only(baseline, candidates), _only(current, candidates), default_threshold=default_threshold or None,
        column_thresholds={name: value for name, value in column_thresholds.items() if name in candidates},
        ignored=[name for name in ignored if name in candidates], categorical=categorical.__contains__)
    rows.extend(_verdict_row(verdict, ignore_flag) for verdict in verdicts)
    anomalies = [{"feature": v.feature, "check": check, "kind": f"{_MEASURE_KINDS[v.measure]}_HIGH",
                  "detail": v.reason, "measured": v.value, "threshold": v.threshold}
                 for v in verdicts if v.drifted]
    return sorted(rows, key=lambda row: row["feature"]), anomalies


def _only(dataset, names):
    """A copy of a DatasetFeatureStatistics holding only the features `names`."""
    kept = type(dataset)()
    kept.CopyFrom(dataset)
    del kept.features[:]
    kept.features.extend(f for f in dataset.features if statistics_name(f) in names)
    return kept


def _check_summary(rows, compared_with):
    checked = [row for row in rows if row.get("judged")]
    above = [row["feature"] for row in checked if row["outcome"] != "ok"]
    ignored = [row["feature"] for row in rows if row["outcome"].startswith("not checked: ignored")]
    if not checked:
        return f"not checked: no feature has a threshold and values in both ({compared_with})"
    return (f"{len(checked)} of {len(rows)} features checked against {compared_with}; "
            + (f"above the threshold: {', '.join(above)}" if above else "none above its threshold")
            + (f"; ignored: {', '.join(ignored)}" if ignored else ""))


def _without_filled_in_columns(rows, schema_metadata):
    """(rows, columns): the rows less the "new column" alarms for columns that were in the header of the kept
    schema's span but had no value there (so no schema could have them), and those columns."""
    empty_then = set((schema_metadata.get("kept_schema") or {}).get("empty_columns") or [])
    filled = sorted({row["feature"] for row in rows if row["kind"] == _NEW_COLUMN and row["feature"] in empty_then})
    return [row for row in rows if not (row["kind"] == _NEW_COLUMN and row["feature"] in filled)], filled


def _check_named_columns(train, drift_ignore, *column_thresholds):
    """Stops with one line when --drift-ignore or a per-column threshold names a column the data does not have."""
    columns = sorted(statistics_name(feature) for feature in train.features)
    named = set(drift_ignore or ()).union(*(set(thresholds or {}) for thresholds in column_thresholds))
    unknown = sorted(named - set(columns))
    if unknown:
        raise StageError(f"--drift-ignore or a per-column --drift-threshold/--skew-threshold names "
                         f"{', '.join(map(repr, unknown))}, which is not a column of this span's train split (its "
                         f"columns: {', '.join(columns)}): check the spelling.")


def _drift_only(rows, span, earlier):
    """The line for a span stopped by drift alone: which columns moved, by which measure, and the ways forward."""
    if not rows or any(row["check"] != "drift" for row in rows):
        return ""
    moved = "; ".join(f"{row['feature']} ({row['detail']})" for row in rows)
    columns = ",".join(sorted({row["feature"] for row in rows}))
    return (f"Span {span} drifted from span {earlier} on {len({row['feature'] for row in rows})} column(s): {moved}. "
            f"If the data is wrong, fix it; if the change is expected, pass --drift-ignore {columns} (or a higher "
            f"--drift-threshold COLUMN=VALUE), or --warn-on-anomalies to train on it anyway.")


def _gap_words(gaps):
    """{feature: "empty in 3 of 120 train rows; not in the eval split"} from {split: {feature: what}}."""
    found = {}
    for split in ordered_splits(gaps):
        for feature, what in gaps[split].items():
            found.setdefault(feature, []).append(what)
    return {feature: "; ".join(whats) for feature, whats in found.items()}


def _kept_schema_mismatch(rows, schema_metadata, span, gaps=None):
    """The line that says a span disagrees with its model's kept schema, or "" when it does not; a dense feature
    left empty (`gaps`, of the train and eval splits) is said in words."""
    kept = schema_metadata.get("kept_schema") or {}
    differing, shape_kinds = {}, set()
    for row in rows:
        if row["check"] == "schema" and row["split"] != layout.SERVING and row["feature"] != "(dataset)":
            differing.setdefault(row["feature"], row["kind"])
            if row["kind"] == _SHAPE_KIND:
                shape_kinds.add(row["feature"])
    if schema_metadata.get("origin") != "kept" or not kept or not differing:
        return ""
    in_words = {feature: f"{what}; a dense feature of the schema, required in every row"
                for feature, what in _gap_words(gaps or {}).items() if feature in shape_kinds}
    columns = ", ".join(f"{feature} ({in_words.get(feature, kind)})" for feature, kind in sorted(differing.items()))
    this_span = f"Span {span}" if span else "This data"
    return (f"{this_span} disagrees with the kept schema, {describe_kept_schema(kept)}, on {len(differing)} "
            f"column(s): {columns}. If the change is intended, rerun with --update-schema to keep a schema "
            f"inferred from this span; if this is another data set, give it its own --model-name.")


def _dense_gaps_line(gaps, schema_metadata, span, blocking):
    """The line for a span that leaves dense features of the schema empty (`gaps`: {split: {feature: what}}), or
    "". In a train or eval split transform cannot read them, which --warn-on-anomalies cannot change; in the
    serving sample they are requests the model would refuse."""
    described = _gap_words(gaps)
    if not described:
        return ""
    origin = schema_metadata.get("origin")
    kept = schema_metadata.get("kept_schema") or {}
    schema = (f"the kept schema, {describe_kept_schema(kept)}," if origin == "kept" and kept else
              f"--schema {schema_metadata['description'].removeprefix('curated: ')!r}" if origin == "curated" and
              schema_metadata.get("description") else "the schema")
    optional = ("if the column may be empty from now on, rerun with --update-schema to keep a schema inferred from "
                "this span (the column then reaches preprocessing_fn as a SparseTensor)" if origin == "kept" else
                "make the column optional in the schema: value_count { min: 1 max: 1 } instead of its shape, and a "
                "presence min_fraction below 1")
    columns = ", ".join(f"{feature} ({what})" for feature, what in sorted(described.items()))
    this_span = f"Span {span}" if span else "This data"
    if set(gaps) == {layout.SERVING}:
        # The training data fills these columns, so a schema inferred again would have them dense again.
        curated = "in --schema" if origin == "curated" else "in a curated --schema"
        return (f"The serving sample has missing values in {len(described)} column(s) that {schema} requires in "
                f"every row (dense features: the served model refuses a request without them): {columns}. Make "
                f"clients send them, or make the columns optional {curated}: value_count {{ min: 1 max: 1 }} "
                "instead of their shape, and a presence min_fraction below 1.")
    return (f"{this_span} has missing values in {len(described)} column(s) that {schema} requires in every row "
            f"(dense features, as TFX's SchemaGen infers a column filled in every row of its span): {columns}. "
            f"Transform cannot read such rows{'' if blocking else ', so --warn-on-anomalies cannot let them through'}"
            f": fill in the values, or, {optional}.")


def validate_statistics(statistics_dir, schema_dir, output_dir, blocking=True, span=0, statistics_root="",
                        drift_threshold=DEFAULT_DRIFT_THRESHOLD, skew_threshold=DEFAULT_SKEW_THRESHOLD,
                        schema_metadata=None, model_name="", drift_ignore=(), drift_column_thresholds=None,
                        skew_column_thresholds=None, storage=None):
    """Checks schema, drift and skew; returns the anomaly rows, each feature's drift and skew, and what
    each check compared (or why it did not).

    The drift baseline is the newest earlier span of `model_name` whose data was accepted (see
    components/state/statistics_store.py). A span that is let through is stored in the model's store with
    its verdict: validation passed, or was overridden (anomalies with `blocking` False). `drift_ignore` and the
    per-column thresholds (`{column: threshold}`) name columns of the data."""
    storage = storage or Storage()
    check_threshold(drift_threshold, "--drift-threshold")  # a spec run from a dashboard takes any value
    check_threshold(skew_threshold, "--skew-threshold")
    schema_metadata = schema_metadata or {}
    store = model_store(statistics_root, model_name) if statistics_root else ""
    schema = load_schema(schema_dir)
    curated = schema_metadata.get("origin") == "curated"
    environment = (lambda name: name) if schema.default_environment else (lambda name: None)
    splits = layout.split_names(statistics_dir)
    serving = load_statistics(statistics_dir, layout.SERVING) if layout.SERVING in splits else None
    earlier, baseline_verdict = drift_baseline(store, span, storage) if store and span else (None, {})
    rows, checks, compared, gaps = [], {}, {"drift": [], "skew": []}, {}
    train_statistics = load_statistics(statistics_dir, layout.TRAIN)
    train = train_statistics.datasets[0]
    _check_named_columns(train, drift_ignore, drift_column_thresholds, skew_column_thresholds)

    for split in splits:
        statistics = load_statistics(statistics_dir, split)
        split_environment = environment(SERVING_ENVIRONMENT if split == layout.SERVING else TRAINING_ENVIRONMENT)
        split_gaps = dense_gaps(schema, statistics.datasets[0], split_environment, split)
        if split_gaps:
            gaps[split] = split_gaps
        if split == layout.SERVING:
            anomalies = tfdv.validate_statistics(statistics, schema, environment(SERVING_ENVIRONMENT))
            rows.extend(_anomaly_rows(split, anomalies, dataset=statistics.datasets[0], schema=schema))
        elif split == layout.TRAIN and earlier is not None:
            with local_span_statistics(store, earlier, storage) as earlier_dir:
                previous = load_statistics(earlier_dir, layout.TRAIN)
            anomalies = tfdv.validate_statistics(
                statistics, schema, environment(TRAINING_ENVIRONMENT), previous_statistics=previous)
            rows.extend(_anomaly_rows(split, anomalies, "drift", f"span {earlier}", dataset=statistics.datasets[0],
                                      schema=schema))
            compared["drift"], drifted = measured_features(
                previous.datasets[0], statistics.datasets[0], schema, "drift", curated=curated,
                default_threshold=drift_threshold, column_thresholds=drift_column_thresholds, ignored=drift_ignore,
                tfdv_anomalies=anomalies)
            rows.extend({"split": f"{split} (drift against span {earlier})", **row} for row in drifted)
        else:
            anomalies = tfdv.validate_statistics(statistics, schema, environment(TRAINING_ENVIRONMENT))
            rows.extend(_anomaly_rows(split, anomalies, dataset=statistics.datasets[0], schema=schema))
        _write_anomalies(output_dir, split, anomalies)

    if serving is not None:
        skew = tfdv.validate_statistics(train_statistics, schema,
                                        environment(TRAINING_ENVIRONMENT), serving_statistics=serving)
        rows.extend(_anomaly_rows("serving", skew, "skew", "train", comparisons_only=True))
        compared["skew"], skewed = measured_features(
            train, serving.datasets[0], schema, "skew", curated=curated, default_threshold=skew_threshold,
            column_thresholds=skew_column_thresholds, tfdv_anomalies=skew)
        rows.extend({"split": "serving (skew against train)", **row} for row in skewed)
        _write_anomalies(output_dir, "skew", skew)

    baseline = (f"span {earlier}, the last span of model {model_name!r} before {span} whose data was accepted "
                f"({baseline_verdict.get('reason', 'accepted')})")
    checks["drift"] = (_check_summary(compared["drift"], f"{baseline} (train split)") if earlier is not None else
                       "NOT CHECKED: the data has no spans ({SPAN} in --data)" if not span else
                       "NOT CHECKED: no statistics store (--statistics-root '')" if not statistics_root else
                       f"NOT CHECKED: no span of model {model_name!r} before {span} has been kept yet (first span)"
                       if not [kept for kept in stored_spans(store, storage) if kept < span] else
                       f"NOT CHECKED: no span of model {model_name!r} before {span} has been accepted yet (a span "
                       "is accepted when its data passed validation without --warn-on-anomalies and its model "
                       "was blessed)")
    checks["skew"] = (_check_summary(compared["skew"], "the serving sample (train split)") if serving is not None
                      else "NOT CHECKED: no serving sample (--serving-data)")
    for check, outcome in checks.items():
        print(f"{check}: {outcome}")

    rows, filled = _without_filled_in_columns(rows, schema_metadata)
    if filled:
        kept = schema_metadata.get("kept_schema") or {}
        checks["filled_in_columns"] = (
            f"{', '.join(filled)}: in the header of span {kept.get('span') or '?'} but empty there, so not in the kept "
            "schema; their values are not validated nor used by the schema's consumers until --update-schema "
            "keeps a schema inferred from a span that has them")
        print(f"note: {checks['filled_in_columns']}")
    unreadable = {split: found for split, found in gaps.items() if split != layout.SERVING}
    only_serving = all(row["split"].startswith(layout.SERVING) for row in rows)
    lead = (_kept_schema_mismatch(rows, schema_metadata, span, unreadable)
            or _dense_gaps_line(unreadable or (gaps if only_serving else {}), schema_metadata, span, blocking)
            or _drift_only(rows, span, earlier))
    if rows and blocking:
        raise StageError(
            (lead or f"Validation found {len(rows)} anomalies; fix the data or the schema, "
             "or pass --warn-on-anomalies to go on.") + f"\n{format_anomalies(rows)}")
    if unreadable:
        raise StageError(_dense_gaps_line(unreadable, schema_metadata, span, blocking)
                         + (f"\n{format_anomalies(rows)}" if rows else ""))
    if rows:
        print(f"Warning: validation found {len(rows)} anomalies (not blocking):\n{format_anomalies(rows)}")
    kept, verdict = "", {}
    if store and span:
        store_span_statistics(statistics_dir, store, span, [split for split in splits if split != layout.SERVING],
                              storage)
        verdict = record_span_verdict(
            store, span, storage, validation=VALIDATION_OVERRIDDEN if rows else VALIDATION_PASSED,
            anomalies=len(rows), accepted=False,
            reason=(f"its {len(rows)} anomalies were let through with --warn-on-anomalies" if rows else
                    "its data passed validation; accepted once its model is blessed"))
    if store:
        kept = keep_inferred_schema(schema_dir, schema_metadata, storage)
    return {"anomalies": rows, "checks": checks, "drift": compared["drift"], "skew": compared["skew"],
            "schema": schema_metadata.get("description", ""), "model_name": model_name,
            "drift_baseline_span": earlier or 0, "drift_baseline_reason": baseline_verdict.get("reason", ""),
            "drift_baseline": baseline if earlier is not None else "",
            "span_verdict": verdict, "kept_schema": kept,
            "warnings": format_anomalies(rows).splitlines() if rows else []}


def anomalies_markdown(result):
    """The validation outcome as Markdown: what was compared, each feature's drift and skew, each anomaly."""
    from components.reports import markdown_table, number

    def share(row):
        return "-" if row.get("share") is None else f"{100 * row['share']:.1f}%"

    rows = result["anomalies"]
    lines = ["# Validation", "",
             f"**{len(rows)} anomalies.**" if rows else "**No anomalies.**", "",
             f"- Drift: {result['checks']['drift']}", f"- Skew: {result['checks']['skew']}", ""]
    if rows:
        lines.append(markdown_table(
            ["split", "feature", "kind", "rows", "check", "measured", "threshold", "detail"],
            [(r["split"], r["feature"], r["kind"], share(r), r["check"], number(r.get("measured")),
              number(r.get("threshold")), r["detail"]) for r in rows]))
    for check in ("drift", "skew"):
        if result.get(check):
            compared = result.get("drift_baseline") or "the baseline span" if check == "drift" else "the serving sample"
            lines += ["", f"## {check.capitalize()}, feature by feature", "", markdown_table(
                ["feature", "measure", "value", "threshold", "outcome", "why"],
                [(r["feature"], r["measure"] or "-", number(r["distance"]), number(r["threshold"]), r["outcome"],
                  r.get("reason", "") if r["outcome"] in ("ok", "DRIFT") else "")
                 for r in sorted(result[check], key=lambda r: (r["distance"] is None, -(r["distance"] or 0)))])]
            lines += _overlays(result[check], "span " + str(result.get("drift_baseline_span") or "")
                               if check == "drift" else "train split", "this span" if check == "drift" else
                               "serving sample", compared)
    return "\n".join(lines) + "\n"


_BAR_WIDTH = 30


def _bar(share):
    return "█" * round(share * _BAR_WIDTH) or ("▏" if share > 0 else "")


def _overlays(rows, baseline_name, current_name, compared_with):
    """Both distributions of each feature that drifted (else of the three that moved most), side by side as
    bars: what a person looks at to see why a verdict was reached."""
    from components.reports import markdown_table

    charted = [row for row in rows if row.get("chart")]
    shown = [row for row in charted if row["outcome"] != "ok"] or sorted(
        charted, key=lambda row: -(row["distance"] or 0))[:3]
    lines = []
    for row in shown:
        lines += ["", f"### {row['feature']}: {row['outcome']}", "", f"{row.get('reason', '')} ({compared_with}).", ""]
        if row["chart_kind"] == "numeric":
            labels = [f"{bin_['low']:.4g} to {bin_['high']:.4g}" for bin_ in row["chart"]]
        else:
            labels = [str(category["value"]) for category in row["chart"]]
        lines.append(markdown_table(
            ["values", baseline_name, current_name],
            [(label, f"{_bar(item['baseline_share'])} {100 * item['baseline_share']:.1f}%",
              f"{_bar(item['current_share'])} {100 * item['current_share']:.1f}%")
             for label, item in zip(labels, row["chart"])]))
    return lines
