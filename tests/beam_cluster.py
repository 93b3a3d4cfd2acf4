"""Beam's portable runner on this machine, for the tests and benchmarks: the job service and worker pools
in containers of the project image (docs/distributed.md).

`beam_cluster(environment, files, pools=2)` starts Beam's job service in one container and `pools`
worker pools (`components.platform.beam_boot --worker_pool`) in others, all on the host network (the SDK
workers reach the job service's control and data ports on loopback), none with a host folder or volume
mounted: `files` are copied into the containers before they start (`docker cp`), `environment` is set in
the pools (the workers inherit it). Beam's runner asks one address to start each SDK worker, on a new
connection each time, so the address handed out is a small round-robin front on 127.0.0.1 that sends
each connection to the next pool: with `--direct_num_workers=N` the workers are spread over the pools.
"""
import contextlib
import dataclasses
import itertools
import socket
import subprocess
import threading
import time
import uuid

import pytest

from helpers import free_port

IMAGE_ENVIRONMENT = "LIVING_PIPELINE_IMAGE"
DEFAULT_IMAGE = "living-pipeline:0.1.0"


def docker(*args, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def require_docker_and_image(image, who):
    """Fails the test with one line when there is no Docker client, engine or project image."""
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=30)
    except FileNotFoundError:
        pytest.fail(f"{who} needs Docker: no docker client on PATH (CI installs docker.io)", pytrace=False)
    if info.returncode != 0:
        pytest.fail(f"{who} needs a Docker engine: none answers ({info.stderr.strip().splitlines()[-1]}): "
                    "start dockerd", pytrace=False)
    if docker("image", "inspect", image).returncode != 0:
        pytest.fail(f"{who} needs the project image {image}: build it with make image", pytrace=False)


def peak_mb(container):
    """The container's peak memory so far, from its cgroup (v2 `memory.peak`, v1 `max_usage_in_bytes`)."""
    for path in ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"):
        peak = docker("exec", container, "cat", path).stdout.strip()
        if peak.isdigit():
            return round(int(peak) / 2**20)
    return None


@contextlib.contextmanager
def container(image, name, environment, files, *command):
    """A started container of `image` on the host network, with `files` ({host path: container path})
    copied in, and no volume or bind mount; removed on exit."""
    env_args = [arg for key, value in environment.items() for arg in ("-e", f"{key}={value}")]
    created = docker("create", "--rm", "--name", name, "--network", "host", *env_args, image, *command)
    if created.returncode != 0:
        raise RuntimeError(f"docker create {name}: {created.stderr.strip()}")
    try:
        for source, target in files.items():
            copied = docker("cp", source, f"{name}:{target}")
            if copied.returncode != 0:
                raise RuntimeError(f"docker cp {source} {name}:{target}: {copied.stderr.strip()}")
        started = docker("start", name)
        if started.returncode != 0:
            raise RuntimeError(f"docker start {name}: {started.stderr.strip()}")
        mounts = docker("inspect", "--format", "{{len .Mounts}}", name).stdout.strip()
        if mounts != "0":
            raise RuntimeError(f"{name} mounts {mounts} host folders or volumes")
        yield name
    finally:
        docker("rm", "-f", name)


def _pipe(source, sink):
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def round_robin_front(ports):
    """A TCP front on 127.0.0.1 that hands each new connection to the next of `ports`; yields its port.
    Records which port each connection went to in the yielded object's `handed`."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    front = _Front(listener.getsockname()[1])
    targets = itertools.cycle(ports)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            target = next(targets)
            front.handed.append(target)
            try:
                upstream = socket.create_connection(("127.0.0.1", target), timeout=30)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for pair in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=pair, daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield front
    finally:
        stop.set()
        server.join(timeout=5)
        listener.close()


@dataclasses.dataclass
class _Front:
    port: int
    handed: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class BeamCluster:
    job_endpoint: str
    worker_pool: str
    job_service: str
    pools: list
    front: _Front


def _wait_for_port(port, container_name, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.3)
    logs = docker("logs", container_name)
    raise RuntimeError(f"{container_name} did not listen on {port}: {(logs.stdout + logs.stderr)[-2000:]}")


@contextlib.contextmanager
def beam_cluster(image, environment, files=None, pools=2):
    """The job service and `pools` worker pools of `image`; yields a BeamCluster."""
    suffix = uuid.uuid4().hex[:6]
    job_port, pool_ports = free_port(), [free_port() for _ in range(pools)]
    with contextlib.ExitStack() as stack:
        jobs = stack.enter_context(container(
            image, f"lp-beam-jobs-{suffix}", {}, {}, "python", "-m",
            "components.platform.beam_job_service", f"--port={job_port}"))
        names = [stack.enter_context(container(
            image, f"lp-beam-pool{index}-{suffix}", environment, files or {}, "python", "-m",
            "components.platform.beam_boot", "--worker_pool", f"--service_port={port}"))
            for index, port in enumerate(pool_ports)]
        for port, name in [(job_port, jobs), *zip(pool_ports, names)]:
            _wait_for_port(port, name)
        front = stack.enter_context(round_robin_front(pool_ports))
        yield BeamCluster(f"localhost:{job_port}", f"localhost:{front.port}", jobs, names, front)
