"""This project's demo module (components/penguins/module.py) as a TFX Transform and Trainer module.

`preprocessing_fn` is the demo's own; `run_fn` trains the demo's `build_model` as our train stage does
(same batches, steps, epochs and seed) and exports the same serving signatures, so TFX's run and ours
do the same work on the same data.
"""
import math

import tensorflow_transform as tft
import tf_keras as keras

from components.penguins import module
from components.penguins.module import preprocessing_fn  # noqa: F401 (TFX's Transform calls it)
from components.stage_logic import train
from components.training.user_module import transformed_name

SEED = 42


def _dataset(file_patterns, feature_spec, label, repeat):
    # TFX gives one file pattern per split; our train stage's reader takes a pattern.
    (pattern,) = file_patterns
    return train._dataset(pattern, feature_spec, label, module.TRAIN_BATCH_SIZE, repeat, SEED)


def run_fn(fn_args):
    keras.utils.set_random_seed(SEED)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    feature_spec = tf_transform_output.transformed_feature_spec()
    label = transformed_name(module.LABEL_KEY)
    train_data = _dataset(fn_args.train_files, feature_spec, label, repeat=True)
    eval_data = _dataset(fn_args.eval_files, feature_spec, label, repeat=False)
    model = module.build_model(tf_transform_output)
    epochs = min(train.MAX_EPOCHS, fn_args.train_steps)
    model.fit(train_data, validation_data=eval_data.take(train.VALIDATION_BATCHES), epochs=epochs,
              steps_per_epoch=math.ceil(fn_args.train_steps / epochs), verbose=2)
    train.export_serving_model(model, tf_transform_output, module.LABEL_KEY, module.PROBLEM_TYPE,
                               fn_args.serving_model_dir, train.SOFTMAX)
