"""The living-pipeline scenario on the demo data: spans arrive one by one, bad ones are refused.

1. Spans 1, 2 and 3 (2007, 2008, 2009) arrive one by one; each run validates (drift against the
   previous span, skew against a sample of serving requests), trains, evaluates against the model now
   serving, and publishes.
2. A corrupted span arrives: the run stops at validate, naming each feature and anomaly.
3. A span with shuffled labels arrives: the model trains but is not blessed; nothing is published.
4. Span 3 is run again: a whole new version or nothing, never a half-written one.

`run_scenario` takes the function that runs the pipeline (pipeline.py's, through the compiled spec)
and reports, step by step, what was decided and why.
"""
import os
import shutil

from components.penguins import curated_schema_path
from components.penguins.demo import (
    SPAN_YEARS,
    demo_pattern,
    write_corrupted_span,
    write_demo_span,
    write_serving_sample,
    write_shuffled_span,
)
from components.state.serving_root import published_versions

MODEL_NAME = "penguins"
MARKER = ".living-demo"


def prepare_directory(directory):
    """Creates the scenario's folder, or empties one a previous scenario made; refuses any other."""
    if os.path.isdir(directory) and os.listdir(directory):
        if not os.path.exists(os.path.join(directory, MARKER)):
            raise SystemExit(f"{directory} exists and was not made by demo-living: remove it or pass --dir.")
        shutil.rmtree(directory)
    os.makedirs(directory)
    open(os.path.join(directory, MARKER), "w").close()
    return {name: os.path.join(directory, name) for name in ("data", "serving", "statistics", "outputs")}


def _describe(step, outputs, stage_log, versions_before, versions_after):
    result = {"step": step, "succeeded": bool(outputs), "errors": stage_log.errors,
              "failed_stage": next((name for name, s in stage_log.stages.items() if s.get("status") == "FAILURE"),
                                   ""),
              "versions_before": versions_before, "versions_after": versions_after}
    lines = []
    if outputs:
        validation = outputs["anomalies"].metadata
        result.update(drift=validation["checks"]["drift"], skew=validation["checks"]["skew"])
        lines.append(f"  validate: {int(validation['anomaly_count'])} anomalies")
        lines.append(f"    drift: {validation['checks']['drift']}")
        lines.append(f"    skew: {validation['checks']['skew']}")
        blessing = outputs["blessing"].metadata
        result.update(blessed=blessing["blessed"], reasons=blessing["reasons"])
        lines.append(f"  evaluate: {'BLESSED' if blessing['blessed'] else 'NOT BLESSED'}")
        lines.extend(f"    - {reason}" for reason in blessing["reasons"])
        pushed = outputs["pushed_model"].metadata
        result["published_version"] = int(pushed["version"])
        lines.append(f"  push: published version {int(pushed['version'])}" if pushed["pushed"]
                     else "  push: nothing published")
    else:
        lines.append(f"  the run stopped at {result['failed_stage'] or 'an early stage'}:")
        lines.extend("    " + line.strip() for error in stage_log.errors for line in error.splitlines())
    lines.append(f"  serving root: versions {versions_after}"
                 + (" (unchanged)" if versions_after == versions_before else ""))
    return result, lines


def run_scenario(directory, run_pipeline, print_line=print):
    """Runs the scenario; `run_pipeline(flags)` runs the pipeline and returns (outputs, stage log)."""
    paths = prepare_directory(directory)
    common = ["--data", demo_pattern(paths["data"]), "--serving-root", paths["serving"],
              "--statistics-root", paths["statistics"], "--pipeline-root", paths["outputs"],
              "--schema", curated_schema_path(), "--model-name", MODEL_NAME,
              "--serving-data", write_serving_sample(paths["data"])]
    steps = [
        *[(f"span {span} ({year}) arrives", span, write_demo_span) for span, year in SPAN_YEARS.items()],
        ("a corrupted span 4 arrives (body mass as text, a new island, half the species missing)", 4,
         write_corrupted_span),
        ("span 5 arrives with its labels shuffled", 5, write_shuffled_span),
        ("span 3 is run again", 3, None),
    ]
    results, summary_lines = [], []
    for number, (title, span, writer) in enumerate(steps, 1):
        # A span that arrives is the newest and is taken by default; a span run again is named.
        if writer:
            writer(paths["data"], span)
        flags = common + ([] if writer else ["--span", str(span)])
        print_line(f"\n=== Step {number}: {title} ===")
        before = published_versions(paths["serving"], MODEL_NAME)
        outputs, stage_log = run_pipeline(flags)
        result, lines = _describe(title, outputs, stage_log, before,
                                  published_versions(paths["serving"], MODEL_NAME))
        results.append(result)
        summary_lines.append(f"Step {number}: {title}")
        summary_lines.extend(lines)
    print_line("\n=== What the living pipeline decided ===")
    for line in summary_lines:
        print_line(line)
    return results
