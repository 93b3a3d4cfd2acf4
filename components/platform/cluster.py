"""Where the stages run on a cluster: each task's settings from the stage table, and on open-source KFP
where the pipeline's kept state lives.

`configure_tasks` gives every task the resources and caching of its row in components/stage_table.py
(portable settings: KFP turns resources into the pods' requests and limits, Vertex AI picks machine types
from the limits, kfp.local ignores them).

The pipeline's kept state (the serving root and the statistics store, which outlive a run) lives on KFP in
one of two places, both KFP-only settings that never reach the portable spec Vertex AI runs:
- the object store KFP already runs (`compile --kfp-s3-endpoint URL`, the documented default): every
  stage gets the endpoint as the environment variable AWS_ENDPOINT_URL and the keys from a Kubernetes
  Secret (by default KFP's own, `mlpipeline-minio-artifact`) as AWS_ACCESS_KEY_ID and
  AWS_SECRET_ACCESS_KEY (kfp-kubernetes). The keys are never pipeline parameters, so they are in no
  spec, artifact or log; the serving root and statistics store are then `s3://` URIs. Any pod may
  run on any node.
- a volume (`compile --kfp-volume PVC`), mounted in the stages whose row names kept state; a
  ReadWriteOnce volume ties those pods to one node.

Either way, each pod also gets the platform's own deadline (`activeDeadlineSeconds`), a few minutes after
its stage's own time limit (components/platform/time_limits.py), in case the stage cannot stop itself.
"""
import concurrent.futures
from typing import NamedTuple

from components.platform.time_limits import platform_deadline
from components.stage_table import BY_NAME

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


def configure_tasks(tasks, kfp_volume=None, object_store=None, timeouts=None):
    """Sets each task's resources and caching from the stage table; with `kfp_volume` (a PVC name), mounts
    it in the stages that keep state; with `object_store` (an ObjectStore), gives every stage its endpoint
    and keys as environment variables. A spec for KFP (either of those) also gets each pod's deadline from
    `timeouts` ({stage: seconds}; the portable spec holds no Kubernetes settings, as Vertex AI needs)."""
    # kfp's task setters (set_cpu_limit, set_env_variable, ...) each call inspect.stack(), which reads every
    # frame of the caller's stack and scans all of sys.modules for each frame whose file is no module's
    # (`python -m`, a notebook cell, pytest-xdist's worker): 14-17 ms a setter once TensorFlow is imported,
    # half a second a spec. In a thread of their own they see a stack of a few frames, ours and kfp's.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="configure-tasks") as setter_thread:
        return setter_thread.submit(_configure, tasks, kfp_volume, object_store, timeouts).result()


def _configure(tasks, kfp_volume, object_store, timeouts):
    for task in tasks:
        stage = BY_NAME[task.name]
        resources = stage.resources
        task.set_caching_options(stage.cached)
        (task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
         .set_memory_request(resources.memory_request).set_memory_limit(resources.memory_limit))
        if kfp_volume and stage.kept_state:
            from kfp import kubernetes

            kubernetes.mount_pvc(task, pvc_name=kfp_volume, mount_path=STATE_MOUNT_PATH)
        if object_store:
            from kfp import kubernetes

            # Every stage: any of them may read a bucket (data, schema, module) or write one.
            task.set_env_variable(ENDPOINT_VARIABLE, object_store.endpoint)
            kubernetes.use_secret_as_env(task, secret_name=object_store.secret, secret_key_to_env={
                object_store.access_key_key: KEY_VARIABLES[0], object_store.secret_key_key: KEY_VARIABLES[1]})
        if (kfp_volume or object_store) and timeouts:
            from kfp import kubernetes

            kubernetes.set_timeout(task, platform_deadline(timeouts[task.name]))
    return tasks
