"""The compiled pipeline run stage by stage the way open-source KFP's launcher runs it, with artifacts in S3.

No Kubernetes cluster runs here, and kfp.local keeps artifacts in local folders, so the one thing it cannot
show is a stage whose artifacts are KFP's `minio://` URIs. `run_like_kfp` takes `pipeline.py run`'s flags,
compiles the spec, and runs its DAG in order, each task in its own process as KFP runs each in its own
pod: the task's input artifacts are downloaded from the bucket into their local paths first (KFP's
`/minio/...` view, here under `local_mounts/<task>`, which holds nothing of another task's), the
component's function is called with artifacts of the classes KFP's executor uses, whose URIs are
`<pipeline_root>/<run>/<task>/<output>`, and afterwards every output folder is uploaded to its URI and the
output's metadata kept for the tasks that read it, as KFP's launcher does.

    python tests/kfp_launcher.py TASK.json      # one task, as the launcher's child process (internal)
"""
import json
import os
import subprocess
import sys
import uuid

from helpers import REPO

_MINIO = "minio://"


def _topological(tasks):
    done, order = set(), []
    while len(order) < len(tasks):
        ready = sorted(name for name, task in tasks.items()
                       if name not in done and set(task.get("dependentTasks", [])) <= done)
        if not ready:
            raise RuntimeError(f"kfp_launcher: the DAG has a cycle among {sorted(set(tasks) - done)}")
        order += ready
        done.update(ready)
    return order


def _as_s3(uri):
    return "s3://" + uri[len(_MINIO):]


def run_like_kfp(run_flags, pipeline_root, local_mounts, storage, environment):
    """Runs the pipeline's tasks in order; returns {task: {output: {uri, metadata}}, "run": run id, "printed": all
    output}. Raises AssertionError naming the task that failed, with its output."""
    import yaml

    from pipeline_cli import _pipeline_arguments, parse_args

    arguments = _pipeline_arguments(parse_args(["run", *run_flags]))
    spec_path = os.path.join(str(local_mounts), "pipeline.yaml")
    os.makedirs(str(local_mounts), exist_ok=True)
    compiled = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "compile", "--output", spec_path,
                               "--kfp-s3-endpoint", storage.settings.s3_endpoint_url], cwd=REPO, capture_output=True,
                              text=True, env={**os.environ, **environment})
    assert compiled.returncode == 0, compiled.stderr
    spec = next(iter(yaml.safe_load_all(open(spec_path))))
    defaults = {name: definition.get("defaultValue")
                for name, definition in spec["root"]["inputDefinitions"]["parameters"].items()}
    tasks = spec["root"]["dag"]["tasks"]
    run = f"living-pipeline-{uuid.uuid4().hex[:8]}"
    outputs, printed = {"run": run}, []
    for name in _topological(tasks):
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        parameters = {}
        for parameter, source in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in source:
                key = source["componentInputParameter"]
                parameters[parameter] = arguments.get(key, defaults.get(key))
            else:
                parameters[parameter] = source["runtimeValue"]["constant"]
        mounts = os.path.join(str(local_mounts), name)  # the task's pod: nothing of another task's is there
        inputs = {}
        for artifact, source in task.get("inputs", {}).get("artifacts", {}).items():
            produced = outputs[source["taskOutputArtifact"]["producerTask"]][
                source["taskOutputArtifact"]["outputArtifactKey"]]
            inputs[artifact] = produced
            local = os.path.join(mounts, produced["uri"][len(_MINIO):])
            for remote, relative in storage.files_under(_as_s3(produced["uri"]), "--test"):
                os.makedirs(os.path.dirname(os.path.join(local, relative)), exist_ok=True)
                storage.download_file(remote, os.path.join(local, relative), "--test")
        produced = {artifact: {"uri": f"{pipeline_root}/{run}/{name}/{artifact}", "metadata": {},
                               "type": definition["artifactType"]["schemaTitle"]}
                    for artifact, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()}
        request = os.path.join(str(local_mounts), f"{name}.json")
        with open(request, "w") as sink:
            json.dump({"function": name, "parameters": parameters, "inputs": inputs, "outputs": produced,
                       "mounts": mounts}, sink)
        process = subprocess.run([sys.executable, os.path.abspath(__file__), request], cwd=REPO,
                                 env={**os.environ, **environment}, capture_output=True, text=True, timeout=1800)
        printed.append(process.stdout + process.stderr)
        assert process.returncode == 0, f"task {name} failed:\n{(process.stdout + process.stderr)[-5000:]}"
        with open(request) as source:
            produced = json.load(source)["outputs"]
        for artifact in produced.values():
            local = os.path.join(mounts, artifact["uri"][len(_MINIO):])
            if os.path.isdir(local):
                storage.upload_folder(local, _as_s3(artifact["uri"]), "--test")
            elif os.path.isfile(local):
                storage.upload_file(local, _as_s3(artifact["uri"]), "--test")
        outputs[name] = produced
    outputs["printed"] = "\n".join(printed)
    return outputs


def _run_task(request_path):
    """In the task's process: call the component's function as KFP's executor would, then record the outputs."""
    from kfp import dsl
    from kfp.dsl.types import artifact_types

    from components import stages

    with open(request_path) as source:
        request = json.load(source)
    artifact_types._MINIO_LOCAL_MOUNT_PREFIX = request["mounts"].rstrip("/") + "/"
    def artifact_of(name, artifact):  # the class KFP's executor gives an artifact of this schema title
        kind = artifact_types._SCHEMA_TITLE_TO_TYPE.get(artifact["type"], dsl.Artifact)
        return kind(name=name, uri=artifact["uri"], metadata=dict(artifact["metadata"]))

    values = dict(request["parameters"])
    for name, artifact in request["inputs"].items():
        values[name] = artifact_of(name, artifact)
    outputs = {}
    for name, artifact in request["outputs"].items():
        outputs[name] = artifact_of(name, artifact)
        os.makedirs(os.path.dirname(outputs[name].path), exist_ok=True)
    values.update(outputs)
    getattr(stages, request["function"])(**values)
    request["outputs"] = {name: {**request["outputs"][name], "uri": artifact.uri, "metadata": artifact.metadata}
                          for name, artifact in outputs.items()}
    with open(request_path, "w") as sink:
        json.dump(request, sink)


if __name__ == "__main__":
    _run_task(sys.argv[1])
