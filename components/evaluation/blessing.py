"""The blessing: evaluate's decision, how it is made, and the artifact push reads.

The decision is made on the overall metric (accuracy for classification, R² for regression: both
higher is better, neither depends on the label's units):

- Value gate: the candidate's overall metric must reach the threshold (`--threshold`; by default 0.8
  accuracy or 0.1 R², that is, clearly better than always predicting the mean; 0 for no value gate).
- Change gate, when a model is serving: the candidate may be worse than it by at most `--tolerance`
  on the same eval data.
- Slice gate, only when asked (`--slice-threshold`): every slice with at least `--min-slice-examples`
  examples must reach that threshold; smaller slices are reported, never decisive.

Every reason names the metric, the slice, the candidate's value, the serving model's and the threshold.
Written as TFX writes it (an empty BLESSED or NOT_BLESSED file) and as JSON with the reasons.
"""
import json
import math
import os

BLESSING_FILE = "blessing.json"
OVERALL = "Overall"
DEFAULT_MIN_SLICE_EXAMPLES = 30
# A threshold below 0 stands for the default of the problem type.
DEFAULT_THRESHOLD = -1.0
DEFAULT_THRESHOLDS = {"classification": 0.8, "regression": 0.1}


def value_threshold(threshold, problem_type):
    """The value gate's threshold: the given one, or the problem type's default when it is negative."""
    return DEFAULT_THRESHOLDS[problem_type] if threshold < 0 else threshold


def _passes(value, threshold):
    return value is not None and not math.isnan(value) and value >= threshold


def _verdict(ok):
    return "passes" if ok else "FAILS"


def slice_rows(slices, metric):
    """{slice: {examples, candidate, baseline, difference}} of the blessing metric on every slice."""
    rows = {}
    for name, models in slices.items():
        candidate = models.get("candidate", {}).get(metric)
        baseline = models.get("baseline", {}).get(metric)
        rows[name] = {"examples": int(models.get("candidate", {}).get("example_count", 0)),
                      "candidate": candidate, "baseline": baseline,
                      "difference": None if candidate is None or baseline is None else candidate - baseline,
                      "gate": ""}
    return rows


def decide(slices, metric, threshold, tolerance, baseline_name="the serving model", slice_threshold=0.0,
           min_slice_examples=DEFAULT_MIN_SLICE_EXAMPLES):
    """(blessed, reasons, slice rows) from the per-slice metrics {slice: {"candidate": {..}, "baseline": {..}}};
    the change gate applies when the slices have a baseline's metrics."""
    rows = slice_rows(slices, metric)
    overall = rows[OVERALL]
    candidate, examples = overall["candidate"], overall["examples"]
    where = f"on the whole eval split ({examples} examples)"
    reasons, blessed = [], True
    if threshold:
        ok = _passes(candidate, threshold)
        blessed &= ok
        reasons.append(f"{metric} {where}: candidate {candidate:.4f}, threshold >= {threshold:g}: {_verdict(ok)}")
    baseline = overall["baseline"]
    if baseline is not None:
        ok = _passes(candidate, baseline - tolerance)
        blessed &= ok
        reasons.append(f"{metric} {where}: candidate {candidate:.4f}, {baseline_name} {baseline:.4f}, "
                       f"difference {candidate - baseline:+.4f}, at most {tolerance:g} worse "
                       f"allowed (--tolerance): {_verdict(ok)}")
    elif threshold:
        reasons.append("no model is serving yet: the first model is blessed on the threshold alone")
    else:
        reasons.append("no value threshold (--threshold 0) and no model is serving yet: blessed without a gate")
    overall["gate"] = "decides"
    if slice_threshold:
        small = []
        for name, row in sorted(rows.items()):
            if name == OVERALL:
                continue
            if row["examples"] < min_slice_examples:
                row["gate"] = f"not gated: under {min_slice_examples} examples"
                small.append(f"{name} ({row['examples']})")
                continue
            ok = _passes(row["candidate"], slice_threshold)
            row["gate"] = "passes" if ok else "FAILS: decides"
            blessed &= ok
            if not ok:
                reasons.append(f"{metric} on slice {name} ({row['examples']} examples): candidate "
                               f"{row['candidate']:.4f}, slice threshold >= {slice_threshold:g}: FAILS")
        gated = [name for name, row in rows.items() if row["gate"] in ("passes", "FAILS: decides")]
        reasons.append(f"slice threshold >= {slice_threshold:g} (--slice-threshold) on {len(gated)} slices with at "
                       f"least {min_slice_examples} examples" + (f"; too small to gate: {', '.join(small)}"
                                                                   if small else ""))
    return blessed, reasons, rows


def write_blessing(decision, blessing_dir):
    os.makedirs(blessing_dir, exist_ok=True)
    open(os.path.join(blessing_dir, "BLESSED" if decision["blessed"] else "NOT_BLESSED"), "w").close()
    with open(os.path.join(blessing_dir, BLESSING_FILE), "w") as sink:
        json.dump(decision, sink, indent=2)


def read_blessing(blessing_dir):
    with open(os.path.join(blessing_dir, BLESSING_FILE)) as source:
        return json.load(source)
