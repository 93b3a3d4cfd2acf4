"""Model names: the key of everything a model keeps between runs, and where a name comes from.

A model's name is its folder in the serving root (`<serving-root>/<name>/<version>/`) and in the statistics
store (`<statistics-root>/<name>/`), so it must be one safe path segment: letters, digits, `_`, `-` and `.`,
not starting with `.`, at most 63 characters (a Kubernetes label value's limit, so the name also fits TF
Serving's model name and a bucket prefix). `--model-name` gives it; without one, the user module does: its
`MODEL_NAME` string constant, else the module file's name (`taxi_module.py` → `taxi_module`). The constant
is read from the module's source, not by importing it, so naming a model costs no TensorFlow import.
"""
import ast
import importlib.util
import os
import re

from components.errors import StageError
from components.state.storage import Storage, is_remote

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


def _module_source(module, storage):
    """(the module's source text or None, its file name without .py)."""
    if is_remote(module):
        stem = os.path.splitext(module.rstrip("/").rsplit("/", 1)[-1])[0]
        return (storage.read_text(module, "--module") if storage.exists(module, "--module") else None), stem
    if module.endswith(".py") or os.sep in module:
        stem = os.path.splitext(os.path.basename(module))[0]
        if not os.path.isfile(module):
            return None, stem
        with open(module, encoding="utf-8", errors="replace") as source:
            return source.read(), stem
    stem = module.rsplit(".", 1)[-1]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package is missing, or not a module path at all
        spec = None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return None, stem
    with open(spec.origin, encoding="utf-8", errors="replace") as source:
        return source.read(), stem


def _declared_name(source):
    """The value of a top-level `MODEL_NAME = "..."` in the source, or None."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None  # importing the module reports it, with its line
    for statement in tree.body:
        targets = (statement.targets if isinstance(statement, ast.Assign) else
                   [statement.target] if isinstance(statement, ast.AnnAssign) and statement.value else [])
        if any(isinstance(target, ast.Name) and target.id == MODEL_NAME_CONSTANT for target in targets):
            value = statement.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
            return None
    return None


def default_model_name(module, storage=None):
    """The name of the model `module` trains when no --model-name is given (validated)."""
    storage = storage or Storage()
    source, stem = _module_source(module, storage)
    declared = _declared_name(source) if source is not None else None
    if declared is not None:
        return check_model_name(declared, f"{MODEL_NAME_CONSTANT} of --module {module!r}")
    return check_model_name(stem, f"the name of --module {module!r} (the model name when there is no "
                                  f"--model-name and no {MODEL_NAME_CONSTANT} in the module)")


def resolve_model_name(model_name, module, storage=None):
    """`model_name` validated, or when it is empty the module's (see `default_model_name`)."""
    if model_name:
        return check_model_name(model_name)
    return default_model_name(module, storage)
