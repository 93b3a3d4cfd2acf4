"""A newcomer's module for the breast-cancer table: is the diagnosis "yes"? One sigmoid output."""
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.training.user_module import dense_feature, transformed_name

LABEL_KEY = "diagnosis"
PROBLEM_TYPE = "classification"
NUMERIC_FEATURES = ["mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness",
                    "worst radius", "worst concave points", "worst texture"]
CATEGORICAL_FEATURES = ["site"]
SLICE_COLUMNS = ["site"]


def preprocessing_fn(inputs):
    outputs = {}
    for key in NUMERIC_FEATURES:
        outputs[transformed_name(key)] = dense_feature(
            tft.scale_to_z_score(tf.cast(inputs[key], tf.float32)), 0.0)
    for key in CATEGORICAL_FEATURES:
        outputs[transformed_name(key)] = tft.compute_and_apply_vocabulary(
            dense_feature(inputs[key], ""), num_oov_buckets=1, vocab_filename=key)
    label = dense_feature(inputs[LABEL_KEY], "")
    outputs[transformed_name(LABEL_KEY)] = tf.cast(tf.equal(label, "yes"), tf.int64)
    return outputs


def build_model(tf_transform_output):
    inputs = {transformed_name(key): keras.Input(shape=(), name=transformed_name(key))
              for key in NUMERIC_FEATURES}
    site = keras.Input(shape=(), name=transformed_name("site"), dtype=tf.int64)
    size = tf_transform_output.vocabulary_size_by_name("site") + 1
    encoded = [keras.layers.Reshape((1,))(value) for value in inputs.values()]
    encoded.append(keras.layers.CategoryEncoding(num_tokens=size, output_mode="one_hot")(site))
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.concatenate(encoded))
    output = keras.layers.Dense(1, activation="sigmoid")(hidden)
    model = keras.Model(inputs={**inputs, transformed_name("site"): site}, outputs=output)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss=keras.losses.BinaryCrossentropy(), metrics=["accuracy"])
    return model
