"""Validate (TFX's ExampleValidator): anomalies, drift and skew, from the statistics.

- Schema: every split against the schema, in its environment (the serving sample in SERVING, so
  serving requests without the label are fine).
- Drift: this span's train split against the previous span's, found in the statistics store, with
  the thresholds the schema sets per feature (L-infinity for categories, Jensen-Shannon divergence
  for numbers). The train split is compared because it is the larger and the one the model learns.
- Skew: the serving sample, when given, against the train split, with the schema's skew thresholds.

Anomalies block the run by default, with a message listing each one; with `blocking=False` they are
reported as warnings and the run goes on. A span that passes is stored for the next span's check.
"""
import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components import layout
from components.errors import StageError
from components.ingest import SERVING_SPLIT
from components.schema import SERVING_ENVIRONMENT, TRAINING_ENVIRONMENT, load_schema
from components.statistics import load_statistics
from components.statistics_store import local_span_statistics, previous_span, store_span_statistics

ANOMALIES_FILE = "SchemaDiff.pb"
_COMPARATOR_PREFIX = "COMPARATOR_"
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


def _anomaly_rows(split, anomalies, check="schema", compared_with="", comparisons_only=False):
    """One row per anomaly reason; drift and skew rows carry the measured value and threshold."""
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
            rows.append(row)
    return rows


def format_anomalies(rows):
    return "\n".join(f"  - {r['split']}: feature '{r['feature']}': {r['kind']}: {r['detail']}" for r in rows)


def _write_anomalies(output_dir, name, anomalies):
    os.makedirs(layout.split_dir(output_dir, name), exist_ok=True)
    with open(os.path.join(layout.split_dir(output_dir, name), ANOMALIES_FILE), "wb") as sink:
        sink.write(anomalies.SerializeToString())


def validate_statistics(statistics_dir, schema_dir, output_dir, blocking=True, span=0, statistics_root=""):
    """Checks schema, drift and skew; returns the anomaly rows and what each check compared."""
    schema = load_schema(schema_dir)
    environment = (lambda name: name) if schema.default_environment else (lambda name: None)
    splits = layout.split_names(statistics_dir)
    serving = load_statistics(statistics_dir, SERVING_SPLIT) if SERVING_SPLIT in splits else None
    earlier = previous_span(statistics_root, span) if statistics_root and span else None
    rows, checks = [], {}

    for split in splits:
        statistics = load_statistics(statistics_dir, split)
        if split == SERVING_SPLIT:
            anomalies = tfdv.validate_statistics(statistics, schema, environment(SERVING_ENVIRONMENT))
            rows.extend(_anomaly_rows(split, anomalies))
        elif split == layout.TRAIN and earlier is not None:
            with local_span_statistics(statistics_root, earlier) as earlier_dir:
                previous = load_statistics(earlier_dir, layout.TRAIN)
            anomalies = tfdv.validate_statistics(
                statistics, schema, environment(TRAINING_ENVIRONMENT), previous_statistics=previous)
            rows.extend(_anomaly_rows(split, anomalies, "drift", f"span {earlier}"))
        else:
            anomalies = tfdv.validate_statistics(statistics, schema, environment(TRAINING_ENVIRONMENT))
            rows.extend(_anomaly_rows(split, anomalies))
        _write_anomalies(output_dir, split, anomalies)

    if serving is not None:
        skew = tfdv.validate_statistics(load_statistics(statistics_dir, layout.TRAIN), schema,
                                        environment(TRAINING_ENVIRONMENT), serving_statistics=serving)
        rows.extend(_anomaly_rows("serving", skew, "skew", "train", comparisons_only=True))
        _write_anomalies(output_dir, "skew", skew)

    checks["drift"] = (f"against span {earlier}" if earlier is not None else
                       "not checked: the data has no spans" if not span else
                       "not checked: no statistics store (--statistics-root)" if not statistics_root else
                       "not checked: no earlier span in the statistics store")
    checks["skew"] = "against the serving sample" if serving is not None else "not checked: no serving sample"
    for check, outcome in checks.items():
        print(f"{check}: {outcome}")

    if rows and blocking:
        raise StageError(
            f"Validation found {len(rows)} anomalies; fix the data or the schema, "
            f"or pass --warn-on-anomalies to go on:\n{format_anomalies(rows)}")
    if rows:
        print(f"Warning: validation found {len(rows)} anomalies (not blocking):\n{format_anomalies(rows)}")
    if statistics_root and span:
        store_span_statistics(statistics_dir, statistics_root, span,
                              [split for split in splits if split != SERVING_SPLIT])
    return {"anomalies": rows, "checks": checks}


def anomalies_markdown(result):
    """The validation outcome as Markdown: what was compared, and each anomaly with its measurement."""
    from components.reports import markdown_table, number

    rows = result["anomalies"]
    lines = ["# Validation", "",
             f"**{len(rows)} anomalies.**" if rows else "**No anomalies.**", "",
             f"- Drift: {result['checks']['drift']}", f"- Skew: {result['checks']['skew']}", ""]
    if rows:
        lines.append(markdown_table(
            ["split", "feature", "check", "kind", "measured", "threshold", "detail"],
            [(r["split"], r["feature"], r["check"], r["kind"], number(r.get("measured")),
              number(r.get("threshold")), r["detail"]) for r in rows]))
    return "\n".join(lines) + "\n"
