"""The demo user module: a penguin's species from its measurements, island and sex.

It follows the contract in `components/training/user_module.py`. Measurements are scaled to z-scores over the
values present in the training data (a full-pass TensorFlow Transform analyzer); a missing measurement
then becomes 0, the training mean, so no magic number enters the model. Every raw feature goes through
`dense_feature`, so the module takes the curated schema (species, island and year dense, the rest sparse) and an
inferred one (dense wherever every row has a value) alike.
"""
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.training.user_module import dense_feature, transformed_name

MODEL_NAME = "penguins"
LABEL_KEY = "species"
PROBLEM_TYPE = "classification"
NUMERIC_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL_FEATURES = ["island", "sex"]
SLICE_COLUMNS = ["island", "sex"]
TRAIN_BATCH_SIZE = 32
_OOV_BUCKETS = 1
# What `--hyperparameters` may change: e.g. '{"hidden_units": [32, 16, 8], "learning_rate": 0.005}'.
DEFAULT_HYPERPARAMETERS = {"hidden_units": [16, 16], "learning_rate": 0.01}


def preprocessing_fn(inputs):
    outputs = {}
    for key in NUMERIC_FEATURES:
        z_scores = tft.scale_to_z_score(tf.cast(inputs[key], tf.float32))
        outputs[transformed_name(key)] = dense_feature(z_scores, 0.0)
    for key in CATEGORICAL_FEATURES:
        outputs[transformed_name(key)] = tft.compute_and_apply_vocabulary(
            dense_feature(inputs[key], ""), num_oov_buckets=_OOV_BUCKETS, vocab_filename=key)
    outputs[transformed_name(LABEL_KEY)] = tft.compute_and_apply_vocabulary(
        dense_feature(inputs[LABEL_KEY], ""), vocab_filename=LABEL_KEY)
    return outputs


def build_model(tf_transform_output, hyperparameters=None):
    hyperparameters = {**DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    inputs, encoded = {}, []
    for key in NUMERIC_FEATURES:
        name = transformed_name(key)
        inputs[name] = keras.Input(shape=(), name=name, dtype=tf.float32)
        encoded.append(keras.layers.Reshape((1,))(inputs[name]))
    for key in CATEGORICAL_FEATURES:
        name = transformed_name(key)
        inputs[name] = keras.Input(shape=(), name=name, dtype=tf.int64)
        size = tf_transform_output.vocabulary_size_by_name(key) + _OOV_BUCKETS
        encoded.append(keras.layers.CategoryEncoding(num_tokens=size, output_mode="one_hot")(inputs[name]))
    hidden = keras.layers.concatenate(encoded)
    for units in hyperparameters["hidden_units"]:
        hidden = keras.layers.Dense(units, activation="relu")(hidden)
    classes = tf_transform_output.vocabulary_size_by_name(LABEL_KEY)
    outputs = keras.layers.Dense(classes, activation="softmax")(hidden)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=hyperparameters["learning_rate"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model
