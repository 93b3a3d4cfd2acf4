"""The drift measures on real tables, as a user meets them: which columns drift, which do not, and the line that
says why (components/validation/drift_measures.py). Statistics come from TFDV with the statistics stage's
options, as the pipeline's do."""
import json

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from palmerpenguins import load_penguins

from components.json_values import dumps
from components.stage_logic.statistics import _stats_options
from components.validation.drift_measures import (
    CATEGORICAL_MEASURE,
    DRIFT,
    IGNORED,
    NOT_JUDGED,
    NUMERIC_MEASURE,
    OK,
    QUANTILES_BUCKETS,
    judge_drift,
)


def statistics(frame, options=None):
    return tfdv.generate_statistics_from_dataframe(frame.reset_index(drop=True), options or _stats_options(()))


def halves(frame, seed=0):
    order = np.random.default_rng(seed).permutation(len(frame))
    return frame.iloc[order[:len(frame) // 2]].copy(), frame.iloc[order[len(frame) // 2:]].copy()


def by_feature(verdicts):
    return {verdict.feature: verdict for verdict in verdicts}


def drifted(verdicts):
    return sorted(verdict.feature for verdict in verdicts if verdict.verdict == DRIFT)


@pytest.fixture(scope="module")
def penguins():
    return load_penguins()


@pytest.fixture(scope="module")
def penguin_statistics(penguins):
    baseline, current = halves(penguins)
    return baseline, current, statistics(baseline), statistics(current)


@pytest.fixture
def penguin_halves(penguin_statistics):
    """Random halves of the penguins table (copies a test may change) and their statistics."""
    baseline, current, baseline_statistics, current_statistics = penguin_statistics
    return baseline.copy(), current.copy(), baseline_statistics, current_statistics


@pytest.fixture(scope="module")
def diabetes():
    from sklearn.datasets import load_diabetes
    return load_diabetes(as_frame=True, scaled=False).frame


def test_the_statistics_stage_keeps_the_quantiles_the_measures_read(penguins):
    assert _stats_options(()).num_quantiles_histogram_buckets == QUANTILES_BUCKETS
    feature = next(f for f in statistics(penguins).datasets[0].features if f.path.step == ["body_mass_g"])
    quantiles = next(h for h in feature.num_stats.histograms if h.type == h.QUANTILES)
    assert len(quantiles.buckets) == QUANTILES_BUCKETS


def test_random_halves_of_a_real_table_do_not_drift(penguin_halves):
    verdicts = judge_drift(penguin_halves[2], penguin_halves[3])
    assert drifted(verdicts) == []
    assert {v.verdict for v in verdicts} == {OK}
    assert len(verdicts) == 8


def test_a_column_times_three_drifts_on_that_column_with_the_measure_named(penguin_halves):
    baseline, current, baseline_statistics, _ = penguin_halves
    current = current.assign(body_mass_g=current.body_mass_g * 3)
    verdicts = judge_drift(baseline_statistics, statistics(current))
    assert drifted(verdicts) == ["body_mass_g"]
    verdict = by_feature(verdicts)["body_mass_g"]
    assert verdict.measure == NUMERIC_MEASURE and verdict.value > 1 and verdict.threshold == 0.1
    assert NUMERIC_MEASURE in verdict.reason and "standard deviations" in verdict.reason


def test_a_half_standard_deviation_shift_drifts_on_a_table_of_hundreds_of_rows(diabetes):
    baseline, current = halves(diabetes)
    current["bmi"] += 0.5 * diabetes.bmi.std()
    verdict = by_feature(judge_drift(statistics(baseline), statistics(current)))["bmi"]
    assert verdict.verdict == DRIFT
    assert 0.35 < verdict.value < 0.65, "a location shift measures about its size in standard deviations"


def test_a_handful_of_extreme_values_does_not_move_the_measure():
    """The issue's case: one 1,710-mile trip stretches an equal-width histogram; here, a few wind speeds of
    1,048 mph (the weather table holds one) added to half of a real table."""
    from benchmarks.drift_calibration import load_tables

    weather = load_tables(["weather"])["weather"].frame[["origin", "wind_speed", "precip", "temp"]]
    baseline, current = halves(weather)
    current = pd.concat([current, current.head(5).assign(wind_speed=1048.36, precip=1.21)])
    verdicts = judge_drift(statistics(baseline), statistics(current))
    assert drifted(verdicts) == []
    assert by_feature(verdicts)["wind_speed"].value < 0.05


def test_twenty_percent_of_one_extreme_value_drifts(penguin_halves):
    baseline, current, baseline_statistics, _ = penguin_halves
    chosen = current.flipper_length_mm.dropna().sample(frac=0.2, random_state=1).index
    current.loc[chosen, "flipper_length_mm"] = 1000.0
    assert drifted(judge_drift(baseline_statistics, statistics(current))) == ["flipper_length_mm"]


def test_small_spans_are_not_judged_unless_the_change_is_beyond_chance(penguins):
    baseline, current = (part.iloc[:6].copy() for part in halves(penguins))
    current["bill_depth_mm"] += 0.5 * penguins.bill_depth_mm.std()
    current["body_mass_g"] *= 1000
    verdicts = by_feature(judge_drift(statistics(baseline), statistics(current)))
    assert verdicts["bill_depth_mm"].verdict == NOT_JUDGED
    assert verdicts["bill_depth_mm"].reason.startswith("too few rows to judge drift: with 6 and 6 values only a move "
                                                       "over ")
    assert verdicts["bill_depth_mm"].reason.endswith(" standard deviations would show")
    assert verdicts["body_mass_g"].verdict == DRIFT


def test_a_new_dominant_category_drifts_and_names_the_value(penguin_halves):
    baseline, current, baseline_statistics, _ = penguin_halves
    current.loc[current.sample(frac=0.5, random_state=2).index, "island"] = "Anvers"
    verdict = by_feature(judge_drift(baseline_statistics, statistics(current)))["island"]
    assert verdict.verdict == DRIFT and verdict.measure == CATEGORICAL_MEASURE
    assert "the share of 'Anvers' went from 0.0% to 50.0%" in verdict.reason
    assert ("Anvers", 0.0, 0.5) in [(c.value, c.baseline_share, round(c.current_share, 3)) for c in verdict.categories]


def test_rare_values_alarm_only_together(penguin_halves):
    """Values under 1% of rows on both sides are one category, "(rare values)": ten new islands of one penguin
    each (5% of rows) pass; a hundred (35%) are drift, named as rare values."""
    baseline, current, baseline_statistics, _ = penguin_halves

    def with_islets(count):
        islets = current.sample(count, replace=True, random_state=4).assign(island=[f"islet {i}" for i in range(count)])
        return by_feature(judge_drift(baseline_statistics, statistics(pd.concat([current, islets]))))["island"]

    few = with_islets(10)
    assert few.verdict == OK and few.value < 0.1
    many = with_islets(100)
    assert many.verdict == DRIFT
    assert "the share of '(rare values)' went from 0.0% to 36.8%" in many.reason


def test_a_category_share_up_by_fifteen_points_drifts_on_a_large_table():
    from benchmarks.drift_calibration import load_tables

    flights = load_tables(["flights"])["flights"].frame[["carrier", "origin", "distance"]]
    baseline, current = halves(flights)
    others = current.index[current.carrier != "UA"]
    share = (baseline.carrier == "UA").mean()
    needed = int((share + 0.15) * len(current)) - int((current.carrier == "UA").sum())
    current.loc[np.random.default_rng(3).choice(others, needed, replace=False), "carrier"] = "UA"
    verdicts = judge_drift(statistics(baseline), statistics(current))
    assert drifted(verdicts) == ["carrier"]
    assert "the share of 'UA' went from" in by_feature(verdicts)["carrier"].reason


def test_ignored_columns_and_per_column_thresholds(diabetes):
    baseline, current = halves(diabetes)
    current["age"] += 0.5 * diabetes.age.std()
    current["bp"] += 0.5 * diabetes.bp.std()
    verdicts = by_feature(judge_drift(statistics(baseline), statistics(current), ignored=["age"],
                                      column_thresholds={"bp": 0.9}))
    assert verdicts["age"].verdict == IGNORED and verdicts["age"].value is None
    assert verdicts["bp"].verdict == OK and verdicts["bp"].threshold == 0.9
    assert "under the threshold 0.9" in verdicts["bp"].reason
    assert [name for name, v in verdicts.items() if v.verdict == DRIFT] == []
    assert drifted(judge_drift(statistics(baseline), statistics(current))) == ["age", "bp"]


def test_a_default_threshold_applies_to_both_kinds(penguin_halves):
    verdicts = by_feature(judge_drift(penguin_halves[2], penguin_halves[3], default_threshold=0.3))
    assert {v.threshold for v in verdicts.values()} == {0.3}


@pytest.mark.parametrize("options, message", [
    (dict(ignored=["yeer"]), "No feature 'yeer' in either dataset's statistics"),
    (dict(column_thresholds={"mass": 0.2}), "No feature 'mass'"),
    (dict(column_thresholds={"year": -1}), "Drift threshold for year: -1 is not a positive number"),
    (dict(default_threshold=float("nan")), "Drift threshold for the default: nan"),
    (dict(ignored="year"), "give a list of feature names"),
])
def test_a_wrong_column_or_threshold_is_named(penguin_halves, options, message):
    with pytest.raises(ValueError, match=message):
        judge_drift(penguin_halves[2], penguin_halves[3], **options)


def test_one_value_columns(penguins):
    baseline = penguins.assign(constant=2013, changed=2013)
    current = penguins.assign(constant=2013, changed=2014)
    verdicts = by_feature(judge_drift(statistics(baseline), statistics(current)))
    assert verdicts["constant"].verdict == OK
    assert verdicts["changed"].verdict == DRIFT and verdicts["changed"].value == float("inf")
    assert "the baseline holds one value, 2013" in verdicts["changed"].reason
    assert json.loads(dumps(verdicts["changed"].to_json()))["value"] is None


def test_a_mostly_zero_column_is_measured_over_all_its_values():
    from benchmarks.drift_calibration import load_tables

    weather = load_tables(["weather"])["weather"].frame[["precip"]]
    weather = weather.assign(precip=weather.precip.where(weather.precip > 0.1, 0.0))  # 98.8% dry
    baseline, current = halves(weather)
    assert drifted(judge_drift(statistics(baseline), statistics(current))) == []
    verdict = by_feature(judge_drift(statistics(baseline), statistics(current.assign(precip=current.precip * 3))))
    assert verdict["precip"].verdict == DRIFT
    assert "the baseline is mostly 0; all values moved" in verdict["precip"].reason


def test_features_on_one_side_only_and_ints_marked_categorical(penguin_halves):
    baseline, current, baseline_statistics, _ = penguin_halves
    verdicts = by_feature(judge_drift(baseline_statistics, statistics(current.drop(columns=["sex"])),
                                      categorical=lambda name: name == "year"))
    assert (verdicts["sex"].verdict, verdicts["sex"].reason) == (NOT_JUDGED, "not in the current data")
    assert verdicts["year"].verdict == NOT_JUDGED
    assert "no category counts in the baseline's statistics" in verdicts["year"].reason


def test_statistics_from_tfdvs_default_ten_buckets_are_still_judged(penguin_halves):
    """Spans kept before the stage asked for more quantiles hold TFDV's 10: the measure uses what is there."""
    baseline, current, _, _ = penguin_halves
    old = statistics(baseline, tfdv.StatsOptions())
    assert drifted(judge_drift(old, statistics(current))) == []
    assert drifted(judge_drift(old, statistics(current.assign(bill_length_mm=current.bill_length_mm * 3)))) == [
        "bill_length_mm"]


def test_the_chart_data_holds_both_distributions(penguin_halves):
    verdicts = by_feature(judge_drift(penguin_halves[2], penguin_halves[3]))
    bins = verdicts["body_mass_g"].bins
    assert sum(b.baseline_share for b in bins) == pytest.approx(1)
    assert sum(b.current_share for b in bins) == pytest.approx(1)
    assert all(b.low <= b.high for b in bins) and [b.low for b in bins] == sorted(b.low for b in bins)
    species = verdicts["species"].categories
    assert {c.value for c in species} == {"Adelie", "Gentoo", "Chinstrap"}
    assert sum(c.current_share for c in species) == pytest.approx(1)
    record = json.loads(dumps(verdicts["body_mass_g"].to_json()))
    assert set(record) >= {"feature", "verdict", "reason", "measure", "value", "threshold", "p_value", "bins"}


def test_verdicts_are_reproducible(penguin_halves):
    first = [v.to_json() for v in judge_drift(penguin_halves[2], penguin_halves[3])]
    assert first == [v.to_json() for v in judge_drift(penguin_halves[2], penguin_halves[3])]


def test_statistics_with_slices_are_judged_on_all_their_examples(penguin_halves):
    """The stage's statistics hold one dataset per slice beside the overall one (TFDV's "All Examples");
    drift reads the overall one."""
    baseline, current, baseline_statistics, current_statistics = penguin_halves
    with_slices = type(baseline_statistics)()
    with_slices.datasets.add().CopyFrom(statistics(baseline[baseline.island == "Dream"]).datasets[0])
    with_slices.datasets[0].name = "island_Dream"
    with_slices.datasets.add().CopyFrom(baseline_statistics.datasets[0])
    with_slices.datasets[1].name = "All Examples"
    assert [v.to_json() for v in judge_drift(with_slices, current_statistics)] == [
        v.to_json() for v in judge_drift(baseline_statistics, current_statistics)]
    del with_slices.datasets[1]
    with_slices.datasets.add().CopyFrom(with_slices.datasets[0])
    with pytest.raises(ValueError, match="2 datasets and no overall one"):
        judge_drift(with_slices, current_statistics)


def test_ints_a_schema_marks_categorical_are_judged_by_their_shares(penguin_halves):
    """Given a schema with int_domain.is_categorical, TFDV counts an int column's values as categories."""
    baseline, current, _, _ = penguin_halves
    schema = tfdv.infer_schema(statistics(baseline))
    tfdv.get_feature(schema, "year").int_domain.is_categorical = True
    options = _stats_options(())
    options.schema = schema
    current = current.assign(year=2010)
    verdict = by_feature(judge_drift(statistics(baseline, options), statistics(current, options),
                                     categorical=lambda name: name == "year"))["year"]
    assert verdict.verdict == DRIFT and verdict.measure == CATEGORICAL_MEASURE
    assert "the share of '2010' went from 0.0% to 100.0%" in verdict.reason
