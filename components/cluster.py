"""What each stage asks of a cluster: CPU and memory, and on open-source KFP the volume for the pipeline's state.

Resources are portable task settings in the spec: KFP turns them into the pods' requests and limits,
Vertex AI picks machine types from the limits, kfp.local ignores them. The state volume (the serving
root and the statistics store, which outlive a run) is a Kubernetes-only setting from kfp-kubernetes;
it goes only into the KFP-flavoured spec (`pipeline.py compile --kfp-volume PVC`) and never into the
portable spec that Vertex AI runs.
"""
from typing import NamedTuple


class Resources(NamedTuple):
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


# Measured peaks on the demo and at 1M rows (benchmarks/README.md): no stage above 1.2 GB; the Beam
# stages and training use two cores when they have them.
STAGE_RESOURCES = {
    "ingest": Resources("500m", "2", "1G", "4G"),
    "statistics": Resources("1", "2", "2G", "4G"),
    "schema": Resources("250m", "1", "512M", "2G"),
    "validate": Resources("500m", "1", "1G", "2G"),
    "transform": Resources("1", "2", "2G", "4G"),
    "train": Resources("1", "2", "2G", "4G"),
    "evaluate": Resources("1", "2", "2G", "4G"),
    "push": Resources("250m", "1", "512M", "2G"),
}

# The stages that read or write state outside their artifacts: the statistics store (validate) and
# the serving root (evaluate's baseline, push).
STATE_STAGES = ("validate", "evaluate", "push")
STATE_MOUNT_PATH = "/mnt/living-pipeline"


def configure_tasks(tasks, kfp_volume=None):
    """Sets each task's resources; with `kfp_volume` (a PVC name), mounts it in the state stages."""
    for task in tasks:
        resources = STAGE_RESOURCES[task.name]
        (task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
         .set_memory_request(resources.memory_request).set_memory_limit(resources.memory_limit))
        if kfp_volume and task.name in STATE_STAGES:
            from kfp import kubernetes

            kubernetes.mount_pvc(task, pvc_name=kfp_volume, mount_path=STATE_MOUNT_PATH)
    return tasks
