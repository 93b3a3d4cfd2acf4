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


def test_a_module_imports_its_siblings_and_an_error_in_one_names_the_siblings_line(tmp_path):
    """As a TFX module packaged with its helpers: `import my_utils` finds the file beside the module, and an
    error raised in that sibling's code is the module's, told at the sibling's file and line."""
    from components.errors import describe_user_error

    folder = tmp_path / "package"
    folder.mkdir()
    (folder / "penguin_helpers_for_test.py").write_text(
        "FEATURES = ['a', 'b']\n\ndef scale(value):\n    raise ValueError('cannot scale ' + repr(value))\n")
    (folder / "module_with_sibling.py").write_text(
        COMPLETE + "import penguin_helpers_for_test as helpers\nFEATURES = helpers.FEATURES\n")
    module = load_user_module(str(folder / "module_with_sibling.py"))
    assert module.FEATURES == ["a", "b"]
    with pytest.raises(ValueError) as raised:
        module.helpers.scale(3)
    line = describe_user_error(raised.value)
    assert line.startswith(f"--module '{folder / 'module_with_sibling.py'}': ValueError: cannot scale 3 in scale (")
    assert f"{folder / 'penguin_helpers_for_test.py'}, line 4)" in line


def test_the_tfx_shim_offers_the_trainer_and_tuner_contracts_and_names_what_it_does_not(tmp_path):
    from components.training.fn_args import FnArgs, TunerFnResult
    from components.training.fn_args import v1 as tfx

    assert tfx.components.FnArgs is FnArgs and tfx.components.TunerFnResult is TunerFnResult
    assert TunerFnResult(tuner="t", fit_kwargs={"x": 1})._fields == ("tuner", "fit_kwargs")
    path = tmp_path / "uses_the_trainer_component.py"
    path.write_text("from components.training.fn_args import v1 as tfx\n" + COMPLETE
                    + "def tuner_fn(fn_args) -> tfx.components.TunerFnResult:\n    pass\n"
                    + "TRAINER = tfx.components.Trainer\n")
    with pytest.raises(StageError) as raised:
        load_user_module(str(path))
    message = str(raised.value)
    assert "tfx.v1.components.Trainer is not offered without TFX" in message
    assert "tfx.v1.components.TunerFnResult" in message and "line 11" in message


def test_tune_without_a_tuner_fn_or_with_no_trials_is_refused_before_any_stage(tmp_path, monkeypatch, capsys):
    from pipeline_cli import main

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "no_tuner.py"
    path.write_text(COMPLETE)
    assert main(["run", "--module", str(path), "--tune"]) == 2
    assert f"--tune is given but --module '{path}' defines no tuner_fn" in capsys.readouterr().err
    assert main(["run", "--module", str(path), "--tune-trials", "0"]) == 2
    assert "--tune-trials is 0: give a whole number of at least 1." in capsys.readouterr().err
    assert not (tmp_path / "local_outputs").exists()
