"""Validate (TFX's ExampleValidator): each split's statistics against the schema.

Anomalies block the run by default, with a message listing each one; with `blocking=False` they are
reported as warnings and the run goes on.
"""
import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components import layout
from components.errors import StageError
from components.schema import load_schema
from components.statistics import load_statistics

ANOMALIES_FILE = "SchemaDiff.pb"


def _anomaly_rows(split, anomalies):
    rows = []
    infos = list(anomalies.anomaly_info.items())
    if anomalies.HasField("dataset_anomaly_info"):
        infos.append(("(dataset)", anomalies.dataset_anomaly_info))
    for feature, info in sorted(infos):
        for reason in info.reason:
            rows.append({
                "split": split,
                "feature": feature,
                "kind": anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
                "detail": reason.description or reason.short_description,
            })
    return rows


def format_anomalies(rows):
    return "\n".join(f"  - {r['split']}: feature '{r['feature']}': {r['kind']}: {r['detail']}" for r in rows)


def validate_statistics(statistics_dir, schema_dir, output_dir, blocking=True):
    """Writes each split's anomalies under `output_dir`; returns them as rows (split, feature, kind, detail)."""
    schema = load_schema(schema_dir)
    rows = []
    for split in layout.split_names(statistics_dir):
        anomalies = tfdv.validate_statistics(statistics=load_statistics(statistics_dir, split), schema=schema)
        os.makedirs(layout.split_dir(output_dir, split), exist_ok=True)
        with open(os.path.join(layout.split_dir(output_dir, split), ANOMALIES_FILE), "wb") as sink:
            sink.write(anomalies.SerializeToString())
        rows.extend(_anomaly_rows(split, anomalies))
    if rows and blocking:
        raise StageError(
            f"Validation found {len(rows)} anomalies against the schema; fix the data or the schema, "
            f"or pass --warn-on-anomalies to go on:\n{format_anomalies(rows)}")
    if rows:
        print(f"Warning: validation found {len(rows)} anomalies (not blocking):\n{format_anomalies(rows)}")
    return rows
