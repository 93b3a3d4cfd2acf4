"""A newcomer's module for the wine table: which cultivar? Softmax over the classes."""
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.training.user_module import dense_feature, transformed_name

LABEL_KEY = "cultivar"
PROBLEM_TYPE = "classification"
NUMERIC_FEATURES = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "flavanoids",
                    "color_intensity", "proline"]


def preprocessing_fn(inputs):
    outputs = {transformed_name(key): dense_feature(tft.scale_to_z_score(tf.cast(inputs[key], tf.float32)), 0.0)
               for key in NUMERIC_FEATURES}
    outputs[transformed_name(LABEL_KEY)] = tft.compute_and_apply_vocabulary(
        dense_feature(inputs[LABEL_KEY], ""), vocab_filename=LABEL_KEY)
    return outputs


def build_model(tf_transform_output):
    inputs = {transformed_name(key): keras.Input(shape=(), name=transformed_name(key)) for key in NUMERIC_FEATURES}
    hidden = keras.layers.concatenate([keras.layers.Reshape((1,))(value) for value in inputs.values()])
    hidden = keras.layers.Dense(16, activation="relu")(hidden)
    classes = tf_transform_output.vocabulary_size_by_name(LABEL_KEY)
    model = keras.Model(inputs=inputs, outputs=keras.layers.Dense(classes, activation="softmax")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
