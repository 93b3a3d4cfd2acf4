"""Asks TF Serving for predictions on labelled rows and checks them: the proof that a published model serves.

    python -m components.tf_serving.serving_request --url http://localhost:8501 [--model-name penguins] [--rows 30]

The model's default signature takes serialized raw tf.Examples (the transform graph is inside), so
each CSV row becomes a tf.Example typed by the schema (INT, FLOAT, BYTES; missing values left out),
sent base64-encoded to TF Serving's REST API (`/v1/models/<name>:predict`). The label column is left
out of the request and compared with the class the model names (its `classes` output): exit 0 only
when the accuracy reaches `--min-accuracy`. The defaults are the demo's: the Palmer penguins CSV and its curated schema.
"""
import argparse
import base64
import csv
import importlib.resources
import json
import sys
import urllib.error
import urllib.request

from components.data.tf_example import serialize_example

MISSING_VALUES = {"", "NA", "N/A", "NULL", "null"}


class ServingRequestError(Exception):
    """A request that did not get usable predictions; one line saying what to check."""


def demo_csv():
    """The Palmer penguins CSV shipped inside the `palmerpenguins` package."""
    return str(importlib.resources.files("palmerpenguins") / "data" / "penguins.csv")


def feature_types(schema_path):
    """{feature name: int, float or str} from a TFDV schema (text format)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    with open(schema_path) as source:
        schema = text_format.Parse(source.read(), schema_pb2.Schema())
    python_type = {schema_pb2.INT: int, schema_pb2.FLOAT: float, schema_pb2.BYTES: str}
    return {feature.name: python_type[feature.type] for feature in schema.feature}


def request_body(rows, types, label_key):
    """TF Serving's REST `predict` body for `rows` (CSV dicts), without the label."""
    instances = []
    for row in rows:
        values = {name: types[name](value) for name, value in row.items()
                  if name != label_key and name in types and value not in MISSING_VALUES}
        instances.append({"b64": base64.b64encode(serialize_example(values)).decode()})
    return {"signature_name": "serving_default", "instances": instances}


def predict(url, model_name, body, timeout=30):
    """TF Serving's predictions for `body`."""
    endpoint = f"{url.rstrip('/')}/v1/models/{model_name}:predict"
    request = urllib.request.Request(endpoint, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        raise ServingRequestError(f"TF Serving at {endpoint} answered {error.code}: "
                                  f"{error.read().decode(errors='replace')[:300]}") from error
    except (urllib.error.URLError, OSError) as error:
        raise ServingRequestError(f"TF Serving at {endpoint} cannot be reached ({getattr(error, 'reason', error)}): "
                                  "is it port-forwarded (kubectl -n kubeflow port-forward svc/tf-serving 8501)?") \
            from error
    except ValueError as error:
        raise ServingRequestError(f"TF Serving at {endpoint} did not answer JSON ({error})") from error
    predictions = answer.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(body["instances"]):
        raise ServingRequestError(f"TF Serving at {endpoint} gave no prediction per instance: {str(answer)[:300]}")
    return predictions


def predicted_classes(predictions):
    """The class each prediction names (the serving signature's `classes` output)."""
    if not all(isinstance(prediction, dict) and "classes" in prediction for prediction in predictions):
        raise ServingRequestError(f"the predictions name no classes (a classification model's serving "
                                  f"signature has a `classes` output): {str(predictions[0])[:200]}")
    return [prediction["classes"] for prediction in predictions]


def accuracy(classes, labels):
    """The share of rows whose predicted class is the label."""
    return sum(predicted == label for predicted, label in zip(classes, labels)) / len(labels)


def main(argv=None):
    from components.penguins import curated_schema_path

    parser = argparse.ArgumentParser(prog="python -m components.tf_serving.serving_request",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="TF Serving's REST API, e.g. http://localhost:8501")
    parser.add_argument("--model-name", default="penguins", help="default: %(default)s")
    parser.add_argument("--data", default="", help="a CSV file with the label column (default: the demo data)")
    parser.add_argument("--schema", default="", help="the schema typing its columns (default: the demo's)")
    parser.add_argument("--label", default="species", help="the label column (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=30, help="how many rows with a label to send "
                        "(default: %(default)s, spread over the file)")
    parser.add_argument("--min-accuracy", type=float, default=0.8, help="default: %(default)s")
    args = parser.parse_args(argv)

    with open(args.data or demo_csv(), newline="") as source:
        labelled = [row for row in csv.DictReader(source) if row.get(args.label) not in MISSING_VALUES | {None}]
    if not labelled:
        print(f"Error: --data {args.data or demo_csv()} has no rows with a {args.label!r} value", file=sys.stderr)
        return 2
    rows = labelled[::max(1, len(labelled) // args.rows)][:args.rows]
    try:
        predictions = predict(args.url, args.model_name,
                              request_body(rows, feature_types(args.schema or curated_schema_path()), args.label))
        classes = predicted_classes(predictions)
    except ServingRequestError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    share = accuracy(classes, [row[args.label] for row in rows])
    print(f"TF Serving predicted {len(rows)} rows of {args.data or 'the demo data'}: accuracy {share:.3f}")
    return 0 if share >= args.min_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
