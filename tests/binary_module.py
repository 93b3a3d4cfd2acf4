"""A binary classification user module for the tests: a penguin's sex from its measurements."""
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.user_module import transformed_name

LABEL_KEY = "sex"
PROBLEM_TYPE = "classification"
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def _dense(feature):
    """[batch] values of a feature the schema gives no fixed shape (a SparseTensor of one value each)."""
    return tf.reshape(tf.sparse.to_dense(feature), [-1])


def preprocessing_fn(inputs):
    outputs = {transformed_name(key): tft.scale_to_z_score(tf.cast(_dense(inputs[key]), tf.float32))
               for key in FEATURES}
    outputs[transformed_name("species")] = tft.compute_and_apply_vocabulary(
        tf.reshape(tf.sparse.to_dense(inputs["species"], default_value=""), [-1]), vocab_filename="species")
    outputs[transformed_name(LABEL_KEY)] = tft.compute_and_apply_vocabulary(
        tf.reshape(tf.sparse.to_dense(inputs[LABEL_KEY], default_value=""), [-1]), vocab_filename=LABEL_KEY)
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
