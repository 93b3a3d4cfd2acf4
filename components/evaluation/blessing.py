"""The blessing: evaluate's decision, how it is made, and the artifact push reads.

The decision is made on the overall metric (accuracy for classification, R² for regression: both
higher is better, neither depends on the label's units):

- Value gate: the candidate's overall metric must reach the threshold (`--threshold`; by default 0.8
  accuracy or 0.1 R², that is, clearly better than always predicting the mean; 0 for no value gate).
- Change gate, when a model is serving: the candidate may be worse than it by at most `--tolerance`
  on the same eval data.
- Slice gate, only when asked (`--slice-threshold`): every slice with at least `--min-slice-examples`
  examples must reach that threshold; smaller slices are reported, never decisive.

A metric can be undefined: R² of a slice whose label is constant (one payment type never tips), any
metric that is NaN or infinite. It is kept as None with the reason beside it (`undefined_metrics`), and
no gate is decided on it: an undefined slice is not gated, and says so; a serving model whose metric is
undefined is no change gate. A candidate whose overall metric is undefined cannot be judged, so it is not
blessed (unless no gate was asked for: `--threshold 0` with no model serving), and the reason says why.

Every reason names the metric, the slice, the candidate's value, the serving model's and the threshold.
Written as TFX writes it (an empty BLESSED or NOT_BLESSED file) and as JSON with the reasons.
"""
import math
import os

from components import json_values
from components.errors import StageError

BLESSING_FILE = "blessing.json"
OVERALL = "Overall"
DEFAULT_MIN_SLICE_EXAMPLES = 30
# A threshold below 0 stands for the default of the problem type.
DEFAULT_THRESHOLD = -1.0
DEFAULT_THRESHOLDS = {"classification": 0.8, "regression": 0.1}
# The blessing metric of each problem type: (metric name, how people call it, lowest value, highest value).
BLESSING_METRICS = {"classification": ("sparse_categorical_accuracy", "accuracy", 0.0, 1.0),
                    "regression": ("r_squared", "R²", None, 1.0)}
_REGRESSION_ERRORS = ("mean_squared_error", "mean_absolute_error")


def value_threshold(threshold, problem_type):
    """The value gate's threshold: the given one, or the problem type's default when it is negative."""
    return DEFAULT_THRESHOLDS[problem_type] if threshold < 0 else threshold


def _range_text(low, high):
    return f"from {low:g} to {high:g}" if low is not None else f"at most {high:g}"


def check_thresholds(problem_type, threshold=DEFAULT_THRESHOLD, slice_threshold=0.0, source="", tolerance=0.0):
    """Raises StageError (one line) for a value threshold outside the range of the problem type's blessing
    metric, which could never pass (--threshold 10 for R²) or would pass every slice (--slice-threshold -1
    for accuracy), for a negative --threshold other than the default's stand-in (it would silently mean the
    default), and for a tolerance that is not a finite number; `source` says where the problem type came from
    (e.g. the module's flag). With no problem type (None: not known yet), only what is out of both metrics'
    range is refused (above 1)."""
    if not math.isfinite(tolerance):
        raise StageError(f"--tolerance {tolerance:g}: give a finite number, how much lower than the serving "
                         "model's the candidate's metric may be (e.g. 0.01; 0: no lower at all).")
    if threshold < 0 and threshold != DEFAULT_THRESHOLD:
        raise StageError(f"--threshold {threshold:g}: give a threshold from 0 to 1 (0 for no value gate), or leave "
                         f"it out for the default ({DEFAULT_THRESHOLDS['classification']:g} accuracy, "
                         f"{DEFAULT_THRESHOLDS['regression']:g} R²).")
    if problem_type is None:
        of = "the blessing metric (accuracy for classification, R² for regression)"
        metric, low, high, default = "at most 1", None, 1.0, "0.8 accuracy, 0.1 R²"
    else:
        name, label, low, high = BLESSING_METRICS[problem_type]
        of = f"the blessing metric of a {problem_type} module{f' ({source})' if source else ''}"
        metric, default = f"{label} ({name}), {_range_text(low, high)}", f"{DEFAULT_THRESHOLDS[problem_type]:g}"
    if not math.isfinite(threshold) or threshold > high:
        raise StageError(f"--threshold {threshold:g} can never pass: {of} is {metric}: give a threshold "
                         f"{_range_text(0, high)} (default {default}; 0 for no value gate).")
    if slice_threshold and (not math.isfinite(slice_threshold) or slice_threshold > high
                            or (low is not None and slice_threshold < low)):
        outcome = "could never pass" if not slice_threshold <= high else "would pass every slice"
        raise StageError(f"--slice-threshold {slice_threshold:g} {outcome}: {of} is {metric}: give a slice "
                         f"threshold {_range_text(low, high)} (0 for no slice gate).")


def _passes(value, threshold):
    return value is not None and math.isfinite(value) and value >= threshold


def _verdict(ok):
    return "passes" if ok else "FAILS"


def is_undefined(value):
    """True for a metric value that is no number: None (kept in place of one), NaN or infinity."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def undefined_reason(metric, values):
    """Why `metric` of one model on one slice is undefined, from the model's other metrics there `values`
    ({metric name: value}): the words after "undefined" in "r_squared undefined (its label is constant)"."""
    count = values.get("example_count")
    if not is_undefined(count) and count <= 0:
        return "no examples (or their weights sum to 0)"
    errors = [values[name] for name in _REGRESSION_ERRORS if name in values]
    if metric in _REGRESSION_ERRORS or any(is_undefined(value) for value in errors):
        return "the predictions or the labels are not all finite numbers"
    if metric == BLESSING_METRICS["regression"][0]:
        return "one example: its label cannot vary" if count == 1 else "its label is constant"
    return "not a finite number (NaN or infinity)"


def undefined_metrics(slices):
    """(the slices with every undefined metric value as None, [{slice, model, metric, reason}] of those values)
    from TFMA's per-slice metrics {slice: {model: {metric: value}}}."""
    clean, undefined = {}, []
    for slice_name, models in slices.items():
        clean[slice_name] = {}
        for model, values in models.items():
            clean[slice_name][model] = dict(values)
            for metric, value in values.items():
                if is_undefined(value):
                    clean[slice_name][model][metric] = None
                    undefined.append({"slice": slice_name, "model": model, "metric": metric,
                                      "reason": undefined_reason(metric, values)})
    return clean, undefined


def undefined_line(item):
    """One undefined metric as a line: "slice sex:female: r_squared of the candidate undefined (...)"."""
    slice_name = "the whole eval split" if item["slice"] == OVERALL else f"slice {item['slice']}"
    return f"{slice_name}: {item['metric']} of the {item['model']} undefined ({item['reason']})"


def slice_rows(slices, metric):
    """{slice: {examples, candidate, baseline, difference, gate, undefined}} of the blessing metric on every
    slice; `undefined` holds {model: why} for each model whose value is undefined (its value is None)."""
    rows = {}
    for name, models in slices.items():
        values, undefined = {}, {}
        for model in ("candidate", "baseline"):
            given = models.get(model, {})
            values[model] = None if is_undefined(given.get(metric)) else given.get(metric)
            if metric in given and values[model] is None:
                undefined[model] = undefined_reason(metric, given)
        candidate, baseline = values["candidate"], values["baseline"]
        count = models.get("candidate", {}).get("example_count")
        rows[name] = {"examples": 0 if is_undefined(count) else int(count),
                      "candidate": candidate, "baseline": baseline,
                      "difference": None if candidate is None or baseline is None else candidate - baseline,
                      "gate": "", "undefined": undefined}
    return rows


def decide(slices, metric, threshold, tolerance, baseline_name="the serving model", slice_threshold=0.0,
           min_slice_examples=DEFAULT_MIN_SLICE_EXAMPLES):
    """(blessed, reasons, slice rows) from the per-slice metrics {slice: {"candidate": {..}, "baseline": {..}}};
    the change gate applies when the slices have a baseline's metrics. An undefined value (None, NaN or
    infinity) decides no gate: see the module's docstring."""
    rows = slice_rows(slices, metric)
    overall = rows[OVERALL]
    candidate, examples = overall["candidate"], overall["examples"]
    where_overall = f"on the whole eval split ({examples} examples)"
    reasons, blessed = [], True
    baseline = overall["baseline"]
    has_baseline = baseline is not None or "baseline" in overall["undefined"]
    if candidate is None and (threshold or has_baseline):
        blessed = False
        gates = " nor ".join(([f"threshold >= {threshold:g}"] if threshold else [])
                             + ([baseline_name] if has_baseline else []))
        reasons.append(f"{metric} {where_overall}: candidate undefined ({overall['undefined']['candidate']}): "
                       f"it cannot be judged against {gates}: FAILS")
    else:
        if threshold:
            ok = _passes(candidate, threshold)
            blessed &= ok
            reasons.append(f"{metric} {where_overall}: candidate {candidate:.4f}, threshold >= {threshold:g}: "
                           f"{_verdict(ok)}")
        if baseline is not None:
            ok = _passes(candidate, baseline - tolerance)
            blessed &= ok
            reasons.append(f"{metric} {where_overall}: candidate {candidate:.4f}, {baseline_name} {baseline:.4f}, "
                           f"difference {candidate - baseline:+.4f}, at most {tolerance:g} worse "
                           f"allowed (--tolerance): {_verdict(ok)}")
        elif has_baseline:
            reasons.append(f"{metric} {where_overall}: candidate {candidate:.4f}, {baseline_name} undefined "
                           f"({overall['undefined']['baseline']}): no change gate"
                           + ("" if threshold else "; no value threshold (--threshold 0) either: blessed "
                                                   "without a gate"))
        elif threshold:
            reasons.append("no model is serving yet: the first model is blessed on the threshold alone")
        else:
            reasons.append("no value threshold (--threshold 0) and no model is serving yet: blessed without a gate"
                           + (f"; {metric} {where_overall} is undefined ({overall['undefined']['candidate']})"
                              if candidate is None else ""))
    overall["gate"] = "decides"
    undefined_slices = []
    for name, row in sorted(rows.items()):
        if name != OVERALL and "candidate" in row["undefined"]:
            row["gate"] = f"not gated: {metric} undefined ({row['undefined']['candidate']})"
            undefined_slices.append(f"slice {name}: {metric} undefined ({row['undefined']['candidate']}): not gated")
    if slice_threshold:
        small = []
        for name, row in sorted(rows.items()):
            if name == OVERALL or row["gate"]:
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
    reasons.extend(undefined_slices)
    return blessed, reasons, rows


def write_blessing(decision, blessing_dir):
    os.makedirs(blessing_dir, exist_ok=True)
    open(os.path.join(blessing_dir, "BLESSED" if decision["blessed"] else "NOT_BLESSED"), "w").close()
    json_values.write(os.path.join(blessing_dir, BLESSING_FILE), decision)


def read_blessing(blessing_dir):
    with open(os.path.join(blessing_dir, BLESSING_FILE)) as source:
        return json_values.loads_strict(source.read())
