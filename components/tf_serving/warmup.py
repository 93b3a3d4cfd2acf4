"""TF Serving warm-up requests: a few real requests TF Serving replays when it loads a version.

TF Serving reads `assets.extra/tf_serving_warmup_requests` (a TFRecord file of
`tensorflow_serving.apis.PredictionLog`s) and runs each request before the version serves, so the
first real request does not pay for TensorFlow's lazy initialisation. As TFX's InfraValidator does, the
requests are built from raw eval examples: here one `PredictRequest` per example, on the
`serving_default` signature, the label left out as a client would.
"""
import os

from components.data import layout

WARMUP_FOLDER = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
WARMUP_EXAMPLES = 5


def raw_examples(examples_dir, split=layout.EVAL, count=WARMUP_EXAMPLES):
    """Up to `count` serialized raw tf.Examples of a split of the ingest stage's examples."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(layout.examples_pattern(examples_dir, split)))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)
    return [record.numpy() for record in records]


def without_feature(serialized, name):
    """A serialized tf.Example without feature `name` (e.g. the label, which a client does not send)."""
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    if name in example.features.feature:
        del example.features.feature[name]
    return example.SerializeToString()


def write_warmup_requests(model_dir, examples, input_name, model_name="", signature_name="serving_default"):
    """Writes one PredictLog per serialized example into `model_dir`'s warm-up file; returns its path."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    folder = os.path.join(model_dir, WARMUP_FOLDER)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for example in examples:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto([example], dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(model_dir):
    """The PredictionLogs of a model folder's warm-up file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(model_dir, WARMUP_FOLDER, WARMUP_FILE)
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(path)]
