"""Model names: the key of everything a model keeps between runs, and where a name comes from.

A model's name is its folder in the serving root (`<serving-root>/<name>/<version>/`) and in the statistics
store (`<statistics-root>/<name>/`), so it must be one safe path segment: letters, digits, `_`, `-` and `.`,
not starting with `.`, at most 63 characters (a Kubernetes label value's limit, so the name also fits TF
Serving's model name and a bucket prefix). `--model-name` gives it; without one, the user module does: its
`MODEL_NAME` string constant, else the module file's name (`taxi_module.py` → `taxi_module`). The constant
is read from the module's source, not by importing it, so naming a model costs no TensorFlow import.
"""
import re

from components.errors import StageError
from components.state.storage import Storage
from components.training.user_module import declared_constant, module_file_stem

MODEL_NAME_CONSTANT = "MODEL_NAME"
MAX_LENGTH = 63
_VALID = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*\Z")


def check_model_name(name, origin="--model-name"):
    """Returns `name` when it is a valid model name; raises StageError with one line otherwise."""
    rule = (f"a model name is letters, digits, '_', '-' and '.', not starting with '.', at most {MAX_LENGTH} "
            "characters (it becomes a folder of the serving root and the statistics store)")
    if not isinstance(name, str) or not name:
        raise StageError(f"{origin} is empty: {rule}.")
    if len(name) > MAX_LENGTH:
        raise StageError(f"{origin} {name!r} has {len(name)} characters: {rule}.")
    if not name.isascii() or not _VALID.match(name):
        raise StageError(f"{origin} {name!r} is not a model name: {rule}.")
    return name


def default_model_name(module, storage=None):
    """The name of the model `module` trains when no --model-name is given (validated)."""
    declared = declared_constant(module, MODEL_NAME_CONSTANT, storage or Storage())
    if isinstance(declared, str):
        return check_model_name(declared, f"{MODEL_NAME_CONSTANT} of --module {module!r}")
    return check_model_name(module_file_stem(module), f"the name of --module {module!r} (the model name when there "
                                                      f"is no --model-name and no {MODEL_NAME_CONSTANT} in the module)")


def resolve_model_name(model_name, module, storage=None):
    """`model_name` validated, or when it is empty the module's (see `default_model_name`)."""
    if model_name:
        return check_model_name(model_name)
    return default_model_name(module, storage)
