"""Side by side with TFX: `pipeline.py run` against TFX 1.16's LocalDagRunner on the same machine.

    python -m benchmarks.side_by_side [--rows 0] [--rounds 5] [--references example,ours]

Each round runs our pipeline and each TFX reference once, from fresh output folders, in alternating
order (ABBA), so a slow moment of a noisy machine does not fall on one side only. Each run is timed as a
whole process tree: wall seconds, CPU seconds (user + system of the run and every process it waited
for) and the peak resident memory of its largest process. The ratios are ours over TFX's: the ratio of
the medians, and the median of the per-round ratios.

TFX runs in its own virtual environment, made by `tfx/make_venv.sh` (about 3 GB, once). References:
- `example`: TFX's own penguin example (its Keras module, 100 steps, four numeric features), the
  reference recipe of the project's performance issues;
- `ours`: the same CSV files, module, steps, metrics, slices and blessing thresholds as our run
  (`tfx/demo_module.py`), so both do the same work.
`--rows 0` is the demo (the 344 Palmer penguins); `--rows N` generates N demo rows (`generate.py`) and
runs both sides on those files with an inferred schema.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.generate import generate

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_TFX_VENV = os.path.join(REPO, ".venv-tfx")
EXAMPLE_FEATURES = {"bill_length_mm": "culmen_length_mm", "bill_depth_mm": "culmen_depth_mm",
                    "flipper_length_mm": "flipper_length_mm", "body_mass_g": "body_mass_g"}
EXAMPLE_SPECIES = {"Adelie": 0, "Chinstrap": 1, "Gentoo": 2}


def measure(command, log_path):
    """Runs `command`; returns its wall seconds, CPU seconds, peak MB of its largest process, and status."""
    with open(log_path, "w") as log:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_mb": usage.ru_maxrss / 1024, "status": process.returncode, "log": log_path}


def demo_csv_folder(folder):
    """The demo's penguins CSV as TFX's CsvExampleGen reads it: NA cells empty (missing)."""
    import pandas as pd

    from components.stage_logic.ingest import demo_data_pattern

    os.makedirs(folder, exist_ok=True)
    pd.read_csv(demo_data_pattern()).to_csv(os.path.join(folder, "penguins.csv"), index=False)
    return folder


def example_csv_folder(folder):
    """TFX's penguin example data: four numeric features and the species as 0, 1, 2; complete rows."""
    import pandas as pd

    from components.stage_logic.ingest import demo_data_pattern

    os.makedirs(folder, exist_ok=True)
    table = pd.read_csv(demo_data_pattern()).rename(columns=EXAMPLE_FEATURES)
    table = table[["species", *EXAMPLE_FEATURES.values()]].dropna()
    table["species"] = table["species"].map(EXAMPLE_SPECIES)
    table.astype({name: float for name in EXAMPLE_FEATURES.values()}).to_csv(
        os.path.join(folder, "penguins_processed.csv"), index=False)
    return folder


def commands(rows, work, tfx_python, references):
    """{side: function(run folder) -> command} for our pipeline and each TFX reference."""
    if rows:
        data = os.path.join(work, "data")
        generate("demo", rows, 0, data)
        our_flags = ["--data", os.path.join(data, "*.csv"), "--schema", "", "--statistics-root", ""]
        our_data = example_data = data
    else:
        our_flags = []
        our_data = demo_csv_folder(os.path.join(work, "demo"))
        example_data = example_csv_folder(os.path.join(work, "example"))
    def ours(run):
        statistics_root = [] if rows else ["--statistics-root", os.path.join(run, "statistics")]
        return [sys.executable, os.path.join(REPO, "pipeline.py"), "run", *our_flags, *statistics_root,
                "--pipeline-root", os.path.join(run, "pipeline"), "--serving-root", os.path.join(run, "serving")]

    sides = {"ours": ours}
    tfx_pipeline = os.path.join(HERE, "tfx", "tfx_pipeline.py")
    for reference in references:
        data = example_data if reference == "example" else our_data
        steps = "100" if reference == "example" else "300"
        sides[f"tfx-{reference}"] = (
            lambda run, data=data, reference=reference, steps=steps:
            [tfx_python, tfx_pipeline, "--data", data, "--root", run, "--module", reference, "--train-steps", steps])
    return sides


def run_rounds(sides, rounds, work):
    """Alternating rounds; {side: [measurement, ...]}."""
    results = {side: [] for side in sides}
    names = list(sides)
    for index in range(rounds):
        order = names if index % 2 == 0 else names[::-1]
        for side in order:
            run = os.path.join(work, f"{side}-{index}")
            os.makedirs(run)
            measured = measure(sides[side](run), os.path.join(work, f"{side}-{index}.log"))
            results[side].append(measured)
            state = "ok" if measured["status"] == 0 else f"FAILED (exit {measured['status']}, {measured['log']})"
            print(f"  round {index + 1} {side:<12} {measured['wall_seconds']:6.1f} s wall "
                  f"{measured['cpu_seconds']:6.1f} s CPU {measured['peak_mb']:6.0f} MB  {state}", flush=True)
    return results


def ratios(results, reference):
    """Ours over `reference`: ratio of medians and median of per-round ratios, for wall and CPU."""
    ours, theirs = results["ours"], results[reference]
    summary = {}
    for figure in ("wall_seconds", "cpu_seconds", "peak_mb"):
        mine = [run[figure] for run in ours]
        other = [run[figure] for run in theirs]
        summary[figure] = {
            "ours_median": statistics.median(mine), "tfx_median": statistics.median(other),
            "ratio_of_medians": statistics.median(mine) / statistics.median(other),
            "median_of_ratios": statistics.median(a / b for a, b in zip(mine, other)),
        }
    return summary


def markdown(report):
    lines = [f"Rows: {report['rows'] or 'demo (344 penguins)'}; rounds: {report['rounds']}; "
             f"{report['machine']['cores']} cores; load before: {report['load_before']}", "",
             "| reference | figure | ours (median) | TFX (median) | ratio of medians | median of ratios |",
             "|---|---|---|---|---|---|"]
    for reference, summary in report["ratios"].items():
        for figure, values in summary.items():
            lines.append(f"| {reference} | {figure.replace('_', ' ')} | {values['ours_median']:.1f} | "
                         f"{values['tfx_median']:.1f} | {values['ratio_of_medians']:.2f} | "
                         f"{values['median_of_ratios']:.2f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=0, help="0: the demo; N: N generated demo rows")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--references", default="example,ours", help="comma-separated: example, ours")
    parser.add_argument("--tfx-venv", default=DEFAULT_TFX_VENV, help="made if missing (default: %(default)s)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--keep", action="store_true", help="keep the runs' folders and logs (printed)")
    args = parser.parse_args()
    subprocess.run([os.path.join(HERE, "tfx", "make_venv.sh"), args.tfx_venv], check=True, cwd=REPO)
    references = [name for name in args.references.split(",") if name]
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="living-side-by-side-")
    load_before = os.getloadavg()[0]
    sides = commands(args.rows, work, os.path.join(args.tfx_venv, "bin", "python"), references)
    results = run_rounds(sides, args.rounds, work)
    report = {"rows": args.rows, "rounds": args.rounds, "machine": {"cores": os.cpu_count()},
              "load_before": round(load_before, 2), "date": time.strftime("%Y-%m-%d"), "runs": results,
              "ratios": {f"tfx-{name}": ratios(results, f"tfx-{name}") for name in references}}
    name = f"side_by_side_{args.rows or 'demo'}"
    with open(os.path.join(args.out, f"{name}.json"), "w") as sink:
        json.dump(report, sink, indent=2)
    with open(os.path.join(args.out, f"{name}.md"), "w") as sink:
        sink.write(markdown(report))
    print(markdown(report))
    if args.keep:
        print(f"runs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
