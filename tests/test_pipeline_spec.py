"""The compiled pipeline spec: what KFP and Vertex AI will run."""
import inspect

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from components import stage_table
from components.platform.cluster import KFP_OBJECT_STORE
from pipeline_cli import main

STAGES = [stage.name for stage in stage_table.STAGES]
IMAGE = "registry.example.com/team/living-pipeline:1.2.3"


def compile_spec(tmp_path, *extra):
    output = tmp_path / "pipeline.yaml"
    assert main(["compile", "--output", str(output), *extra]) == 0
    with open(output) as source:
        return json_format.ParseDict(next(yaml.safe_load_all(source)), pipeline_spec_pb2.PipelineSpec())


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """The spec `compile --image` writes, compiled once: every test here only reads it."""
    return compile_spec(tmp_path_factory.mktemp("spec"), "--image", IMAGE)


def test_spec_has_the_nine_stages_with_their_artifact_edges(spec):
    tasks = spec.root.dag.tasks
    assert sorted(tasks) == sorted(STAGES)
    edges = {(name, key): (artifact.task_output_artifact.producer_task,
                           artifact.task_output_artifact.output_artifact_key)
             for name, task in tasks.items() for key, artifact in task.inputs.artifacts.items()}
    assert edges == {
        ("statistics", "examples"): ("ingest", "examples"),
        ("schema", "statistics"): ("statistics", "statistics"),
        ("validate", "statistics"): ("statistics", "statistics"),
        ("validate", "schema"): ("schema", "schema"),
        ("transform", "examples"): ("ingest", "examples"),
        ("transform", "schema"): ("schema", "schema"),
        ("tune", "transformed_examples"): ("transform", "transformed_examples"),
        ("tune", "transform_graph"): ("transform", "transform_graph"),
        ("tune", "schema"): ("schema", "schema"),
        ("train", "best_hyperparameters"): ("tune", "best_hyperparameters"),
        ("train", "transformed_examples"): ("transform", "transformed_examples"),
        ("train", "transform_graph"): ("transform", "transform_graph"),
        ("train", "examples"): ("ingest", "examples"),
        ("train", "schema"): ("schema", "schema"),
        ("evaluate", "model"): ("train", "model"),
        ("evaluate", "examples"): ("ingest", "examples"),
        ("evaluate", "schema"): ("schema", "schema"),
        ("push", "model"): ("train", "model"),
        ("push", "blessing"): ("evaluate", "blessing"),
        ("push", "examples"): ("ingest", "examples"),
        ("push", "schema"): ("schema", "schema"),
    }
    assert "validate" in tasks["transform"].dependent_tasks


def test_image_reaches_every_executor_and_nothing_is_installed_at_run_time(spec):
    executors = spec.deployment_spec["executors"]
    assert len(executors) == 9
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == IMAGE
        command = " ".join(container["command"])
        assert "pip install" not in command
        assert "kfp.dsl.executor_main" in command


def test_parameters_make_the_spec_reusable(spec):
    parameters = spec.root.input_definitions.parameters
    assert {"serving_root", "data_pattern", "span", "split_ratios", "schema_path", "block_on_anomalies",
            "statistics_root", "statistics_slices", "serving_data", "module", "train_steps", "tune", "tune_trials",
            "tune_steps", "model_name",
            "slice_columns", "threshold", "tolerance", "beam_args", "data_format", "csv_delimiter",
            "max_cell_bytes", "query",
            "query_partition_column", "query_partitions", "query_timeout", "allow_privileged_role", "split_column",
            "split_cutoff", "update_schema",
            "drift_threshold", "skew_threshold", "slice_threshold", "min_slice_examples", "hyperparameters",
            "custom_config", "storage_settings", "drift_ignore", "drift_column_thresholds",
            "skew_column_thresholds", "stage_timeouts"} == set(parameters)
    assert not parameters["serving_root"].is_optional
    assert parameters["module"].default_value.string_value == "components.penguins.module"


def test_stages_reading_outside_state_are_never_cached(spec):
    tasks = spec.root.dag.tasks
    uncached = {name for name, task in tasks.items() if not task.caching_options.enable_cache}
    assert uncached == {"ingest", "schema", "validate", "evaluate", "push"}


def test_storage_settings_reach_every_stage_and_beam_args_the_beam_stages(spec):
    tasks = spec.root.dag.tasks

    def wired(parameter):
        return {name for name, task in tasks.items()
                if task.inputs.parameters[parameter].component_input_parameter == parameter}
    assert wired("storage_settings") == {"ingest", "statistics", "schema", "validate", "transform", "tune",
                                         "train", "evaluate", "push"}
    assert wired("beam_args") == {"ingest", "statistics", "transform", "evaluate"}


def test_the_csv_delimiter_reaches_ingest_and_the_statistics_of_a_csv_serving_sample(spec):
    tasks = spec.root.dag.tasks
    assert {name for name, task in tasks.items()
            if task.inputs.parameters["csv_delimiter"].component_input_parameter == "csv_delimiter"} == {
        "ingest", "statistics"}
    assert spec.root.input_definitions.parameters["csv_delimiter"].default_value.string_value == ","


def test_the_cell_limit_reaches_ingest_and_the_statistics_of_a_csv_serving_sample(spec):
    tasks = spec.root.dag.tasks
    assert {name for name, task in tasks.items()
            if task.inputs.parameters["max_cell_bytes"].component_input_parameter == "max_cell_bytes"} == {
        "ingest", "statistics"}
    assert spec.root.input_definitions.parameters["max_cell_bytes"].default_value.number_value == 1024 * 1024


def test_every_stage_input_and_output_has_a_one_line_description_for_the_kfp_ui(spec):
    descriptions = {}
    for stage in STAGES:
        component = spec.components[f"comp-{stage}"]
        for direction, definitions in (("input", component.input_definitions),
                                       ("output", component.output_definitions)):
            for name, definition in [*definitions.parameters.items(), *definitions.artifacts.items()]:
                descriptions[f"{stage} {direction} {name}"] = definition.description
    # One description for every parameter of every component's signature (its inputs and outputs).
    assert len(descriptions) == sum(len(inspect.signature(stage.component).parameters) for stage in stage_table.STAGES)
    assert [name for name, text in descriptions.items() if not text.strip() or "\n" in text] == []
    assert descriptions["ingest input span"] == "The span to read; 0 for the latest."
    assert descriptions["ingest input csv_delimiter"].startswith("The character between a CSV file's fields")
    assert descriptions["push output pushed_model"] == "Where the version was published, or why nothing was."


def test_the_model_name_reaches_every_stage_that_keeps_its_state_and_defaults_to_the_modules(spec):
    tasks = spec.root.dag.tasks
    assert {name for name, task in tasks.items()
            if task.inputs.parameters["model_name"].component_input_parameter == "model_name"} == {
        "schema", "validate", "evaluate", "push"}
    assert spec.root.input_definitions.parameters["model_name"].default_value.string_value == ""


def test_push_records_the_run_and_a_digest_of_the_spec_it_runs_in(tmp_path):
    """The digest is of the spec compiled without it (a spec cannot hold its own digest): recompiling the
    pipeline with the build info less the digest gives the digest the spec hands to push."""
    import hashlib
    import json

    from kfp import compiler

    from pipeline import create_pipeline

    push = compile_spec(tmp_path, "--image", IMAGE).root.dag.tasks["push"].inputs.parameters
    build = json.loads(push["build_info"].runtime_value.constant.string_value)
    assert build["image"] == IMAGE
    unsigned = tmp_path / "unsigned.yaml"
    compiler.Compiler().compile(create_pipeline(IMAGE, build_info=json.dumps(
        {"image": IMAGE, "git_revision": build["git_revision"]}, sort_keys=True)), package_path=str(unsigned))
    assert build["spec_sha256"] == hashlib.sha256(unsigned.read_bytes()).hexdigest()
    assert push["run_name"].runtime_value.constant.string_value == "{{$.pipeline_job_name}}"
    for flag in ("hyperparameters", "custom_config", "module", "data_pattern"):
        assert push[flag].component_input_parameter == flag


def test_compiling_from_deep_in_a_notebook_leaves_the_callers_frames_unread(tmp_path, monkeypatch):
    """kfp's task setters read the source of every frame on the stack they are called from (inspect.stack());
    each frame of a notebook cell sends inspect through every loaded module. The setters never see the caller's
    frames, and the spec is the one they write when called on the caller's own stack."""
    from kfp import compiler

    import pipeline
    from components.platform import cluster
    from pipeline import create_pipeline

    frames_seen = []
    real_stack = inspect.stack

    def stack_recorded(*args, **kwargs):
        frames = real_stack(*args, **kwargs)
        frames_seen.append([frame.filename for frame in frames])
        return frames

    monkeypatch.setattr(inspect, "stack", stack_recorded)
    cell = compile("def nested(depth, build):\n    return nested(depth - 1, build) if depth else build()\n",
                   "<notebook cell 7>", "exec")
    notebook = {}
    exec(cell, notebook)
    deep = tmp_path / "deep.yaml"
    notebook["nested"](60, lambda: compiler.Compiler().compile(
        create_pipeline(IMAGE, object_store=KFP_OBJECT_STORE), package_path=str(deep)))
    assert frames_seen, "kfp's setters no longer inspect the stack: this test checks nothing"
    assert sum("<notebook cell 7>" in files for files in frames_seen) == 0
    seen_from_the_notebook = len(frames_seen)
    monkeypatch.setattr(pipeline, "configure_tasks", cluster._configure)  # the setters on the caller's stack
    on_the_callers_stack = tmp_path / "on_the_callers_stack.yaml"
    compiler.Compiler().compile(create_pipeline(IMAGE, object_store=KFP_OBJECT_STORE),
                                package_path=str(on_the_callers_stack))
    assert all(__file__ in files for files in frames_seen[seen_from_the_notebook:])
    assert deep.read_text() == on_the_callers_stack.read_text()
