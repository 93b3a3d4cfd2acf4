"""The stage table against what the stages really are: each component's signature says which kept state it
takes, its body which stage logic it imports; the compiled specs show what the platform got from the table."""
import ast
import inspect
import textwrap

import pytest

from components import stages
from components.platform.cluster import STATE_MOUNT_PATH
from components.platform.submit import read_spec
from components.platform.warm_stages import warm_imports
from components.stage_table import STAGES, KeptState, Stage
from pipeline_cli import main

COMPONENTS = [stages.ingest, stages.statistics, stages.schema, stages.validate, stages.transform, stages.tune,
              stages.train, stages.evaluate, stages.push]


def kept_state_taken(component):
    """The kept state a component's signature takes: a parameter named after where that state lives."""
    return frozenset(state for state in KeptState if state.value in inspect.signature(component).parameters)


def stage_logic_imported(component):
    """The stage-logic modules a component's body imports."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(component)))
    return {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module.startswith("components.stage_logic.")}


def disagreements(table):
    """Where the table says other than the components: missing or extra kept state, caching of a stage that
    keeps state, a stage's logic the warm process does not preload before the stage nor leaves to it."""
    found = []
    for stage in table:
        taken = kept_state_taken(stage.component)
        if taken != stage.kept_state:
            found.append(f"{stage.name}: its signature takes {sorted(s.name for s in taken)}, the table says "
                         f"{sorted(s.name for s in stage.kept_state)}")
        if stage.kept_state and stage.cached:
            found.append(f"{stage.name}: keeps state, yet may be cached")
    preloaded = list(warm_imports(table))
    ready = set(preloaded[:preloaded.index(table[0].preloads[0])]) if table[0].preloads else set()
    for stage in table:  # a stage may start once the warm process has imported its own preloads
        ready.update(stage.preloads)
        missing = stage_logic_imported(stage.component) - ready - set(stage.own_imports)
        if missing:
            found.append(f"{stage.name}: the warm process does not preload {sorted(missing)} for it, nor does "
                         f"the table leave them to the stage (own_imports)")
    return found


def test_the_table_has_one_row_per_component_in_pipeline_order():
    assert [stage.component for stage in STAGES] == COMPONENTS
    assert [stage.name for stage in STAGES] == ["ingest", "statistics", "schema", "validate", "transform", "tune",
                                                "train", "evaluate", "push"]


def test_the_table_agrees_with_every_components_signature_and_imports():
    assert disagreements(STAGES) == []
    # The schema stage reads the kept schema from the statistics store: its row says so.
    assert STAGES[2].kept_state == {KeptState.STATISTICS_STORE}


def test_a_table_that_forgets_a_stages_state_is_caught():
    """As the old list of state stages did: it left out the schema stage, which then got no state volume."""
    schema_without_state = [stage._replace(kept_state=frozenset()) if stage.name == "schema" else stage
                            for stage in STAGES]
    assert disagreements(schema_without_state) == [
        "schema: its signature takes ['STATISTICS_STORE'], the table says []"]
    cached_push = [stage._replace(cached=True) if stage.name == "push" else stage for stage in STAGES]
    assert disagreements(cached_push) == ["push: keeps state, yet may be cached"]
    unloaded = [Stage(stages.validate, stage.resources, stage.kept_state, cached=False)
                if stage.name == "validate" else stage for stage in STAGES]
    assert disagreements(unloaded) == [
        "validate: the warm process does not preload ['components.stage_logic.validate'] for it, nor does the "
        "table leave them to the stage (own_imports)"]
    left_to_the_stage = [stage._replace(preloads=(), own_imports=("components.stage_logic.validate",))
                         if stage.name == "validate" else stage for stage in STAGES]
    assert disagreements(left_to_the_stage) == []


@pytest.fixture(scope="module")
def kfp_specs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specs")
    paths = {"portable": folder / "portable.yaml", "volume": folder / "volume.yaml", "s3": folder / "s3.yaml"}
    assert main(["compile", "--output", str(paths["portable"])]) == 0
    assert main(["compile", "--output", str(paths["volume"]), "--kfp-volume", "state"]) == 0
    assert main(["compile", "--output", str(paths["s3"]), "--kfp-s3-endpoint", "http://minio:9000"]) == 0
    return {name: read_spec(str(path)) for name, path in paths.items()}


def test_every_stage_that_keeps_state_gets_the_volume_and_every_stage_the_object_store(kfp_specs):
    """Derived from the components' signatures, not from the table: a stage that reads or writes kept state
    must reach it on KFP whichever way the state is kept."""
    needs_state = {f"exec-{component.__name__}" for component in COMPONENTS if kept_state_taken(component)}
    assert needs_state == {"exec-schema", "exec-validate", "exec-evaluate", "exec-push"}
    _, volume = kfp_specs["volume"]
    mounts = {name: config for name, config in volume["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items()
              if "pvcMount" in config}  # every executor is there, with its pod deadline (test_stage_time_limits)
    assert set(mounts) == needs_state
    assert {mount["mountPath"] for config in mounts.values() for mount in config["pvcMount"]} == {STATE_MOUNT_PATH}
    spec, s3 = kfp_specs["s3"]
    executors = s3["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"]) == {f"exec-{c.__name__}" for c in COMPONENTS}
    for config in executors.values():
        assert {secret["keyToEnv"][0]["envVar"] for secret in config["secretAsEnv"]} >= {"AWS_ACCESS_KEY_ID"}
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "AWS_ENDPOINT_URL" in {variable["name"] for variable in executor["container"].get("env", [])}


def test_caching_and_resources_in_the_spec_are_the_tables(kfp_specs):
    spec, _ = kfp_specs["portable"]
    tasks = spec["root"]["dag"]["tasks"]
    executors = spec["deploymentSpec"]["executors"]
    for stage in STAGES:
        assert tasks[stage.name]["cachingOptions"].get("enableCache", False) == stage.cached, stage.name
        resources = executors[f"exec-{stage.name}"]["container"]["resources"]
        assert (resources["resourceCpuRequest"], resources["resourceCpuLimit"], resources["resourceMemoryRequest"],
                resources["resourceMemoryLimit"]) == tuple(stage.resources), stage.name


def test_compiling_for_kfp_needs_only_what_make_run_installs():
    """kfp-kubernetes (the state volume, the object store's keys) is a base requirement, not an extra."""
    import importlib.metadata

    requirements = importlib.metadata.requires("living-pipeline")
    base = [requirement for requirement in requirements if "extra ==" not in requirement]
    assert any(requirement.startswith("kfp-kubernetes") for requirement in base)
