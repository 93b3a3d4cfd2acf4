"""A newcomer's module for the diabetes table: disease progression after a year (regression)."""
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.training.user_module import dense_feature, transformed_name

LABEL_KEY = "progression"
PROBLEM_TYPE = "regression"
NUMERIC_FEATURES = ["age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
SLICE_COLUMNS = ["sex"]


def preprocessing_fn(inputs):
    outputs = {transformed_name(key): dense_feature(tft.scale_to_z_score(tf.cast(inputs[key], tf.float32)), 0.0)
               for key in NUMERIC_FEATURES}
    outputs[transformed_name("sex")] = tft.compute_and_apply_vocabulary(
        dense_feature(inputs["sex"], ""), num_oov_buckets=1, vocab_filename="sex")
    outputs[transformed_name(LABEL_KEY)] = tf.cast(dense_feature(inputs[LABEL_KEY], 0), tf.float32)
    return outputs


def build_model(tf_transform_output):
    inputs = {transformed_name(key): keras.Input(shape=(), name=transformed_name(key)) for key in NUMERIC_FEATURES}
    sex = keras.Input(shape=(), name=transformed_name("sex"), dtype=tf.int64)
    encoded = [keras.layers.Reshape((1,))(value) for value in inputs.values()]
    encoded.append(keras.layers.CategoryEncoding(num_tokens=3, output_mode="one_hot")(sex))
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.concatenate(encoded))
    model = keras.Model(inputs={**inputs, transformed_name("sex"): sex}, outputs=keras.layers.Dense(1)(hidden))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.05), loss="mse")
    return model
