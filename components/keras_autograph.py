"""Keeps AutoGraph out of the Keras 2 (`tf_keras`) library code.

TensorFlow's AutoGraph leaves the `keras` package alone (a DoNotConvert rule in its configuration) but
has no such rule for `tf_keras`, the Keras 2 package that TFT and TFMA need. Without one, the first
`fit` or metric computation re-writes much of tf_keras's source: 11 s of a 12 s penguin training run
here. Adding the same rule for `tf_keras` makes that 0.5 s; user code (a custom layer's `call`) is
still converted as before. The rule list is not public API, so if it moves, nothing is changed.
"""


def skip_autograph_for_tf_keras():
    try:
        from tensorflow.python.autograph.core import config
    except ImportError:
        return
    if not any(getattr(rule, "_prefix", None) == "tf_keras" for rule in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (config.DoNotConvert("tf_keras"),) + tuple(config.CONVERSION_RULES)
