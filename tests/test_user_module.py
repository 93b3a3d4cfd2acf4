"""The user module contract: loading by import path or file path, and clear errors when it is not met."""
import pytest

from components.errors import StageError
from components.training.user_module import load_user_module, slice_columns, transformed_name

COMPLETE = '''
LABEL_KEY = "y"
PROBLEM_TYPE = "regression"
def preprocessing_fn(inputs):
    return inputs
def build_model(tf_transform_output):
    return None
'''


def test_demo_module_meets_the_contract():
    module = load_user_module("components.penguins.module")
    assert module.LABEL_KEY == "species"
    assert slice_columns(module) == ["island", "sex"]
    assert transformed_name("species") == "species_xf"


def test_module_by_file_path(tmp_path):
    path = tmp_path / "my_module.py"
    path.write_text(COMPLETE)
    module = load_user_module(str(path))
    assert module.PROBLEM_TYPE == "regression"
    assert slice_columns(module) == []


def test_module_without_preprocessing_fn(tmp_path):
    path = tmp_path / "incomplete.py"
    path.write_text(COMPLETE.replace("def preprocessing_fn", "def something_else"))
    with pytest.raises(StageError, match=r"incomplete\.py' has no preprocessing_fn: define def preprocessing_fn"):
        load_user_module(str(path))


def test_unknown_problem_type(tmp_path):
    path = tmp_path / "odd.py"
    path.write_text(COMPLETE.replace('"regression"', '"ranking"'))
    with pytest.raises(StageError, match="PROBLEM_TYPE is 'ranking'"):
        load_user_module(str(path))


@pytest.mark.parametrize("module", ["no_such_module_anywhere", "missing/dir/module.py"])
def test_module_that_does_not_exist(module):
    with pytest.raises(StageError, match=f"--module '{module}'"):
        load_user_module(module)


def test_module_with_neither_training_entry_point(tmp_path):
    path = tmp_path / "untrainable.py"
    path.write_text(COMPLETE.replace("def build_model(tf_transform_output):", "def make_model(tf_transform_output):"))
    with pytest.raises(StageError, match=r"untrainable\.py' has no build_model nor run_fn: define def build_model\("
                                         r"tf_transform_output\) .*, or TFX's def run_fn\(fn_args\)\.$"):
        load_user_module(str(path))


def test_module_with_run_fn_only_meets_the_contract(tmp_path):
    path = tmp_path / "tfx_style.py"
    path.write_text(COMPLETE.replace("def build_model(tf_transform_output):", "def run_fn(fn_args):"))
    assert hasattr(load_user_module(str(path)), "run_fn")
