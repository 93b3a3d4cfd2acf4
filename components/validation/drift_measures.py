"""Drift (and skew) per feature between two datasets' TFDV statistics: a measure, a threshold, a verdict, and why.

Only what the statistics stage keeps per span is read (no second pass over the data): the QUANTILES
histogram of a numeric feature and the rank histogram (or top values) of a categorical one.

- Numeric features: the **normalized Wasserstein distance** of the middle of the two distributions: the
  average distance between the baseline's and the current data's quantiles, over the quantile levels
  between the first and the last bucket of the quantiles histogram (2% to 98% with 50 buckets), in units
  of the baseline's robust standard deviation (the mean absolute deviation from the median over the same
  levels, scaled to equal the standard deviation on normal data). A location shift of 0.5 standard
  deviations measures 0.5; a handful of extreme values cannot move it, since the outermost buckets are
  left out; a column whose baseline is one value over that whole middle (a rain column 98% dry) is
  measured over all values instead, in units of its standard deviation.
- Categorical features (strings, or ints the caller marks categorical): the **L-infinity distance** of the
  category shares, the largest change of one category's share. A rare category cannot alarm on its own:
  its share moves by less than the threshold unless it stops being rare, which is drift (a new dominant
  value). Values under 1% of the values on both sides are pooled as "(rare values)", one category.
- Both measures come with their own test: how often two samples of these sizes from the same distribution
  (the baseline's quantiles, or the pooled category shares) differ this much, simulated (Brownian bridges
  for the quantiles, multinomial draws for the shares) with a fixed seed, so a verdict is reproducible.
  A feature drifts when its measure exceeds the threshold **and** that chance is under `significance`.
  Large spans are then judged by the threshold, small ones by the test; where even a shift of one standard
  deviation (or of half of all shares) could be chance, the verdict is "not judged: too few rows".

Thresholds and the significance level are calibrated on real tables (docs/drift.md, benchmarks/drift_calibration.py).
The same measures serve skew (a serving sample against the train split): the names say baseline and current.
"""
import dataclasses
import functools
import math
from statistics import NormalDist

import numpy as np
from tensorflow_metadata.proto.v0 import statistics_pb2

# The statistics stage asks TFDV for this many quantile buckets per numeric feature (TFDV's default is 10).
QUANTILES_BUCKETS = 50

NUMERIC_MEASURE = "normalized Wasserstein distance"
CATEGORICAL_MEASURE = "L-infinity distance"
NUMERIC = "numeric"
CATEGORICAL = "categorical"

# Calibrated in docs/drift.md: no drift on random halves of seven real tables, every injected shift caught.
DEFAULT_NUMERIC_THRESHOLD = 0.1
DEFAULT_CATEGORICAL_THRESHOLD = 0.1
DEFAULT_SIGNIFICANCE = 0.001

DRIFT = "drift"
OK = "ok"
NOT_JUDGED = "not judged"
IGNORED = "ignored"

# Values under 1% of the values on both sides are judged together, as one category: one of them cannot alarm,
# all of them together can (values that were rare taking a tenth of the rows is drift).
RARE_SHARE = 0.01
RARE_VALUES = "(rare values)"
# The least a pair of spans must be able to show, else the verdict is "too few rows to judge drift": a move
# of one standard deviation, or a change of half of all shares.
_LARGEST_UNSEEN_SHIFT = {NUMERIC: 1.0, CATEGORICAL: 0.5}
_SIMULATIONS = 10_000
_SIMULATION_CHUNK = 1_000
_SEED = 27
_GRID_CELLS = 200
_CHART_BINS = 10
_CHART_CATEGORIES = 20
# TFDV's name for the dataset of all examples beside its slices (tensorflow_data_validation.constants).
_OVERALL_SLICE = "All Examples"


@dataclasses.dataclass(frozen=True)
class Bin:
    """One bin of the numeric overlay chart: the baseline's and the current data's share of values in it."""
    low: float
    high: float
    baseline_share: float
    current_share: float


@dataclasses.dataclass(frozen=True)
class CategoryShare:
    """One bar pair of the categorical overlay chart."""
    value: str
    baseline_share: float
    current_share: float


@dataclasses.dataclass(frozen=True)
class FeatureVerdict:
    """One feature's drift (or skew) verdict and what explains it.

    verdict: DRIFT, OK, NOT_JUDGED or IGNORED; reason: one line a person reads (why this verdict).
    value: the measure's value (None where not measured; infinite where the baseline is one value and the
    current data has others); threshold: the value above which a significant change is drift.
    p_value: the chance that two samples of these sizes from one distribution differ at least this much;
    smallest_significant: the value under which a change could be chance at these sizes.
    baseline_count, current_count: the values each side holds (missing values left out).
    bins (numeric) or categories (categorical): both distributions, for an overlay chart.
    """
    feature: str
    kind: str
    verdict: str
    reason: str
    measure: str = ""
    value: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    smallest_significant: float | None = None
    baseline_count: int = 0
    current_count: int = 0
    bins: tuple[Bin, ...] = ()
    categories: tuple[CategoryShare, ...] = ()

    @property
    def drifted(self):
        return self.verdict == DRIFT

    def to_json(self):
        """A JSON-ready dict (infinite or undefined numbers as None; `reason` says why)."""
        from components.json_values import finite

        return finite(dataclasses.asdict(self))


def judge_drift(baseline, current, *, default_threshold=None, column_thresholds=None, ignored=(), categorical=None,
                significance=DEFAULT_SIGNIFICANCE):
    """Every feature of either dataset judged, sorted by name -> list of FeatureVerdict.

    baseline, current: DatasetFeatureStatistics (or a DatasetFeatureStatisticsList: its overall dataset).
    default_threshold: one threshold for both measures; None takes the calibrated ones
    (DEFAULT_NUMERIC_THRESHOLD, DEFAULT_CATEGORICAL_THRESHOLD). column_thresholds: {feature: threshold},
    overriding it. ignored: features reported as IGNORED, not measured. categorical(name) -> bool marks
    int features categorical (string features always are). significance: the chance under which a change is
    not put down to sampling.
    """
    baseline, current = _dataset(baseline), _dataset(current)
    baseline_features, current_features = _features_by_name(baseline), _features_by_name(current)
    names = sorted(set(baseline_features) | set(current_features))
    column_thresholds = dict(column_thresholds or {})
    _check_columns(names, column_thresholds, ignored)
    for name, threshold in [("the default", default_threshold), *column_thresholds.items()]:
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0 < threshold < math.inf):
            raise ValueError(f"Drift threshold for {name}: {threshold!r} is not a positive number.")
    if not 0 < significance < 1:
        raise ValueError(f"significance {significance!r}: give a probability between 0 and 1.")
    verdicts = []
    for name in names:
        if name in ignored:
            feature = baseline_features[name] if name in baseline_features else current_features[name]
            verdicts.append(FeatureVerdict(name, _kind(feature, name, categorical), IGNORED, "ignored, as asked"))
            continue
        verdicts.append(judge_feature(name, baseline_features.get(name), current_features.get(name),
                                      threshold=column_thresholds.get(name, default_threshold),
                                      categorical=categorical, significance=significance))
    return verdicts


def judge_feature(name, baseline_feature, current_feature, *, threshold=None, categorical=None,
                  significance=DEFAULT_SIGNIFICANCE):
    """One feature's FeatureVerdict from its two FeatureNameStatistics (either may be None: absent)."""
    kind = _kind(baseline_feature if baseline_feature is not None else current_feature, name, categorical)
    for feature, side in ((baseline_feature, "baseline"), (current_feature, "current data")):
        if feature is None:
            return FeatureVerdict(name, kind, NOT_JUDGED, f"not in the {side}")
    for feature, side in ((baseline_feature, "baseline"), (current_feature, "current data")):
        if not (feature.HasField("num_stats") or feature.HasField("string_stats")):
            return FeatureVerdict(name, kind, NOT_JUDGED, f"no numeric or category statistics in the {side} "
                                                          f"(bytes or nested values)")
    kinds = {_kind(baseline_feature, name, categorical), _kind(current_feature, name, categorical)}
    if len(kinds) > 1:
        return FeatureVerdict(name, kind, NOT_JUDGED, "numeric on one side and text on the other: see the schema "
                                                      "anomalies")
    if kind == CATEGORICAL:
        return _judge_categorical(name, baseline_feature, current_feature, threshold, significance)
    return _judge_numeric(name, baseline_feature, current_feature, threshold, significance)


def _dataset(statistics):
    if isinstance(statistics, statistics_pb2.DatasetFeatureStatisticsList):
        if len(statistics.datasets) == 1:
            return statistics.datasets[0]
        overall = [d for d in statistics.datasets if d.name == _OVERALL_SLICE]
        if len(overall) != 1:
            raise ValueError(f"Statistics with {len(statistics.datasets)} datasets and no overall one: give one "
                             f"DatasetFeatureStatistics.")
        return overall[0]
    return statistics


def _feature_name(feature):
    return ".".join(feature.path.step) or feature.name


def _features_by_name(dataset):
    return {_feature_name(feature): feature for feature in dataset.features}


def _check_columns(names, column_thresholds, ignored):
    if isinstance(ignored, str):
        raise ValueError(f"ignored={ignored!r}: give a list of feature names.")
    unknown = sorted((set(column_thresholds) | set(ignored)) - set(names))
    if unknown:
        raise ValueError(f"No feature {', '.join(map(repr, unknown))} in either dataset's statistics "
                         f"(features: {', '.join(names)}).")


def _kind(feature, name, categorical):
    if feature.HasField("string_stats"):
        return CATEGORICAL
    if categorical is not None and categorical(name):
        return CATEGORICAL
    return NUMERIC


def _number(value):
    """A short human reading of a value: 3 significant digits, thousands separated."""
    if value is None or not math.isfinite(value):
        return str(value)
    if abs(value) >= 1_000_000:
        return f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:.0f}"  # a year reads 2013, not 2,013
    return f"{value:.3g}"


def _sizes(baseline_count, current_count):
    return f"{baseline_count:,} and {current_count:,} values"


def _p(p_value):
    return f"p={p_value:.2g}" if p_value >= 1 / _SIMULATIONS else f"p<{1 / _SIMULATIONS:g}"


_CHANGE_WORDS = {NUMERIC: ("a move", " standard deviations"), CATEGORICAL: ("a share change", "")}


def _verdict(name, kind, measure, value, threshold, p_value, smallest_significant, significance, counts, moved,
             **chart):
    """The verdict from a measured value, its threshold and its chance, with the line that explains it
    (`moved`: what changed, in words)."""
    common = dict(measure=measure, value=value, threshold=threshold, p_value=p_value,
                  smallest_significant=smallest_significant, baseline_count=counts[0], current_count=counts[1],
                  **chart)
    sizes = _sizes(*counts)
    change, unit = _CHANGE_WORDS[kind]
    if value > threshold and p_value < significance:
        return FeatureVerdict(name, kind, DRIFT, f"{moved} ({measure} {_number(value)} > {_number(threshold)}; "
                                                 f"{_p(p_value)} with {sizes})", **common)
    if smallest_significant > _LARGEST_UNSEEN_SHIFT[kind]:
        return FeatureVerdict(name, kind, NOT_JUDGED, f"too few rows to judge drift: with {sizes} only {change} "
                                                      f"over {_number(smallest_significant)}{unit} would show",
                              **common)
    if value > threshold:
        return FeatureVerdict(name, kind, OK, f"{moved}, over the threshold {_number(threshold)}, but with {sizes} "
                                              f"{change} under {_number(smallest_significant)}{unit} can be chance "
                                              f"({_p(p_value)})", **common)
    return FeatureVerdict(name, kind, OK, f"{moved}, under the threshold {_number(threshold)}", **common)


# Numeric features ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Distribution:
    """A numeric feature's distribution as TFDV's quantiles histogram gives it: the share of values at or
    below each of its bucket bounds, linear in between; a bound many values hold is a step."""
    values: np.ndarray  # the bucket bounds, non-decreasing (a bound repeats where values pile up on it)
    cumulative: np.ndarray  # the share of values up to each bound, non-decreasing from 0 to 1
    count: int
    buckets: int

    def quantile(self, levels):
        return np.interp(levels, self.cumulative, self.values)

    def _steps(self):
        """The distinct bounds, the share below each one and the share up to and including it."""
        distinct, first = np.unique(self.values, return_index=True)
        last = np.append(first[1:] - 1, len(self.values) - 1)
        return distinct, self.cumulative[first], self.cumulative[last]

    def cdf(self, points):
        """The share of values at or below each point."""
        distinct, below, up_to = self._steps()
        points = np.atleast_1d(np.asarray(points, dtype=float))
        index = np.searchsorted(distinct, points, side="right") - 1
        shares = np.empty(len(points))
        for position, (point, at) in enumerate(zip(points, index)):
            if at < 0:
                shares[position] = 0.0
            elif at == len(distinct) - 1 or point == distinct[at]:
                shares[position] = up_to[at]
            else:
                fraction = (point - distinct[at]) / (distinct[at + 1] - distinct[at])
                shares[position] = up_to[at] + fraction * (below[at + 1] - up_to[at])
        return shares

    def cdf_below(self, points):
        """The share of values strictly below each point."""
        distinct, below, _ = self._steps()
        points = np.atleast_1d(np.asarray(points, dtype=float))
        index = np.clip(np.searchsorted(distinct, points, side="left"), 0, len(distinct) - 1)
        return np.where(distinct[index] == points, below[index], self.cdf(points))


def _distribution(feature):
    """The feature's quantiles histogram as a _Distribution, or None when it holds no finite value."""
    stats = feature.num_stats
    histogram = next((h for h in stats.histograms if h.type == statistics_pb2.Histogram.QUANTILES), None)
    if histogram is None:
        return None
    buckets = [b for b in histogram.buckets
               if b.sample_count > 0 and math.isfinite(b.low_value) and math.isfinite(b.high_value)]
    total = sum(b.sample_count for b in buckets)
    if total <= 0:
        return None
    values, cumulative, running = [buckets[0].low_value], [0.0], 0.0
    for bucket in buckets:
        running += bucket.sample_count
        if bucket.low_value != values[-1]:
            values.append(bucket.low_value)
            cumulative.append(cumulative[-1])
        values.append(bucket.high_value)
        cumulative.append(running / total)
    return _Distribution(np.array(values), np.array(cumulative), int(round(total)), len(histogram.buckets))


@functools.lru_cache(maxsize=8)
def _grid(trim):
    """Cell edges and midpoints of the quantile levels from `trim` to 1 - `trim`, and the standard normal's
    mean absolute deviation over the midpoints (what makes the robust spread a standard deviation)."""
    edges = np.linspace(trim, 1 - trim, _GRID_CELLS + 1)
    middles = (edges[:-1] + edges[1:]) / 2
    normal = NormalDist()
    normal_deviation = float(np.mean(np.abs([normal.inv_cdf(level) for level in middles])))
    return edges, middles, normal_deviation


@functools.lru_cache(maxsize=8)
def _absolute_bridges(trim):
    """|B(u)| at the grid's midpoints for _SIMULATIONS Brownian bridges B (fixed seed): the difference of two
    samples' distribution functions from one distribution, per sqrt(n1 n2 / (n1 + n2)), at its quantile levels."""
    _, middles, _ = _grid(trim)
    rng = np.random.default_rng(_SEED)
    steps = np.diff(np.concatenate([[0.0], middles]))
    walk = np.cumsum(rng.standard_normal((_SIMULATIONS, len(middles))) * np.sqrt(steps), axis=1)
    at_one = walk[:, -1] + rng.standard_normal(_SIMULATIONS) * math.sqrt(1 - middles[-1])
    return np.abs(walk - np.outer(at_one, middles)).astype(np.float32)


def _numeric_bins(baseline, current):
    """The baseline's deciles as bins, each with both sides' shares, and bins for current values outside them."""
    edges = np.unique(baseline.quantile(np.linspace(0, 1, _CHART_BINS + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    bins = []
    below = float(current.cdf_below(edges[:1])[0])
    if below > 0:
        bins.append(Bin(float(current.values[0]), float(edges[0]), 0.0, below))
    for index, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        if index == 0:
            shares = [float(side.cdf(high) - side.cdf_below(low)) for side in (baseline, current)]
        else:
            shares = [float(side.cdf(high) - side.cdf(low)) for side in (baseline, current)]
        bins.append(Bin(float(low), float(high), *shares))
    above = float(1 - current.cdf(edges[-1:])[0])
    if above > 0:
        bins.append(Bin(float(edges[-1]), float(current.values[-1]), 0.0, above))
    return tuple(bins)


def _judge_numeric(name, baseline_feature, current_feature, threshold, significance):
    threshold = DEFAULT_NUMERIC_THRESHOLD if threshold is None else threshold
    baseline, current = _distribution(baseline_feature), _distribution(current_feature)
    for distribution, side in ((baseline, "baseline"), (current, "current data")):
        if distribution is None:
            return FeatureVerdict(name, NUMERIC, NOT_JUDGED, f"no values in the {side}", measure=NUMERIC_MEASURE,
                                  threshold=threshold)
    counts = (baseline.count, current.count)
    bins = _numeric_bins(baseline, current)
    trim = 1 / min(baseline.buckets, current.buckets)
    edges, middles, normal_deviation = _grid(trim)
    median = float(baseline.quantile(0.5))
    spread = float(np.mean(np.abs(baseline.quantile(middles) - median))) / normal_deviation
    if spread > 0:
        moved_by = "the middle values moved"
    else:
        # One value holds the whole middle of the baseline (a rain column mostly 0): measure over all values.
        trim, spread = 0.0, baseline_feature.num_stats.std_dev
        edges, middles, _ = _grid(trim)
        moved_by = f"the baseline is mostly {_number(median)}; all values moved"
    distance = float(np.mean(np.abs(baseline.quantile(middles) - current.quantile(middles))))
    if spread <= 0:
        if distance == 0:
            return FeatureVerdict(name, NUMERIC, OK, f"one value, {_number(median)}, on both sides",
                                  measure=NUMERIC_MEASURE, value=0.0, threshold=threshold, baseline_count=counts[0],
                                  current_count=counts[1], bins=bins)
        return FeatureVerdict(name, NUMERIC, DRIFT, f"the baseline holds one value, {_number(median)}; the current "
                                                    f"data has others (median {_number(float(current.quantile(0.5)))})",
                              measure=NUMERIC_MEASURE, value=math.inf, threshold=threshold, p_value=0.0,
                              baseline_count=counts[0], current_count=counts[1], bins=bins)
    value = distance / spread
    quantile_steps = np.diff(baseline.quantile(edges))
    effective_count = counts[0] * counts[1] / (counts[0] + counts[1])
    chance = _absolute_bridges(trim) @ quantile_steps.astype(np.float32)
    chance = chance / ((1 - 2 * trim) * spread * math.sqrt(effective_count))
    p_value = float((1 + np.count_nonzero(chance >= value)) / (len(chance) + 1))
    smallest_significant = float(np.quantile(chance, 1 - significance))
    return _verdict(name, NUMERIC, NUMERIC_MEASURE, value, threshold, p_value, smallest_significant, significance,
                    counts, f"{moved_by} by {_number(value)} standard deviations", bins=bins)


# Categorical features --------------------------------------------------------------------------------------------

def _listed_counts(feature):
    """({value: count} as the statistics list them, total values)."""
    stats = feature.string_stats
    if stats.rank_histogram.buckets:
        listed = {bucket.label: bucket.sample_count for bucket in stats.rank_histogram.buckets}
    else:
        listed = {top.value: top.frequency for top in stats.top_values}
    total = stats.common_stats.tot_num_values or stats.common_stats.num_non_missing
    return listed, max(int(total), int(round(sum(listed.values()))))


def _shares(baseline_feature, current_feature):
    """(categories, baseline counts, current counts): each value that holds RARE_SHARE of the values or more on
    either side, then the rest pooled as RARE_VALUES. A value one side's statistics do not list (TFDV lists the
    1,000 most frequent) is rarer there than every listed one, so it is pooled there."""
    (baseline, baseline_total), (current, current_total) = _listed_counts(baseline_feature), _listed_counts(
        current_feature)
    categories = sorted(value for value in set(baseline) | set(current)
                        if max(baseline.get(value, 0.0) / baseline_total,
                               current.get(value, 0.0) / current_total) >= RARE_SHARE)
    baseline_counts = np.array([baseline.get(value, 0.0) for value in categories])
    current_counts = np.array([current.get(value, 0.0) for value in categories])
    rare = (baseline_total - baseline_counts.sum(), current_total - current_counts.sum())
    if max(rare) > 0.5:
        categories.append(RARE_VALUES)
        baseline_counts = np.append(baseline_counts, max(rare[0], 0.0))
        current_counts = np.append(current_counts, max(rare[1], 0.0))
    return categories, baseline_counts, current_counts


def _category_chart(categories, baseline_shares, current_shares):
    """The largest categories (by either side's share), the rest summed into RARE_VALUES."""
    order = np.argsort(-np.maximum(baseline_shares, current_shares), kind="stable")
    shown = [index for index in order if categories[index] != RARE_VALUES][:_CHART_CATEGORIES]
    chart = [CategoryShare(str(categories[i]), float(baseline_shares[i]), float(current_shares[i])) for i in shown]
    rest = [i for i in range(len(categories)) if i not in set(shown)]
    if rest:
        chart.append(CategoryShare(RARE_VALUES, float(baseline_shares[rest].sum()), float(current_shares[rest].sum())))
    return tuple(chart)


def _judge_categorical(name, baseline_feature, current_feature, threshold, significance):
    threshold = DEFAULT_CATEGORICAL_THRESHOLD if threshold is None else threshold
    for feature, side in ((baseline_feature, "baseline"), (current_feature, "current data")):
        if not feature.HasField("string_stats"):
            return FeatureVerdict(name, CATEGORICAL, NOT_JUDGED, f"no category counts in the {side}'s statistics "
                                                                 f"(an int column counted as numbers)",
                                  measure=CATEGORICAL_MEASURE, threshold=threshold)
    categories, baseline_counts, current_counts = _shares(baseline_feature, current_feature)
    counts = (int(round(baseline_counts.sum())), int(round(current_counts.sum())))
    for count, side in zip(counts, ("baseline", "current data")):
        if count == 0:
            return FeatureVerdict(name, CATEGORICAL, NOT_JUDGED, f"no values in the {side}",
                                  measure=CATEGORICAL_MEASURE, threshold=threshold)
    baseline_shares, current_shares = baseline_counts / counts[0], current_counts / counts[1]
    changes = current_shares - baseline_shares
    largest = int(np.argmax(np.abs(changes)))
    value = float(abs(changes[largest]))
    pooled = (baseline_counts + current_counts) / (counts[0] + counts[1])
    rng = np.random.default_rng(_SEED)
    chance = np.concatenate([
        np.abs(rng.multinomial(counts[0], pooled, size=_SIMULATION_CHUNK) / counts[0]
               - rng.multinomial(counts[1], pooled, size=_SIMULATION_CHUNK) / counts[1]).max(axis=1)
        for _ in range(_SIMULATIONS // _SIMULATION_CHUNK)])
    p_value = float((1 + np.count_nonzero(chance >= value - 1e-12)) / (len(chance) + 1))
    smallest_significant = float(np.quantile(chance, 1 - significance))
    moved = (f"the share of {categories[largest]!r} went from {100 * baseline_shares[largest]:.1f}% to "
             f"{100 * current_shares[largest]:.1f}%")
    return _verdict(name, CATEGORICAL, CATEGORICAL_MEASURE, value, threshold, p_value, smallest_significant,
                    significance, counts, moved,
                    categories=_category_chart(categories, baseline_shares, current_shares))
