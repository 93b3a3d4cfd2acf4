"""The benchmark runner: the whole local pipeline on synthetic data from 10 thousand to 1 million rows.

    python -m benchmarks.run [--sizes 10000,100000,1000000] [--variants demo,wide] [--out DIR] [--beam-args=ARGS]

For each variant and size it generates the data (deterministic, `generate.py`), runs
`pipeline.py run` on it exactly as a user would (the compiled spec through kfp.local), and records
each stage's wall seconds, rows per second and peak memory, and the whole run's seconds. Floors are
measured in the same run (`floors.py`), and each stage's time is reported as a ratio to its floor.
Results go to `results.json`, a plot `results.png` and a Markdown table `results.md` under `--out`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.floors import measure_floors
from benchmarks.generate import generate
from components import stage_table

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODULES = {"demo": "components.penguins.module", "wide": os.path.join(HERE, "wide_module.py")}
STAGES = [stage.name for stage in stage_table.STAGES]
TARGETS = {"total_seconds_at_1m": 300, "peak_mb": 2048, "fixed_cost_ratio": 1.5}


def run_pipeline(variant, rows, work, beam_args):
    data = os.path.join(work, f"data-{variant}-{rows}")
    generate(variant, rows, 0, data)
    summary = os.path.join(work, f"summary-{variant}-{rows}.json")
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "pipeline.py"), "run", "--data", os.path.join(data, "*.csv"),
         "--module", MODULES[variant], "--schema", "", "--statistics-root", "", "--warn-on-anomalies",
         "--serving-root", os.path.join(work, f"serving-{variant}-{rows}"),
         "--pipeline-root", os.path.join(work, f"outputs-{variant}-{rows}"), "--summary-json", summary,
         f"--beam-args={beam_args}"],  # one word: Beam arguments start with a dash
        capture_output=True, text=True)
    seconds = time.monotonic() - started
    stages = stage_summary(summary)
    failure = "" if process.returncode == 0 else (process.stdout + process.stderr)[-2000:]
    return data, seconds, stages, failure


def stage_summary(path):
    """{stage: its seconds, peak memory, ...} from a run's --summary-json file; {} when the run wrote none."""
    if not os.path.exists(path):
        return {}
    with open(path) as source:
        return json.load(source)["stages"]


def write_outputs(report, out):
    with open(os.path.join(out, "results.json"), "w") as sink:
        json.dump(report, sink, indent=2)
    with open(os.path.join(out, "results.md"), "w") as sink:
        sink.write(markdown(report))
    plot(report, os.path.join(out, "results.png"))


def benchmark(sizes, variants, work, beam_args, out):
    """Runs every variant and size; rewrites the outputs after each, so a long run keeps what it has."""
    floors = {}
    results = []
    for variant in variants:
        for rows in sizes:
            print(f"{variant}, {rows:,} rows ...", flush=True)
            data, seconds, stages, failure = run_pipeline(variant, rows, work, beam_args)
            floor = measure_floors(os.path.join(data, "*.csv"), os.path.join(work, "floor"))
            floors.setdefault("import_seconds", floor["import_seconds"])
            entry = {"variant": variant, "rows": rows, "total_seconds": seconds, "failure": failure,
                     "ingest_floor_seconds": floor["ingest_seconds"],
                     "import_floor_seconds": floor["import_seconds"], "stages": {}}
            for name in STAGES:
                stage = stages.get(name, {})
                stage_floor = floor["ingest_seconds"] if name == "ingest" else floor["import_seconds"]
                entry["stages"][name] = {
                    "seconds": stage.get("seconds"),
                    "rows_per_second": rows / stage["seconds"] if stage.get("seconds") else None,
                    "peak_mb": stage.get("peak_mb"),
                    "floor_ratio": stage["seconds"] / stage_floor if stage.get("seconds") else None,
                }
            results.append(entry)
            if failure:
                print(f"  FAILED after {seconds:.1f} s:\n{failure}", flush=True)
            print(f"  {seconds:.1f} s; " + ", ".join(f"{n} {s['seconds']:.1f} s" for n, s in entry["stages"].items()
                                                    if s["seconds"] is not None), flush=True)
            report = {"machine": {"cores": os.cpu_count()}, "beam_args": beam_args, "targets": TARGETS,
                      "import_floor_seconds": floors.get("import_seconds"), "results": results}
            write_outputs(report, out)
    return report


def markdown(report):
    lines = [f"Import floor (start Python, import TensorFlow and TFDV): {report['import_floor_seconds']:.1f} s.",
             "", "| variant | rows | stage | seconds | rows/s | peak MB | ratio to floor |",
             "|---|---|---|---|---|---|---|"]
    for entry in report["results"]:
        for name, stage in entry["stages"].items():
            if stage["seconds"] is None:
                continue
            lines.append(f"| {entry['variant']} | {entry['rows']:,} | {name} | {stage['seconds']:.1f} | "
                         f"{stage['rows_per_second']:,.0f} | {stage['peak_mb'] or 0:,.0f} | "
                         f"{stage['floor_ratio']:.2f} |")
        outcome = " (failed)" if entry["failure"] else ""
        lines.append(f"| {entry['variant']} | {entry['rows']:,} | **whole run{outcome}** | "
                     f"**{entry['total_seconds']:.1f}** "
                     f"| {entry['rows'] / entry['total_seconds']:,.0f} | | ingest floor "
                     f"{entry['ingest_floor_seconds']:.1f} s |")
    return "\n".join(lines) + "\n"


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = sorted({entry["variant"] for entry in report["results"]})
    figure, axes = plt.subplots(1, len(variants), figsize=(6 * len(variants), 4.5), squeeze=False)
    for axis, variant in zip(axes[0], variants):
        entries = [e for e in report["results"] if e["variant"] == variant]
        sizes = [e["rows"] for e in entries]
        for name in STAGES:
            axis.plot(sizes, [e["stages"][name]["seconds"] or float("nan") for e in entries], marker="o", label=name)
        axis.plot(sizes, [e["total_seconds"] for e in entries], marker="s", color="black", label="whole run")
        axis.axhline(report["import_floor_seconds"], color="grey", linestyle="--", label="import floor")
        axis.set(xscale="log", yscale="log", xlabel="rows", ylabel="seconds", title=f"{variant} variant")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--variants", default="demo,wide")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--beam-args", default="", help="Beam arguments for every Beam stage (default: local)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="living-bench-") as work:
        benchmark([int(size) for size in args.sizes.split(",")], args.variants.split(","), work, args.beam_args,
                  args.out)
    print(f"Wrote {args.out}/results.json, results.md and results.png")


if __name__ == "__main__":
    main()
