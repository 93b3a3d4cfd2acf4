"""Which library pickles a Beam stage's DoFns (components/platform/beam_options.py): cloudpickle on the
DirectRunner unless --beam-args name one; another runner keeps Beam's default. Either way the stages write the
same artifacts: transform and evaluate with Beam's dill against the session fixtures, made with cloudpickle."""
import os

import pytest
from apache_beam.options.pipeline_options import SetupOptions

from components.platform.beam_options import pipeline_options
from helpers import approximately, transformed_columns

DILL = "--pickle_library=dill"


def pickler(beam_args, stage=""):
    return pipeline_options(beam_args, stage, lambda: [[100]]).view_as(SetupOptions).pickle_library


def test_the_direct_runner_pickles_with_cloudpickle_unless_beam_args_name_a_library():
    assert pickler("") == pickler("", "transform") == "cloudpickle"
    assert pickler("--runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=2"
                   ) == "cloudpickle"  # its worker processes read the option too
    assert pickler(DILL, "transform") == "dill"
    assert pickler("--pickle_lib=default", "transform") == "default"  # an abbreviation, as Beam reads it
    assert pickler("--runner=PortableRunner --job_endpoint=localhost:8099", "evaluate") == "default"
    assert pickler("--runner=DataflowRunner --project=p --region=r --temp_location=gs://b/t") == "default"


@pytest.mark.slow  # transform and evaluate on the demo, once more each
def test_dill_and_cloudpickle_give_the_same_transform_and_evaluation(tmp_path, examples_dir, schema_dir,
                                                                     transform_dirs, trained_model):
    import components.penguins.module as penguins
    from components.data.layout import EVAL, TRAIN
    from components.stage_logic.evaluate import evaluate_model
    from components.stage_logic.transform import RANGES_FILE, transform_examples

    assert pickler("", "transform") == "cloudpickle", "the fixtures would not be cloudpickle's"
    graph, transformed = str(tmp_path / "graph"), str(tmp_path / "transformed")
    transform_examples(examples_dir[0], schema_dir, penguins.__name__, graph, transformed, beam_args=DILL)
    with_cloudpickle_graph, with_cloudpickle = transform_dirs
    for split in (TRAIN, EVAL):
        assert transformed_columns(transformed, split) == transformed_columns(with_cloudpickle, split)
    with open(os.path.join(transformed, RANGES_FILE)) as ours, \
            open(os.path.join(with_cloudpickle, RANGES_FILE)) as theirs:
        assert ours.read() == theirs.read()
    assets = os.path.join("transform_fn", "assets")
    assert sorted(os.listdir(os.path.join(graph, assets))) == sorted(
        os.listdir(os.path.join(with_cloudpickle_graph, assets)))
    for name in os.listdir(os.path.join(with_cloudpickle_graph, assets)):
        with open(os.path.join(graph, assets, name), "rb") as ours, \
                open(os.path.join(with_cloudpickle_graph, assets, name), "rb") as theirs:
            assert ours.read() == theirs.read(), name

    evaluated = [evaluate_model(trained_model[0], examples_dir[0], schema_dir, penguins.__name__,
                                str(tmp_path / f"evaluation-{name}"), beam_args=beam_args)
                 for name, beam_args in (("dill", DILL), ("cloudpickle", "--pickle_library=cloudpickle"))]
    assert evaluated[0]["overall"]["candidate"]["example_count"] > 0
    assert approximately(evaluated[0]) == approximately(evaluated[1])
