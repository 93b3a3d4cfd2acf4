"""What each stage asks of a cluster: CPU and memory, and on open-source KFP where the pipeline's state lives.

Resources are portable task settings in the spec: KFP turns them into the pods' requests and limits,
Vertex AI picks machine types from the limits, kfp.local ignores them.

The pipeline's state (the serving root and the statistics store, which outlive a run) lives on KFP in
one of two places, both KFP-only settings that never reach the portable spec Vertex AI runs:
- the object store KFP already runs (`compile --kfp-s3-endpoint URL`, the documented default): every
  stage gets the endpoint as the environment variable AWS_ENDPOINT_URL and the keys from a Kubernetes
  Secret (by default KFP's own, `mlpipeline-minio-artifact`) as AWS_ACCESS_KEY_ID and
  AWS_SECRET_ACCESS_KEY (kfp-kubernetes). The keys are never pipeline parameters, so they are in no
  spec, artifact or log; the serving root and statistics store are then `s3://` URIs. Any pod may
  run on any node.
- a volume (`compile --kfp-volume PVC`), mounted in the stages that keep state; a ReadWriteOnce
  volume ties those pods to one node.
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


class ObjectStore(NamedTuple):
    """An S3-compatible object store inside the cluster: its endpoint and the Secret holding its keys."""
    endpoint: str
    secret: str = "mlpipeline-minio-artifact"
    access_key_key: str = "accesskey"
    secret_key_key: str = "secretkey"


# KFP 2.5.0's own object store (its bundled MinIO) and the Secret KFP keeps its keys in.
KFP_OBJECT_STORE = ObjectStore(endpoint="http://minio-service.kubeflow:9000")
# Where the pipeline keeps its state there: beside KFP's own artifacts, in KFP's bucket.
KFP_SERVING_ROOT = "s3://mlpipeline/living-pipeline/serving"
KFP_STATISTICS_ROOT = "s3://mlpipeline/living-pipeline/statistics"
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"
KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def configure_tasks(tasks, kfp_volume=None, object_store=None):
    """Sets each task's resources; with `kfp_volume` (a PVC name), mounts it in the state stages; with
    `object_store` (an ObjectStore), gives every stage its endpoint and keys as environment variables."""
    for task in tasks:
        resources = STAGE_RESOURCES[task.name]
        (task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
         .set_memory_request(resources.memory_request).set_memory_limit(resources.memory_limit))
        if kfp_volume and task.name in STATE_STAGES:
            from kfp import kubernetes

            kubernetes.mount_pvc(task, pvc_name=kfp_volume, mount_path=STATE_MOUNT_PATH)
        if object_store:
            from kfp import kubernetes

            # Every stage: any of them may read a bucket (data, schema, module) or write one.
            task.set_env_variable(ENDPOINT_VARIABLE, object_store.endpoint)
            kubernetes.use_secret_as_env(task, secret_name=object_store.secret, secret_key_to_env={
                object_store.access_key_key: KEY_VARIABLES[0], object_store.secret_key_key: KEY_VARIABLES[1]})
    return tasks
