"""Train (TFX's Trainer): the user module's model on the transformed examples, by one of two contracts.

- `build_model(tf_transform_output[, hyperparameters][, custom_config])`: the module returns a compiled
  Keras model; this stage fits it and exports it. The exported SavedModel serves raw data: its default
  signature takes serialized raw `tf.train.Example`s, applies the transform graph from the transform
  stage, and predicts, so serving uses exactly the preprocessing of training. A second signature,
  `transform_features`, returns the transformed features (label included) so that evaluation can reuse
  the transform.
- `run_fn(fn_args)`: TFX's contract (`components.training.fn_args.FnArgs`): the module reads the data, trains as
  it likes and saves the model to `fn_args.serving_model_dir` with its own signatures; this stage then
  checks that `serving_default` takes serialized raw tf.Examples, by calling it on raw eval examples.

Either way the model folder gets TF Serving warm-up requests built from a few raw eval examples
(`assets.extra/tf_serving_warmup_requests`, as TFX writes them), and TensorBoard logs go to the
`model_run_dir` this stage is given.
"""
import contextlib
import inspect
import json
import math
import os
import tempfile

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.data import layout
from components.errors import StageError
from components.json_values import parse_object
from components.state.provenance import module_source
from components.state.storage import Storage
from components.tf_serving.warmup import raw_examples, without_feature, write_warmup_requests
from components.training.autograph_rules import skip_autograph_for_libraries
from components.training.data_errors import describe_data_error
from components.training.fn_args import DEFAULT_EVAL_STEPS, fn_args_for
from components.training.user_module import CLASSIFICATION, load_user_module, train_batch_size, transformed_name

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



def train_model(transformed_examples_dir, transform_graph_dir, module, model_dir, train_steps, seed=42,
                hyperparameters=None, custom_config=None, model_run_dir=None, examples_dir=None,
                schema_dir=None, eval_steps=DEFAULT_EVAL_STEPS, storage=None, tuned_hyperparameters=None):
    """Trains and exports the serving model by the module's contract (`run_fn` if it defines one, else
    `build_model`); returns the final metrics, the per-epoch history (build_model) and what serves.

    `hyperparameters` and `custom_config` are dicts or JSON text; `tuned_hyperparameters`, keras-tuner's config
    of the best hyperparameters when the tune stage ran, takes the place of `hyperparameters`: `run_fn` gets the
    config (as TFX's Trainer gives it), `build_model` its values. `model_run_dir` receives TensorBoard
    logs; with `examples_dir` (the ingest stage's raw examples) the serving signature is tried on raw
    eval examples and the model gets warm-up requests from them.
    """
    storage = storage or Storage()
    if train_steps < 1:
        raise StageError(f"--train-steps is {train_steps}: train for at least one step.")
    hyperparameters = parse_object(hyperparameters, "--hyperparameters")
    tuned_values = dict(tuned_hyperparameters.get("values") or {}) if tuned_hyperparameters else None
    custom_config = parse_object(custom_config, "--custom-config")
    # `tf.keras` in a module is Keras 2 (tf_keras), as TFX 1.16 needs it: the transform layer and the
    # SavedModel export are Keras 2's. TensorFlow reads this when `tf.keras` is first used.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    user_module = load_user_module(module, storage)
    skip_autograph_for_libraries()
    keras.utils.set_random_seed(seed)
    tf_transform_output = tft.TFTransformOutput(transform_graph_dir)
    feature_spec = tf_transform_output.transformed_feature_spec()
    label = transformed_name(user_module.LABEL_KEY)
    if label not in feature_spec:
        raise StageError(f"preprocessing_fn of --module {module!r} returns no {label!r}: "
                         "return the transformed label under transformed_name(LABEL_KEY).")
    vocabulary = _label_vocabulary(tf_transform_output, user_module.LABEL_KEY)
    if hasattr(user_module, "run_fn"):
        with contextlib.ExitStack() as stack:
            # Without a folder for its logs, run_fn gets one that is removed once it returns.
            run_dir = model_run_dir or stack.enter_context(
                tempfile.TemporaryDirectory(prefix="living-pipeline-model-run-"))
            result = _train_with_run_fn(user_module, module, transformed_examples_dir, transform_graph_dir,
                                        model_dir, train_steps, eval_steps,
                                        tuned_hyperparameters if tuned_hyperparameters else hyperparameters,
                                        custom_config, run_dir, schema_dir)
    else:
        result = _train_with_build_model(user_module, module, tf_transform_output, feature_spec, label,
                                         vocabulary, transformed_examples_dir, model_dir, train_steps, seed,
                                         tuned_values if tuned_hyperparameters else hyperparameters, custom_config,
                                         model_run_dir)
    module_path, module_sha256 = module_source(module, storage)
    result.update({"hyperparameters": tuned_values if tuned_hyperparameters else hyperparameters,
                   "tuned": bool(tuned_hyperparameters), "custom_config": custom_config,
                   # As text: KFP's metadata would turn the config's whole numbers into floats.
                   "tuned_hyperparameters_json": json.dumps(tuned_hyperparameters, sort_keys=True)
                   if tuned_hyperparameters else "",
                   "module_path": module_path, "module_sha256": module_sha256,
                   "label_key": user_module.LABEL_KEY, "problem_type": user_module.PROBLEM_TYPE})
    if examples_dir:
        examples = [without_feature(example, user_module.LABEL_KEY) for example in raw_examples(examples_dir)]
        check = check_serving_signature(model_dir, examples, user_module.PROBLEM_TYPE,
                                        len(vocabulary) if vocabulary else 0, module, result["contract"])
        result.update(check)
        write_warmup_requests(model_dir, examples, check["serving_input"])
    return result


def _train_with_build_model(user_module, module, tf_transform_output, feature_spec, label, vocabulary,
                            transformed_examples_dir, model_dir, train_steps, seed, hyperparameters,
                            custom_config, model_run_dir):
    batch_size = train_batch_size(user_module)
    train_data = _dataset(layout.examples_pattern(transformed_examples_dir, layout.TRAIN),
                          feature_spec, label, batch_size, repeat=True, seed=seed)
    eval_data = _dataset(layout.examples_pattern(transformed_examples_dir, layout.EVAL),
                         feature_spec, label, batch_size, repeat=False, seed=seed)

    model = _call_build_model(user_module, module, tf_transform_output, hyperparameters, custom_config)
    kind, class_count = output_kind(model, user_module.PROBLEM_TYPE, len(vocabulary) if vocabulary else 0, module)
    _check_model_inputs(model, feature_spec, module)
    epochs = min(MAX_EPOCHS, train_steps)
    try:
        history = model.fit(train_data, validation_data=eval_data.take(VALIDATION_BATCHES), epochs=epochs,
                            steps_per_epoch=math.ceil(train_steps / epochs), verbose=2,
                            callbacks=[keras.callbacks.TensorBoard(log_dir=model_run_dir)] if model_run_dir else [])
    except tf.errors.InvalidArgumentError as error:  # a label the model cannot take is one line naming it
        described = describe_data_error(error, f"Training the model of --module {module!r}", user_module.LABEL_KEY)
        if described:
            raise StageError(described) from error
        raise
    export_serving_model(model, tf_transform_output, user_module.LABEL_KEY, user_module.PROBLEM_TYPE,
                         model_dir, kind)
    final = {name: float(values[-1]) for name, values in history.history.items()}
    return {"contract": "build_model", "final": final, "output": kind, "class_count": class_count,
            "prediction_key": "probabilities" if user_module.PROBLEM_TYPE == CLASSIFICATION else "predictions",
            "history": {name: [float(v) for v in values] for name, values in history.history.items()}}


def _call_build_model(user_module, module, tf_transform_output, hyperparameters, custom_config):
    """build_model(tf_transform_output), with hyperparameters and custom_config when it takes them."""
    parameters = inspect.signature(user_module.build_model).parameters
    takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    keywords = {}
    for name, value, flag in (("hyperparameters", hyperparameters, "--hyperparameters"),
                              ("custom_config", custom_config, "--custom-config")):
        if name in parameters or takes_any:
            keywords[name] = value
        elif value:
            raise StageError(f"{flag} is given but build_model of --module {module!r} takes no {name}: "
                             f"define build_model(tf_transform_output, {name}=None), or leave {flag} out.")
    return user_module.build_model(tf_transform_output, **keywords)


def _train_with_run_fn(user_module, module, transformed_examples_dir, transform_graph_dir, model_dir,
                       train_steps, eval_steps, hyperparameters, custom_config, model_run_dir, schema_dir):
    """Calls the module's run_fn with TFX's FnArgs; it saves the model to fn_args.serving_model_dir."""
    os.makedirs(model_run_dir, exist_ok=True)
    fn_args = fn_args_for(transformed_examples_dir, transform_graph_dir, schema_dir, train_steps=train_steps,
                          eval_steps=eval_steps, hyperparameters=hyperparameters, custom_config=custom_config,
                          working_dir=tempfile.mkdtemp(prefix="living-pipeline-run-fn-"), serving_model_dir=model_dir,
                          model_run_dir=model_run_dir)
    user_module.run_fn(fn_args)
    if not tf.io.gfile.exists(os.path.join(model_dir, "saved_model.pb")):
        raise StageError(f"run_fn of --module {module!r} saved no model in fn_args.serving_model_dir: end it with "
                         "model.save(fn_args.serving_model_dir, save_format='tf', signatures=...).")
    return {"contract": "run_fn", "final": _final_metrics(model_run_dir), "history": {}}


def _final_metrics(model_run_dir):
    """The last value of each epoch metric in the TensorBoard logs under `model_run_dir` (train/ and
    validation/ runs, named as Keras's History names them: `loss`, `val_loss`, ...), or {}."""
    from tensorboard.backend.event_processing import event_accumulator

    final = {}
    for run, prefix in (("train", ""), ("validation", "val_")):
        folder = os.path.join(model_run_dir, run)
        if not os.path.isdir(folder):
            continue
        events = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.TENSORS: 0})
        events.Reload()
        for tag in events.Tags().get("tensors", []):
            if tag.startswith("epoch_"):
                last = events.Tensors(tag)[-1]
                final[prefix + tag[len("epoch_"):]] = float(tf.make_ndarray(last.tensor_proto))
    return final


def check_serving_signature(model_dir, examples, problem_type, class_count, module, contract):
    """Calls the saved model's serving_default on serialized raw tf.Examples; stops with one line unless it
    takes them and returns one prediction per example. Returns its input name, prediction key and output kind."""
    where = "run_fn" if contract == "run_fn" else "build_model"
    loaded = tf.saved_model.load(model_dir)
    signature = loaded.signatures.get(SERVING_SIGNATURE)
    if signature is None:
        raise StageError(f"{where} of --module {module!r}: the saved model has no {SERVING_SIGNATURE!r} signature "
                         f"(it has {', '.join(sorted(loaded.signatures)) or 'none'}): save it with "
                         f"signatures={{'{SERVING_SIGNATURE}': a function of serialized tf.Examples}}.")
    if contract == "run_fn" and TRANSFORM_SIGNATURE not in loaded.signatures:
        raise StageError(f"run_fn of --module {module!r}: the saved model has no {TRANSFORM_SIGNATURE!r} signature, "
                         "from which evaluate takes the transformed label: save one that returns "
                         "tf_transform_output.transform_features_layer() of parsed raw tf.Examples, as TFX's "
                         "penguin example does.")
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1 or next(iter(inputs.values())).dtype != tf.string:
        described = ", ".join(f"{name} {spec.dtype.name}{spec.shape}" for name, spec in inputs.items())
        raise StageError(f"{where} of --module {module!r}: {SERVING_SIGNATURE} takes {described or 'nothing'}; it "
                         "must take one string tensor of serialized raw tf.Examples, e.g. "
                         "tf.TensorSpec(shape=[None], dtype=tf.string, name='examples').")
    input_name = next(iter(inputs))
    try:
        outputs = signature(**{input_name: tf.constant(examples, tf.string)})
    except (tf.errors.OpError, ValueError, TypeError) as error:
        text = " ".join(str(error).split())[:200]
        raise StageError(f"{where} of --module {module!r}: {SERVING_SIGNATURE} fails on serialized raw eval "
                         f"tf.Examples ({type(error).__name__}: {text}): parse raw examples with "
                         "tf_transform_output.raw_feature_spec() and apply transform_features_layer().") from None
    preferred = "probabilities" if problem_type == CLASSIFICATION else "predictions"
    key = preferred if preferred in outputs else (next(iter(outputs)) if len(outputs) == 1 else None)
    if key is None:
        raise StageError(f"{where} of --module {module!r}: {SERVING_SIGNATURE} returns {', '.join(sorted(outputs))}; "
                         f"return one output, or name the one to evaluate {preferred!r}.")
    values = outputs[key].numpy()
    if values.shape[:1] != (len(examples),):
        raise StageError(f"{where} of --module {module!r}: {SERVING_SIGNATURE} returns {key!r} of shape "
                         f"{values.shape} for {len(examples)} examples: return one prediction per example.")
    check = {"serving_input": input_name, "prediction_key": key}
    if contract == "run_fn":
        check["output"] = _observed_kind(values, problem_type)
        check["class_count"] = class_count or (values.shape[-1] if values.ndim == 2 and values.shape[-1] > 1 else 2)
    return check


def _observed_kind(values, problem_type):
    """What a run_fn model's classifier output is, from its values on raw examples."""
    import numpy as np

    if problem_type != CLASSIFICATION:
        return VALUE
    in_unit_range = bool(np.all((values >= 0) & (values <= 1)))
    if values.ndim == 2 and values.shape[-1] > 1:
        return SOFTMAX if in_unit_range and np.allclose(values.sum(axis=-1), 1, atol=1e-3) else LOGITS
    return SIGMOID if in_unit_range else LOGIT


def _check_model_inputs(model, feature_spec, module):
    """Stops with one line when the model has an input that the transform does not produce."""
    missing = sorted(set(model.input_names) - set(feature_spec))
    if missing:
        raise StageError(f"build_model of --module {module!r} has inputs {', '.join(map(repr, missing))} that "
                         f"preprocessing_fn does not return (it returns {', '.join(sorted(feature_spec))}): name "
                         "each keras.Input after a transformed feature.")


def learning_curves_html(history, final=None, hyperparameters=None, custom_config=None, contract="build_model"):
    """An HTML page: the training contract, the hyperparameters and custom config, and the loss and other
    metrics per epoch, train and eval (a run_fn module's: the final values from its TensorBoard logs)."""

    from components import reports

    settings = reports.html_table(
        ["setting", "value"],
        [("contract", contract)] + [(f"hyperparameters.{name}", json.dumps(value))
                                    for name, value in sorted((hyperparameters or {}).items())]
        + [(f"custom_config.{name}", json.dumps(value)) for name, value in sorted((custom_config or {}).items())])
    final = final if final is not None else {name: values[-1] for name, values in history.items()}
    final_table = reports.html_table(["metric", "final"], [(name, reports.number(value))
                                                           for name, value in sorted(final.items())], numeric=(1,))
    sections = ["<h2>Training</h2>", settings, "<h2>Final metrics</h2>", final_table]
    losses = {name: values for name, values in history.items() if name.endswith("loss")}
    others = {name: values for name, values in history.items() if not name.endswith("loss")}
    if losses:
        sections += ["<h2>Loss</h2>", reports.svg_line_chart(losses, y_label="loss")]
    if others:
        sections += ["<h2>Metrics</h2>", reports.svg_line_chart(others)]
    return reports.html_page("Learning curves", *sections)
