"""Beam's SDK worker in the project image: a Python stand-in for the `boot` program of Beam's SDK images.

Beam's portable runner asks a worker pool to start SDK workers. Beam's own pool
(`apache_beam.runners.worker.worker_pool_main`) starts a bare `SdkHarness` unless it is given a
container executable, and a bare harness never receives the job's pipeline options: Beam's file systems
on the worker then have no settings, and `s3://` (which needs `--s3_endpoint_url` for SeaweedFS or MinIO)
fails. Beam's SDK images solve this with `boot`, which asks the runner's provision service for the
options and starts `sdk_worker_main` with them. This module does the same, in Python, with the
project's virtual environment, so the pinned stack and `components` are what the workers run:

    python -m components.platform.beam_boot --worker_pool --service_port=50000    # the worker pool (a container)

The pool is Beam's `worker_pool_main`, given a two-line executable that runs this module for each worker
(`--id --provision_endpoint --control_endpoint --logging_endpoint ...`, the container contract of Beam's
SDK harness). Credentials and the database URL come from the pool's environment (each worker inherits it),
never from the options. With BEAM_BOOT=dataflow the image also carries Beam's own `boot`
(/opt/apache/beam/boot), which `worker_pool_main --container_executable=/opt/apache/beam/boot` uses instead.
"""
import argparse
import os
import stat
import sys
import tempfile


def _worker_pool(argv):
    from apache_beam.runners.worker import worker_pool_main

    folder = tempfile.mkdtemp(prefix="living-pipeline-beam-boot-")
    executable = os.path.join(folder, "boot")
    with open(executable, "w") as script:
        script.write(f'#!/bin/sh\nexec "{sys.executable}" -m components.platform.beam_boot "$@"\n')
    os.chmod(executable, stat.S_IRWXU)
    worker_pool_main.main([*argv, f"--container_executable={executable}"])


def _worker(args):
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc, endpoints_pb2
    from google.protobuf import json_format, text_format

    with grpc.insecure_channel(args.provision_endpoint) as channel:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", args.id)]).info

    def descriptor(url):
        return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))

    environment = {
        **os.environ,
        "WORKER_ID": args.id,
        "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
        "CONTROL_API_SERVICE_DESCRIPTOR": descriptor(args.control_endpoint or info.control_endpoint.url),
        "LOGGING_API_SERVICE_DESCRIPTOR": descriptor(args.logging_endpoint or info.logging_endpoint.url),
        "SEMI_PERSISTENT_DIRECTORY": tempfile.mkdtemp(prefix=f"beam-worker-{args.id}-"),
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
    }
    print(f"living-pipeline beam_boot: SDK worker {args.id} starting (control {args.control_endpoint})",
          file=sys.stderr, flush=True)
    if info.HasField("status_endpoint"):
        environment["STATUS_API_SERVICE_DESCRIPTOR"] = descriptor(info.status_endpoint.url)
    os.execve(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"], environment)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--worker_pool" in argv:
        _worker_pool([arg for arg in argv if arg != "--worker_pool"])
        return
    parser = argparse.ArgumentParser(description="Start one Beam SDK worker (Beam's container contract).")
    for name in ("id", "provision_endpoint", "control_endpoint", "logging_endpoint", "artifact_endpoint"):
        parser.add_argument(f"--{name}", default="")
    args = parser.parse_args(argv)
    if not (args.id and args.provision_endpoint):
        parser.error("--id and --provision_endpoint are required (the worker pool gives them)")
    _worker(args)


if __name__ == "__main__":
    main()
