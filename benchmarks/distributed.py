"""In-process DirectRunner against Beam's portable runner with two worker pools of the project image.

    python -m benchmarks.distributed [--rows 1000000] [--out benchmarks/results/distributed]

Generates the demo data (`generate.py`), puts it in a bucket (`gs://` on a GCS emulator that TensorFlow's
own GCS client reaches through a TLS-terminating proxy: tests/tensorflow_gcs.py), and runs `pipeline.py run`
on it twice, from the same bucket to the same kinds of roots: with Beam inside each stage's process, then
with `--beam-runner portable` against Beam's job service (`components.platform.beam_job_service`) and two
worker pools (`components.platform.beam_boot --worker_pool`), each in its own container of the project
image, `--direct_num_workers=2` (one SDK worker in each pool). For every stage it records the wall
seconds and the stage process's peak memory; for the portable run also the peak resident memory of the
worker pools together (their cgroups, sampled every 0.2 s over the stage's span) and of the job service.
Needs Docker and the project image (make image).
"""
import argparse
import contextlib
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from benchmarks.generate import generate
from benchmarks.run import stage_summary

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BEAM_STAGES = ["ingest", "statistics", "transform", "evaluate"]
CA_IN_CONTAINER = "/tmp/living-pipeline-test-ca.pem"
_TASK_START = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - Executing task '(\w+)'")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def _test_servers():
    """The tests' launchers of the GCS emulator and the Beam containers, the one way this repository starts them."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    import beam_cluster
    import tensorflow_gcs

    return beam_cluster, tensorflow_gcs


def _memory_stat(beam_cluster, container):
    """The container's memory.stat file on this host and the field that counts its processes' own memory:
    cgroup v1 (`memory` controller, `total_rss`) or v2 (`anon`)."""
    pid = beam_cluster.docker("inspect", "--format", "{{.State.Pid}}", container).stdout.strip()
    with open(f"/proc/{pid}/cgroup") as source:
        lines = [line.strip().split(":", 2) for line in source if line.strip()]
    v1 = [path for _, controllers, path in lines if "memory" in controllers.split(",")]
    if v1:
        return f"/sys/fs/cgroup/memory{v1[0]}/memory.stat", "total_rss"
    return f"/sys/fs/cgroup{lines[0][2]}/memory.stat", "anon"


def _resident_mb(path, field):
    with open(path) as source:
        for line in source:
            if line.startswith(field + " "):
                return int(line.split()[1]) / 2**20
    return 0.0


@contextlib.contextmanager
def _memory_sampler(beam_cluster, containers, interval=0.2):
    """Samples the containers' resident memory (their cgroups); yields the list of (time, {name: MB})."""
    files = {name: _memory_stat(beam_cluster, name) for name in containers}
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            with contextlib.suppress(OSError):
                samples.append((time.time(), {name: _resident_mb(*stat) for name, stat in files.items()}))
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def _stage_windows(output, day):
    """{stage: (start, end)} in epoch seconds, from kfp.local's 'Executing task' lines; the last ends now."""
    starts = []
    for line in output.splitlines():
        found = _TASK_START.match(_COLOUR.sub("", line).strip())
        if found:
            clock = datetime.datetime.strptime(f"{day} {found.group(1)}", "%Y-%m-%d %H:%M:%S.%f")
            starts.append((found.group(2), clock.timestamp()))
    ends = [start for _, start in starts[1:]] + [time.time()]
    return {name: (start, end) for (name, start), end in zip(starts, ends)}


def _run(args, environment, summary):
    started = time.monotonic()
    process = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "run", *args,
                              "--summary-json", summary], cwd=REPO, env={**os.environ, **environment},
                             capture_output=True, text=True)
    seconds = time.monotonic() - started
    output = process.stdout + process.stderr
    error = next((line for line in output.splitlines() if line.startswith("Error:")), "")
    stages = {name: {**stage, "seconds": round(stage["seconds"], 1) if stage.get("seconds") else stage.get("seconds")}
              for name, stage in stage_summary(summary).items()}
    return {"seconds": round(seconds, 1), "stages": stages, "error": error}, output


def benchmark(rows, work):
    beam_cluster, tensorflow_gcs = _test_servers()
    data_dir = os.path.join(work, "data")
    generate("demo", rows, 0, data_dir)
    image = os.environ.get(beam_cluster.IMAGE_ENVIRONMENT, beam_cluster.DEFAULT_IMAGE)
    os.makedirs(os.path.join(work, "gcs"))
    with tensorflow_gcs.tensorflow_gcs(os.path.join(work, "gcs")) as gcs:
        environment = gcs.environment()
        os.environ.update(environment)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        tensorflow_gcs.create_bucket(gcs, bucket)
        from components.state.storage import Storage

        storage = Storage()
        for name in sorted(os.listdir(data_dir)):
            storage.upload_file(os.path.join(data_dir, name), f"gs://{bucket}/landing/{name}", "--data")
        common = ["--data", f"gs://{bucket}/landing/*.csv", "--schema", "", "--warn-on-anomalies"]
        report = {"rows": rows, "workers": 2, "pools": 2, "date": datetime.date.today().isoformat(),
                  "cores": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2)}
        report["direct"], _ = _run([*common, "--pipeline-root", os.path.join(work, "direct"),
                                    "--serving-root", f"gs://{bucket}/serving-direct",
                                    "--statistics-root", f"gs://{bucket}/statistics-direct"],
                                   environment, os.path.join(work, "direct.json"))
        pools_environment = gcs.environment(CA_IN_CONTAINER)
        with beam_cluster.beam_cluster(image, pools_environment, {gcs.ca_path: CA_IN_CONTAINER}, pools=2) as cluster:
            containers = [*cluster.pools, cluster.job_service]
            day = datetime.date.today().isoformat()
            with _memory_sampler(beam_cluster, containers) as samples:
                report["portable"], output = _run(
                    [*common, "--pipeline-root", os.path.join(work, "portable"),
                     "--serving-root", f"gs://{bucket}/serving-portable",
                     "--statistics-root", f"gs://{bucket}/statistics-portable", "--beam-runner", "portable",
                     "--beam-temp-root", f"gs://{bucket}/beam", "--beam-job-endpoint", cluster.job_endpoint,
                     "--beam-worker-pool", cluster.worker_pool, "--beam-args=--direct_num_workers=2"],
                    environment, os.path.join(work, "portable.json"))
            for stage, (start, end) in _stage_windows(output, day).items():
                window = [memory for moment, memory in samples if start <= moment <= end]
                if stage in report["portable"]["stages"] and window:
                    report["portable"]["stages"][stage]["workers_peak_mb"] = round(
                        max(sum(memory[pool] for pool in cluster.pools) for memory in window))
                    report["portable"]["stages"][stage]["job_service_peak_mb"] = round(
                        max(memory[cluster.job_service] for memory in window))
    report["load_after"] = round(os.getloadavg()[0], 2)
    return report


def markdown(report):
    lines = [f"{report['rows']:,} demo rows in `gs://` (GCS emulator); portable: Beam's job service and "
             f"{report['pools']} worker pools in containers of the project image, {report['workers']} SDK workers "
             f"per job. {report['date']}, {report['cores']} cores, load {report['load_before']} before, "
             f"{report['load_after']} after.", "",
             "| stage | direct s | direct peak MB | portable s | portable stage-process peak MB | "
             "workers' peak MB (both pools) | job service peak MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for stage in report["direct"]["stages"]:
        direct, portable = report["direct"]["stages"].get(stage, {}), report["portable"]["stages"].get(stage, {})
        lines.append(f"| {stage} | {direct.get('seconds', '-')} | {direct.get('peak_mb', '-')} | "
                     f"{portable.get('seconds', '-')} | {portable.get('peak_mb', '-')} | "
                     f"{portable.get('workers_peak_mb', '-')} | {portable.get('job_service_peak_mb', '-')} |")
    for run in ("direct", "portable"):
        outcome = report[run]['error'] or 'no error'
        lines.append(f"{run.capitalize()} run: {report[run]['seconds']} s in all; {outcome}.")
    lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "distributed"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="living-pipeline-bench-distributed-") as work:
        report = benchmark(args.rows, work)
    with open(os.path.join(args.out, f"results-{args.rows}.json"), "w") as sink:
        json.dump(report, sink, indent=2)
    text = markdown(report)
    with open(os.path.join(args.out, f"results-{args.rows}.md"), "w") as sink:
        sink.write(text)
    print(text)


if __name__ == "__main__":
    main()
