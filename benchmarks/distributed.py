"""In-process DirectRunner against Beam's portable runner with a worker pool of the project image.

    python -m benchmarks.distributed [--rows 1000000] [--workers 2] [--out benchmarks/results/distributed]

Generates the demo data (`generate.py`), puts it in SeaweedFS (`s3://`, on loopback), and runs
`pipeline.py run` on it twice: with Beam inside each stage's process, then with `--beam-runner portable`
against Beam's job service and a worker pool (`components.platform.beam_boot --worker_pool`) in two containers of
the project image, `--workers` SDK workers. For each run it records every stage's wall seconds and the
stage process's peak memory, and for the portable run the peak memory of the worker-pool and
job-service containers over the whole run (cgroup `memory.peak`). On this machine the portable run
stops at transform (TensorFlow writes the transform graph itself and has no `s3://` file system; see
docs/distributed.md), so ingest and statistics are what compare. Needs Docker and the project image.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from benchmarks.generate import generate
from benchmarks.run import stage_summary

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
IMAGE = os.environ.get("LIVING_PIPELINE_IMAGE", "living-pipeline:0.1.0")
COMPARED = ["ingest", "statistics"]


def _object_stores():
    """The tests' SeaweedFS launcher (tests/object_stores.py), the one way this repository starts it."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    import object_stores

    return object_stores


def _docker(*args):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def _peak_mb(container):
    """The container's peak memory so far, from its cgroup (v2 `memory.peak`, v1 `max_usage_in_bytes`)."""
    for path in ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"):
        peak = _docker("exec", container, "cat", path).stdout.strip()
        if peak.isdigit():
            return round(int(peak) / 2**20)
    return None


def _run(args, environment, summary):
    started = time.monotonic()
    process = subprocess.run([sys.executable, os.path.join(REPO, "pipeline.py"), "run", *args,
                              "--summary-json", summary], cwd=REPO, env={**os.environ, **environment},
                             capture_output=True, text=True)
    seconds = time.monotonic() - started
    stages = stage_summary(summary)
    error = next((line for line in (process.stdout + process.stderr).splitlines() if line.startswith("Error:")), "")
    stages = {name: {**stage, "seconds": round(stage["seconds"], 1) if stage.get("seconds") else stage.get("seconds")}
              for name, stage in stages.items()}
    return {"seconds": round(seconds, 1), "stages": stages, "error": error}


def benchmark(rows, workers, work):
    stores = _object_stores()
    data_dir = os.path.join(work, "data")
    generate("demo", rows, 0, data_dir)
    os.makedirs(os.path.join(work, "seaweedfs"))
    with stores.seaweedfs(os.path.join(work, "seaweedfs")) as endpoint:
        environment = stores.s3_environment(endpoint)
        client = stores.s3_client(endpoint)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        client.create_bucket(Bucket=bucket)
        for name in sorted(os.listdir(data_dir)):
            client.upload_file(os.path.join(data_dir, name), bucket, f"landing/{name}")
        common = ["--data", f"s3://{bucket}/landing/*.csv", "--schema", "", "--statistics-root", "",
                  "--warn-on-anomalies", f"--beam-args=--s3_endpoint_url={endpoint}"]
        report = {"rows": rows, "workers": workers}
        report["direct"] = _run([*common, "--pipeline-root", os.path.join(work, "direct"),
                                 "--serving-root", os.path.join(work, "serving-direct")],
                                environment, os.path.join(work, "direct.json"))
        free_port = stores.free_port
        job_port, pool_port = free_port(), free_port()
        names = {"jobs": f"lp-bench-jobs-{bucket}", "workers": f"lp-bench-workers-{bucket}"}
        keys = [arg for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
                for arg in ("-e", f"{key}={environment[key]}")]
        try:
            for started in (
                    _docker("run", "-d", "--rm", "--name", names["jobs"], "--network", "host", IMAGE, "python", "-m",
                            "apache_beam.runners.portability.local_job_service_main", f"--port={job_port}"),
                    _docker("run", "-d", "--rm", "--name", names["workers"], "--network", "host", *keys, IMAGE,
                            "python", "-m", "components.platform.beam_boot", "--worker_pool",
                            f"--service_port={pool_port}")):
                if started.returncode != 0:
                    raise SystemExit(f"benchmarks.distributed: a container of {IMAGE} did not start: "
                                     f"{started.stderr.strip()}")
            time.sleep(5)
            report["portable"] = _run(
                [*common[:-1], "--pipeline-root", os.path.join(work, "portable"),
                 "--serving-root", os.path.join(work, "serving-portable"), "--beam-runner", "portable",
                 "--beam-temp-root", f"s3://{bucket}/beam", "--beam-job-endpoint", f"localhost:{job_port}",
                 "--beam-worker-pool", f"localhost:{pool_port}",
                 f"--beam-args=--s3_endpoint_url={endpoint} --direct_num_workers={workers} "
                 f"--sdk_worker_parallelism={workers}"],
                environment, os.path.join(work, "portable.json"))
            report["portable"]["container_peak_mb"] = {role: _peak_mb(name) for role, name in names.items()}
        finally:
            for name in names.values():
                _docker("rm", "-f", name)
    return report


def markdown(report):
    lines = [f"{report['rows']:,} demo rows from SeaweedFS (`s3://`); portable: {report['workers']} SDK workers in "
             "one worker-pool container, the job service in another", "",
             "| stage | direct s | direct peak MB | portable s | portable stage-process peak MB |",
             "|---|---:|---:|---:|---:|"]
    for stage in COMPARED:
        direct, portable = report["direct"]["stages"].get(stage, {}), report["portable"]["stages"].get(stage, {})
        lines.append(f"| {stage} | {direct.get('seconds', '-')} | {direct.get('peak_mb', '-')} | "
                     f"{portable.get('seconds', '-')} | {portable.get('peak_mb', '-')} |")
    peaks = report["portable"].get("container_peak_mb", {})
    lines += ["", f"Portable containers' peak memory over the run: worker pool {peaks.get('workers')} MB, "
              f"job service {peaks.get('jobs')} MB.",
              f"Direct run: {report['direct']['seconds']} s in all; {report['direct']['error'] or 'no error'}.",
              f"Portable run: {report['portable']['seconds']} s; {report['portable']['error'] or 'no error'}.", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "distributed"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="living-pipeline-bench-distributed-") as work:
        report = benchmark(args.rows, args.workers, work)
    with open(os.path.join(args.out, f"results-{args.rows}.json"), "w") as sink:
        json.dump(report, sink, indent=2)
    text = markdown(report)
    with open(os.path.join(args.out, f"results-{args.rows}.md"), "w") as sink:
        sink.write(text)
    print(text)


if __name__ == "__main__":
    main()
