"""Train (TFX's Trainer): the user module's Keras model on the transformed examples.

The exported SavedModel serves raw data: its default signature takes serialized raw `tf.train.Example`s,
applies the transform graph from the transform stage, and predicts, so serving uses exactly the
preprocessing of training. A second signature, `transform_features`, returns the transformed
features (label included) so that evaluation can reuse the transform.
"""
import math

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components import layout
from components.errors import StageError
from components.autograph_rules import skip_autograph_for_libraries
from components.user_module import (CLASSIFICATION, load_user_module, train_batch_size,
                                    transformed_name)

SERVING_SIGNATURE = "serving_default"
TRANSFORM_SIGNATURE = "transform_features"
SERVING_INPUT = "examples"
MAX_EPOCHS = 10
SHUFFLE_BUFFER = 10_000
# Per-epoch validation, for the learning curves, looks at this many eval batches at most, so its cost
# does not grow with the data; the evaluate stage measures the whole eval split.
VALIDATION_BATCHES = 100


def _dataset(pattern, feature_spec, label, batch_size, repeat, seed):
    """Batches of (features, label) from gzipped tf.Examples; shuffled and endless when `repeat`."""
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP")
    if repeat:
        records = records.shuffle(SHUFFLE_BUFFER, seed=seed).repeat()

    def parse(batch):
        features = tf.io.parse_example(batch, feature_spec)
        return features, features.pop(label)

    return records.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def _label_vocabulary(tf_transform_output, label_key):
    try:
        return tf_transform_output.vocabulary_by_name(label_key)
    except (ValueError, OSError, tf.errors.NotFoundError):
        return None


# What a classifier's output is, and how the serving signature turns it into class probabilities.
SOFTMAX, LOGITS, SIGMOID, LOGIT, VALUE = "softmax", "logits", "sigmoid", "logit", "value"


def _final_activation(model):
    """The name of the activation the model's output goes through last ("linear" for none), or None."""
    layer = model.layers[-1]
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) if activation is not None else None


def _loss_from_logits(model):
    config = model.loss.get_config() if hasattr(model.loss, "get_config") else {}
    return bool(config.get("from_logits"))


def output_kind(model, problem_type, class_count, module):
    """What the model outputs (softmax, logits, sigmoid, logit; value for regression), and how many
    classes its probabilities will have; stops with one line when it fits none of these."""
    shape = model.output_shape
    if not isinstance(shape, tuple) or any(isinstance(part, (tuple, list)) for part in shape):
        raise StageError(f"build_model of --module {module!r} returns a model with several outputs {shape}: "
                         "return one output.")
    width = shape[-1] if len(shape) > 1 else 1
    if len(shape) > 2 or width is None:
        raise StageError(f"build_model of --module {module!r} returns a model whose output has shape {shape}: "
                         "end in (batch, classes) or (batch, 1).")
    activation = _final_activation(model)
    if problem_type != CLASSIFICATION:
        if width != 1:
            raise StageError(f"build_model of --module {module!r}: a regression model outputs one value per "
                             f"example, this one outputs shape {shape}: end in Dense(1).")
        return VALUE, 0
    if activation is None and _loss_from_logits(model):
        activation = "linear"
    if activation is None:
        raise StageError(f"build_model of --module {module!r}: cannot tell whether the output layer "
                         f"{type(model.layers[-1]).__name__} gives probabilities or logits: end in a Dense "
                         "layer with activation 'softmax' or 'sigmoid', or with no activation and a loss "
                         "with from_logits=True.")
    if width == 1:
        kinds = {"sigmoid": SIGMOID, "linear": LOGIT}
        classes = 2
    else:
        kinds = {"softmax": SOFTMAX, "linear": LOGITS}
        classes = width
    if activation not in kinds:
        raise StageError(f"build_model of --module {module!r}: a classifier's output layer ends in "
                         f"'{activation}' with shape {shape}; accepted are softmax over the classes, logits "
                         "(no activation), or for two classes one sigmoid or one logit.")
    if class_count and classes != class_count:
        raise StageError(f"build_model of --module {module!r}: the model outputs {classes} classes "
                         f"(shape {shape}) but the label has {class_count} values: give the output layer "
                         f"{class_count if class_count > 2 else '1 or 2'} units.")
    return kinds[activation], classes


def _probabilities(outputs, kind):
    """Class probabilities [batch, classes] from any accepted classifier output."""
    if kind == SOFTMAX:
        return outputs
    if kind == LOGITS:
        return tf.nn.softmax(outputs)
    positive = tf.reshape(outputs, [-1, 1])
    if kind == LOGIT:
        positive = tf.sigmoid(positive)
    return tf.concat([1.0 - positive, positive], axis=1)


def export_serving_model(model, tf_transform_output, label_key, problem_type, model_dir, kind=SOFTMAX):
    """Saves `model` with the transform graph inside and the two signatures above.

    A classifier's serving signature returns `probabilities` over the classes whatever its output is
    (`kind`), with `class_ids` and, when the label has a vocabulary, `classes`."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    serving_spec = {name: spec for name, spec in raw_spec.items() if name != label_key}
    model_inputs = set(model.input_names)
    vocabulary = _label_vocabulary(tf_transform_output, label_key) if problem_type == CLASSIFICATION else None
    input_signature = [tf.TensorSpec([None], tf.string, name=SERVING_INPUT)]

    @tf.function(input_signature=input_signature)
    def serve(examples):
        transformed = model.tft_layer(tf.io.parse_example(examples, serving_spec))
        predictions = model({name: value for name, value in transformed.items() if name in model_inputs})
        if problem_type != CLASSIFICATION:
            return {"predictions": tf.reshape(predictions, [-1])}
        probabilities = _probabilities(predictions, kind)
        outputs = {"probabilities": probabilities, "class_ids": tf.argmax(probabilities, axis=1)}
        if vocabulary is not None:
            outputs["classes"] = tf.gather(tf.constant(vocabulary), outputs["class_ids"])
        return outputs

    @tf.function(input_signature=input_signature)
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, raw_spec))

    model.save(model_dir, save_format="tf", signatures={
        SERVING_SIGNATURE: serve, TRANSFORM_SIGNATURE: transform_features})


def train_model(transformed_examples_dir, transform_graph_dir, module, model_dir, train_steps, seed=42):
    """Trains and exports the serving model; returns the final metrics and the per-epoch history."""
    if train_steps < 1:
        raise StageError(f"--train-steps is {train_steps}: train for at least one step.")
    user_module = load_user_module(module)
    skip_autograph_for_libraries()
    keras.utils.set_random_seed(seed)
    tf_transform_output = tft.TFTransformOutput(transform_graph_dir)
    feature_spec = tf_transform_output.transformed_feature_spec()
    label = transformed_name(user_module.LABEL_KEY)
    if label not in feature_spec:
        raise StageError(f"preprocessing_fn of --module {module!r} returns no {label!r}: "
                         "return the transformed label under transformed_name(LABEL_KEY).")
    batch_size = train_batch_size(user_module)
    train_data = _dataset(layout.examples_pattern(transformed_examples_dir, layout.TRAIN),
                          feature_spec, label, batch_size, repeat=True, seed=seed)
    eval_data = _dataset(layout.examples_pattern(transformed_examples_dir, layout.EVAL),
                         feature_spec, label, batch_size, repeat=False, seed=seed)

    model = user_module.build_model(tf_transform_output)
    vocabulary = _label_vocabulary(tf_transform_output, user_module.LABEL_KEY)
    kind, class_count = output_kind(model, user_module.PROBLEM_TYPE, len(vocabulary) if vocabulary else 0, module)
    _check_model_inputs(model, feature_spec, module)
    epochs = min(MAX_EPOCHS, train_steps)
    history = model.fit(train_data, validation_data=eval_data.take(VALIDATION_BATCHES), epochs=epochs,
                        steps_per_epoch=math.ceil(train_steps / epochs), verbose=2)
    export_serving_model(model, tf_transform_output, user_module.LABEL_KEY, user_module.PROBLEM_TYPE,
                         model_dir, kind)
    final = {name: float(values[-1]) for name, values in history.history.items()}
    return {"final": final, "output": kind, "class_count": class_count,
            "history": {name: [float(v) for v in values] for name, values in history.history.items()}}


def _check_model_inputs(model, feature_spec, module):
    """Stops with one line when the model has an input that the transform does not produce."""
    missing = sorted(set(model.input_names) - set(feature_spec))
    if missing:
        raise StageError(f"build_model of --module {module!r} has inputs {', '.join(map(repr, missing))} that "
                         f"preprocessing_fn does not return (it returns {', '.join(sorted(feature_spec))}): name "
                         "each keras.Input after a transformed feature.")


def learning_curves_html(history):
    """An HTML page with the loss and the other metrics per epoch, train and eval."""
    from components import reports

    losses = {name: values for name, values in history.items() if name.endswith("loss")}
    others = {name: values for name, values in history.items() if not name.endswith("loss")}
    final = reports.html_table(["metric", "final"], [(name, reports.number(values[-1]))
                                                     for name, values in sorted(history.items())], numeric=(1,))
    sections = [final, "<h2>Loss</h2>", reports.svg_line_chart(losses, y_label="loss")]
    if others:
        sections += ["<h2>Metrics</h2>", reports.svg_line_chart(others)]
    return reports.html_page("Learning curves", *sections)
