"""Keeps AutoGraph out of the TFX libraries' own code.

TensorFlow's AutoGraph rewrites the Python source of every function a `tf.function` calls, except in
packages its configuration lists (`tensorflow`, `keras`, ...). The Keras 2 package that TFT and TFMA
need (`tf_keras`) and the TFX libraries are not listed, so AutoGraph rewrites much of their source on
every first trace: 11 of the 12 s of a penguin training run here. Their code needs no conversion, so
the same rule TensorFlow has for `keras` is added for them; user code (a custom layer's `call`, a
`preprocessing_fn`) is converted as before. The rule list is not public API: if it moves, nothing
changes but speed.
"""
_LIBRARIES = ("tf_keras", "tensorflow_transform", "tensorflow_model_analysis", "tfx_bsl")


def skip_autograph_for_libraries():
    try:
        from tensorflow.python.autograph.core import config
    except ImportError:
        return
    listed = {getattr(rule, "_prefix", None) for rule in config.CONVERSION_RULES}
    added = tuple(config.DoNotConvert(library) for library in _LIBRARIES if library not in listed)
    config.CONVERSION_RULES = added + tuple(config.CONVERSION_RULES)
