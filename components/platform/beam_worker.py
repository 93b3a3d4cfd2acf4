"""What a worker process of Beam's DirectRunner does as it starts and ends, besides Beam's work: imported in each
worker as a Beam plugin (`--beam_plugin`, which components.platform.beam_options adds whenever the workers run).

As it starts, the worker remembers function signatures as the stage process does
(components.platform.beam_signatures), reads the pickles its stage process compressed quickly
(components.platform.beam_compression), and keeps TensorFlow's C++ start-up messages out of the stage's log (on
a machine without a GPU, TensorFlow logs the registration of its CUDA libraries as errors each time it is
imported): the stage process imported TensorFlow before, and said them once, if at all.

At exit the worker writes its peak memory where its stage process adds it to the stage's reported peak
(components.platform.beam_workers), and ends without Python's clean-up: by then Beam's harness has
returned and the work is done, and the clean-up runs TensorFlow's finalizers after their modules are gone,
each printing an "Exception ignored" traceback. The stage process ends the same way (components.errors).
An uncaught error still ends the worker as Python does, non-zero and with its traceback.

Beam imports a plugin for what importing it does, so importing this module does both (`_install`); nothing
else imports it.
"""
import atexit
import os
import sys

from components.platform import beam_compression, beam_signatures
from components.platform.beam_workers import record_worker_peak

# TensorFlow's C++ log level in the stage's environment (components.platform.local_run sets 2) that the worker
# raises to 3, errors included; a lower one (0, 1) asks for more and is kept.
_QUIETER = {"2": "3"}


def _install():
    beam_signatures.install()
    beam_compression.install()
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = _QUIETER.get(level, level)
    failed = []
    original_hook = sys.excepthook

    def hook(kind, value, trace):
        failed.append(kind)
        original_hook(kind, value, trace)

    def end():
        record_worker_peak()
        if failed:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    sys.excepthook = hook
    atexit.register(end)


_install()
