"""A binary classification user module for the tests: a penguin's sex from its measurements."""
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.training.user_module import dense_feature, transformed_name

LABEL_KEY = "sex"
PROBLEM_TYPE = "classification"
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def preprocessing_fn(inputs):
    outputs = {transformed_name(key): tft.scale_to_z_score(tf.cast(dense_feature(inputs[key], 0), tf.float32))
               for key in FEATURES}
    outputs[transformed_name("species")] = tft.compute_and_apply_vocabulary(
        dense_feature(inputs["species"], ""), vocab_filename="species")
    outputs[transformed_name(LABEL_KEY)] = tft.compute_and_apply_vocabulary(
        dense_feature(inputs[LABEL_KEY], ""), vocab_filename=LABEL_KEY)
    return outputs


def build_model(tf_transform_output):
    inputs = {transformed_name(key): keras.Input(shape=(), name=transformed_name(key)) for key in FEATURES}
    species = keras.Input(shape=(), name=transformed_name("species"), dtype=tf.int64)
    encoded = [keras.layers.Reshape((1,))(value) for value in inputs.values()]
    encoded.append(keras.layers.CategoryEncoding(num_tokens=3, output_mode="one_hot")(species))
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.concatenate(encoded))
    model = keras.Model(inputs={**inputs, transformed_name("species"): species},
                        outputs=keras.layers.Dense(2, activation="softmax")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model
