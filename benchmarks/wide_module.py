"""The user module for the benchmarks' wide variant: 50 numeric and 10 categorical features, a yes/no label."""
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.training.user_module import dense_feature, transformed_name

LABEL_KEY = "label"
PROBLEM_TYPE = "classification"
NUMERIC = [f"num_{i:02d}" for i in range(50)]
CATEGORICAL = [f"cat_{i}" for i in range(10)]
_OOV_BUCKETS = 1


def preprocessing_fn(inputs):
    outputs = {transformed_name(key): dense_feature(tft.scale_to_z_score(tf.cast(inputs[key], tf.float32)), 0.0)
               for key in NUMERIC}
    for key in CATEGORICAL:
        outputs[transformed_name(key)] = tft.compute_and_apply_vocabulary(
            dense_feature(inputs[key], ""), num_oov_buckets=_OOV_BUCKETS, vocab_filename=key)
    outputs[transformed_name(LABEL_KEY)] = tft.compute_and_apply_vocabulary(
        dense_feature(inputs[LABEL_KEY], ""), vocab_filename=LABEL_KEY)
    return outputs


def build_model(tf_transform_output):
    inputs, encoded = {}, []
    for key in NUMERIC:
        inputs[transformed_name(key)] = keras.Input(shape=(), name=transformed_name(key))
        encoded.append(keras.layers.Reshape((1,))(inputs[transformed_name(key)]))
    for key in CATEGORICAL:
        name = transformed_name(key)
        inputs[name] = keras.Input(shape=(), name=name, dtype=tf.int64)
        size = tf_transform_output.vocabulary_size_by_name(key) + _OOV_BUCKETS
        encoded.append(keras.layers.CategoryEncoding(num_tokens=size, output_mode="one_hot")(inputs[name]))
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.concatenate(encoded))
    outputs = keras.layers.Dense(tf_transform_output.vocabulary_size_by_name(LABEL_KEY), activation="softmax")(hidden)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model
