"""The user module contract, shared by transform, train and evaluate.

A user module is a Python module, named by import path (`my_project.penguin_module`), by file path
(`path/to/module.py`) or by a file in a bucket (`gs://bucket/module.py`, `s3://bucket/module.py`),
that defines:

- `LABEL_KEY` (str): the raw column to predict.
- `PROBLEM_TYPE` (str): "classification" or "regression".
- `preprocessing_fn(inputs)`: the TensorFlow Transform function, raw features in (a feature the schema gives a
  shape arrives dense, a [batch, 1] tensor, any other as a SparseTensor; an inferred schema gives a shape to
  each feature with one value in every row of its span, as TFX's SchemaGen does; `dense_feature` below takes
  either and fills in what is missing), transformed features out (full-pass analyzers such as `tft.scale_to_z_score` and
  `tft.compute_and_apply_vocabulary` are fine). It returns the label under `transformed_name(LABEL_KEY)`; for
  classification, an integer class id, and if it builds the label's vocabulary with
  `vocab_filename=LABEL_KEY`, the serving model also returns class names.
- the training entry point, one of two contracts (`docs/training.md` sets them side by side):
  - `build_model(tf_transform_output)`: returns a compiled Keras 2 (`tf_keras`) model whose inputs are
    named after the transformed features it uses; the train stage fits and exports it. For
    classification its output is class probabilities, for regression one value per example. It may
    also take `hyperparameters=None` and `custom_config=None` (dicts from `--hyperparameters` and
    `--custom-config`).
  - `run_fn(fn_args)`: TFX's Trainer contract (`components.training.fn_args.FnArgs`): the module trains as it
    likes and saves the model to `fn_args.serving_model_dir` with a `serving_default` signature that
    takes serialized raw tf.Examples. A module that defines both is trained by `run_fn`.

and optionally:

- `MODEL_NAME` (str): the model's name, its folder in the serving root and the statistics store (default:
  the module file's name; `--model-name` overrides it; see components/state/model_names.py).
- `SLICE_COLUMNS` (list of raw column names): evaluation slices (default: none).
- `TRAIN_BATCH_SIZE` (int): the training batch size (default 32).

`components/penguins/module.py` is a complete example.
"""
import hashlib
import importlib
import importlib.util
import os
import sys
import tempfile

from components.errors import StageError, describe_user_error, register_user_file
from components.state.storage import Storage, is_remote

CLASSIFICATION = "classification"
REGRESSION = "regression"
_REQUIRED = {
    "LABEL_KEY": "the name of the label column, e.g. LABEL_KEY = 'species'",
    "PROBLEM_TYPE": "PROBLEM_TYPE = 'classification' or 'regression'",
    "preprocessing_fn": "def preprocessing_fn(inputs): the TensorFlow Transform function",
}
_ENTRY_POINTS = ("run_fn", "build_model")


def transformed_name(key):
    """The name of a feature after the transform."""
    return f"{key}_xf"


def _module_name(origin):
    return f"living_pipeline_user_module_{hashlib.sha256(origin.encode()).hexdigest()[:16]}"


def _import_file(path, origin, module):
    # The module's own folder is importable, so the module can import its siblings (`import my_utils`), as a
    # TFX module packaged with them can. Each stage is its own process: this lasts as long as the stage.
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = _module_name(origin)
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    register_user_file(spec.origin, module)
    try:
        spec.loader.exec_module(loaded)
    except Exception as error:  # anything the module's own code raises while it is imported
        del sys.modules[name]
        raise StageError(describe_user_error(error) or f"--module {module!r} failed to import: "
                         f"{type(error).__name__}: {error}") from error
    return loaded


def _import(module, storage):
    if is_remote(module):
        if not storage.exists(module, "--module"):
            raise StageError(f"--module {module!r}: no such file.")
        # The download stays for the process: TensorFlow reads the module's source when it traces it. The
        # module's siblings (the other .py files of its folder) come with it, so that it can import them.
        folder = tempfile.mkdtemp(prefix="living-pipeline-module-")
        for sibling in _sibling_sources(module, storage):
            storage.download_file(sibling, os.path.join(folder, sibling.rsplit("/", 1)[-1]), "--module")
        local = os.path.join(folder, f"{_module_name(module)}.py")
        storage.download_file(module, local, "--module")
        return _import_file(local, module, module)
    if module.endswith(".py") or os.sep in module:
        if not os.path.isfile(module):
            raise StageError(f"--module {module!r}: no such file.")
        return _import_file(module, os.path.abspath(module), module)
    register_user_file(_find_spec(module).origin, module)
    try:
        return importlib.import_module(module)
    except Exception as error:  # anything the module's own code raises while it is imported
        raise StageError(describe_user_error(error) or f"--module {module!r} failed to import: "
                         f"{type(error).__name__}: {error}") from error


# A module's folder in a bucket is read for its siblings up to this many .py files (a folder of more is not a
# module's package; the module alone is used then).
MAX_SIBLINGS = 200


def _sibling_sources(module, storage):
    """The other .py files in the bucket folder of the module `module` (not in folders below it)."""
    folder = module.rsplit("/", 1)[0]
    siblings = [path for path in storage.match(folder + "/*.py", "--module") if path != module
                and "/" not in path[len(folder) + 1:]]
    return siblings if len(siblings) <= MAX_SIBLINGS else []


def _find_spec(module):
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:  # a parent package is missing
        spec = None
    if spec is None:
        raise StageError(f"--module {module!r}: no module of that name is importable; "
                         "give an import path or the path of a .py file.")
    return spec


def load_user_module(module, storage=None):
    """Imports a user module and checks that it meets the contract."""
    storage = storage or Storage()
    loaded = _import(module, storage)
    for attribute, hint in _REQUIRED.items():
        if not hasattr(loaded, attribute):
            raise StageError(f"--module {module!r} has no {attribute}: define {hint}.")
    if not any(hasattr(loaded, name) for name in _ENTRY_POINTS):
        raise StageError(f"--module {module!r} has no build_model nor run_fn: define def build_model("
                         "tf_transform_output) returning a compiled tf_keras model, or TFX's def run_fn(fn_args).")
    if loaded.PROBLEM_TYPE not in (CLASSIFICATION, REGRESSION):
        raise StageError(f"--module {module!r}: PROBLEM_TYPE is {loaded.PROBLEM_TYPE!r}; "
                         f"use {CLASSIFICATION!r} or {REGRESSION!r}.")
    return loaded


def dense_feature(feature, default_value):
    """A [batch] tensor of a one-value feature, with `default_value` where it is missing.

    For use in `preprocessing_fn`: a feature that may be missing arrives as a SparseTensor, one the schema
    gives a shape (`shape { dim { size: 1 } }`) as a dense [batch, 1] tensor; either becomes [batch].
    """
    import tensorflow as tf

    if isinstance(feature, tf.sparse.SparseTensor):
        feature = tf.sparse.to_dense(
            tf.SparseTensor(feature.indices, feature.values, [feature.dense_shape[0], 1]),
            default_value=default_value)
    return tf.reshape(feature, [-1])


def slice_columns(user_module):
    return list(getattr(user_module, "SLICE_COLUMNS", []))


def train_batch_size(user_module):
    return int(getattr(user_module, "TRAIN_BATCH_SIZE", 32))


def module_source_text(module, storage=None):
    """The source text of a module (import path, .py file or bucket URI), or None where it cannot be read."""
    storage = storage or Storage()
    if is_remote(module):
        return storage.read_text(module, "--module") if storage.exists(module, "--module") else None
    path = module if module.endswith(".py") or os.sep in module else None
    if path is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):  # a parent package is missing, or not a module path at all
            return None
        path = spec.origin if spec is not None else None
    try:
        with open(path, encoding="utf-8", errors="replace") as source:
            return source.read()
    except (OSError, TypeError):
        return None


def _top_level_statements(module, storage=None):
    """The top-level statements of the module's source, parsed without importing it (no TensorFlow import); None
    where the source cannot be read or does not parse (importing the module reports that, with its line)."""
    import ast

    source = module_source_text(module, storage)
    try:
        return ast.parse(source).body if source is not None else None
    except SyntaxError:
        return None


def _assigned_names(statement):
    """The plain names a top-level `name = ...` or `name: type = ...` statement assigns."""
    import ast

    targets = (statement.targets if isinstance(statement, ast.Assign) else
               [statement.target] if isinstance(statement, ast.AnnAssign) and statement.value else [])
    return [target.id for target in targets if isinstance(target, ast.Name)]


def declared_constant(module, name, storage=None):
    """The literal value of a top-level `name = ...` (or `name: type = ...`) in the module's source, read without
    importing it (no TensorFlow import); None where the source cannot be read or the value is not a literal."""
    import ast

    for statement in _top_level_statements(module, storage) or ():
        if name in _assigned_names(statement):
            return statement.value.value if isinstance(statement.value, ast.Constant) else None
    return None


def declares_name(module, name, storage=None):
    """Whether the module's source defines `name` at top level (a function, or a name assigned, e.g. `tuner_fn =
    base.tuner_fn`), read without importing it; None where the source cannot be read or does not parse."""
    import ast

    statements = _top_level_statements(module, storage)
    if statements is None:
        return None
    return any(statement.name == name if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef))
               else name in _assigned_names(statement) for statement in statements)


def module_file_stem(module):
    """The module's file name without `.py`: `taxi_module` for `path/taxi_module.py`, `my.pkg.taxi_module` or a URI."""
    if is_remote(module) or module.endswith(".py") or os.sep in module:
        return os.path.splitext(module.rstrip("/").rsplit("/", 1)[-1])[0]
    return module.rsplit(".", 1)[-1]


def declared_problem_type(module):
    """The module's PROBLEM_TYPE read from its source without importing it (no TensorFlow import), for checks
    before any stage runs; None where it cannot be read so (a bucket URI, a value that is not a literal)."""
    if is_remote(module):
        return None
    declared = declared_constant(module, "PROBLEM_TYPE")
    return declared if declared in (CLASSIFICATION, REGRESSION) else None
