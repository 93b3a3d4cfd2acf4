"""A TFX Trainer module, in the style of TFX's penguin Keras example, ported by changing its tfx import only.

In TFX this file would start with `from tfx import v1 as tfx`; here that one line reads
`from components.training.fn_args import v1 as tfx` (see docs/training.md). Everything else is as a TFX user
writes it: its own `_input_fn` over `fn_args.data_accessor`, `_make_keras_model(hparams)`, a
TensorBoard callback on `fn_args.model_run_dir`, a distribution strategy, and its own serving
signatures. `preprocessing_fn` meets the Transform contract of this project with either schema shape (a
measurement that may be missing arrives as a SparseTensor, one in every row as a dense [batch, 1] tensor, and
`dense_feature` takes both).
"""
from typing import List

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow import keras
from tfx_bsl.public import tfxio

from components.training.fn_args import v1 as tfx
from components.training.user_module import dense_feature

LABEL_KEY = "species"
PROBLEM_TYPE = "classification"
FEATURE_KEYS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
SLICE_COLUMNS = ["island"]
_TRAIN_BATCH_SIZE = 20
_EVAL_BATCH_SIZE = 10


def _transformed_name(key):
    return key + "_xf"


def preprocessing_fn(inputs):
    outputs = {}
    for key in FEATURE_KEYS:
        outputs[_transformed_name(key)] = tft.scale_to_z_score(dense_feature(tf.cast(inputs[key], tf.float32), 0.0))
    outputs[_transformed_name(LABEL_KEY)] = tft.compute_and_apply_vocabulary(
        dense_feature(inputs[LABEL_KEY], ""), vocab_filename=LABEL_KEY)
    return outputs


def _input_fn(file_pattern: List[str], data_accessor: tfx.components.DataAccessor,
              tf_transform_output: tft.TFTransformOutput, batch_size: int = 200) -> tf.data.Dataset:
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=_transformed_name(LABEL_KEY)),
        tf_transform_output.transformed_metadata.schema).repeat()


def _get_hyperparameters():
    return {"learning_rate": 1e-2, "num_layers": 2}


def _make_keras_model(hparams) -> tf.keras.Model:
    inputs = [keras.layers.Input(shape=(1,), name=_transformed_name(f)) for f in FEATURE_KEYS]
    d = keras.layers.concatenate(inputs)
    for _ in range(int(hparams.get("num_layers"))):
        d = keras.layers.Dense(8, activation="relu")(d)
    outputs = keras.layers.Dense(3, activation="softmax")(d)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(hparams.get("learning_rate")),
                  loss="sparse_categorical_crossentropy",
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return model


def _make_serving_signatures(model, tf_transform_output):
    model.tft_layer = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_tf_examples_fn(serialized_tf_example):
        raw_feature_spec = tf_transform_output.raw_feature_spec()
        raw_feature_spec.pop(LABEL_KEY)
        raw_features = tf.io.parse_example(serialized_tf_example, raw_feature_spec)
        transformed_features = model.tft_layer(raw_features)
        outputs = model(transformed_features)
        return {"outputs": outputs}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def transform_features_fn(serialized_tf_example):
        raw_features = tf.io.parse_example(serialized_tf_example, tf_transform_output.raw_feature_spec())
        return model.tft_layer(raw_features)

    return {"serving_default": serve_tf_examples_fn, "transform_features": transform_features_fn}


def run_fn(fn_args: tfx.components.FnArgs):
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train_dataset = _input_fn(fn_args.train_files, fn_args.data_accessor, tf_transform_output, _TRAIN_BATCH_SIZE)
    eval_dataset = _input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, _EVAL_BATCH_SIZE)

    hparams = fn_args.hyperparameters or _get_hyperparameters()

    mirrored_strategy = tf.distribute.MirroredStrategy()
    with mirrored_strategy.scope():
        model = _make_keras_model(hparams)

    tensorboard_callback = tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="batch")
    model.fit(train_dataset, steps_per_epoch=fn_args.train_steps, validation_data=eval_dataset,
              validation_steps=fn_args.eval_steps, callbacks=[tensorboard_callback])

    signatures = _make_serving_signatures(model, tf_transform_output)
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)
