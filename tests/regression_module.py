"""A regression user module for the tests: a penguin's body mass (kg) from its other measurements."""
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.training.user_module import dense_feature, transformed_name

LABEL_KEY = "body_mass_g"
PROBLEM_TYPE = "regression"
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
SLICE_COLUMNS = ["island"]


def preprocessing_fn(inputs):
    outputs = {transformed_name(key): tft.scale_to_z_score(tf.cast(dense_feature(inputs[key], 0), tf.float32))
               for key in FEATURES}
    outputs[transformed_name(LABEL_KEY)] = tf.cast(dense_feature(inputs[LABEL_KEY], 0), tf.float32) / 1000.0
    return outputs


def build_model(tf_transform_output):
    inputs = {transformed_name(key): keras.Input(shape=(), name=transformed_name(key)) for key in FEATURES}
    hidden = keras.layers.concatenate([keras.layers.Reshape((1,))(value) for value in inputs.values()])
    hidden = keras.layers.Dense(8, activation="relu")(hidden)
    model = keras.Model(inputs=inputs, outputs=keras.layers.Dense(1)(hidden))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.05), loss="mse")
    return model
