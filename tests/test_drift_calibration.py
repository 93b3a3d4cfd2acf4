"""The drift calibration (benchmarks/drift_calibration.py): random halves of seven real tables raise no drift,
each injected shift is drift on its column and no other, docs/drift.md holds these very results, and the
calibration's statistics judge as the statistics stage's own (Beam) statistics do."""
import os

import pytest

from benchmarks.drift_calibration import (
    ALLOWED_FALSE_ALARMS,
    CATEGORICAL_SHIFTS,
    DOC_END,
    DOC_START,
    EXTREME,
    LOCATION,
    NEW_CATEGORY,
    SCALE,
    SHARE,
    SPLITS,
    calibrate,
    load_tables,
    markdown,
    random_halves,
    statistics,
)
from components.validation.drift_measures import DEFAULT_SIGNIFICANCE, DRIFT, OK, judge_drift
from helpers import REPO

# About a minute: in `make test`, not in `make test-fast`'s quick loop.
pytestmark = pytest.mark.slow

TABLES = ("iris", "wine", "breast_cancer", "diabetes", "penguins", "weather", "flights")


@pytest.fixture(scope="module")
def results():
    return {result.table.name: result for result in calibrate()}


def test_seven_real_tables_two_of_them_large_and_heavy_tailed(results):
    assert tuple(results) == TABLES
    for table, column in (("flights", "dep_delay"), ("flights", "arr_delay"), ("weather", "wind_speed"),
                          ("weather", "precip")):
        frame = results[table].table.frame
        assert len(frame) > 10_000
        assert frame[column].kurt() > 10, f"{column}: heavy-tailed (a normal column's excess kurtosis is 0)"


@pytest.mark.parametrize("table", TABLES)
def test_random_splits_raise_no_drift(results, table):
    result = results[table]
    judged = [check for check in result.random if check.verdict in (DRIFT, OK)]
    assert len({check.split for check in result.random}) == SPLITS
    assert len(judged) == len(result.random), "halves of hundreds of rows or more are all judged"
    alarms = [(check.split, check.feature, check.reason) for check in result.false_alarms()]
    assert len(alarms) <= ALLOWED_FALSE_ALARMS * len(judged), alarms


@pytest.mark.parametrize("shift", [SCALE, EXTREME, NEW_CATEGORY])
def test_large_shifts_are_caught_on_the_shifted_column_and_no_other(results, shift):
    checks = [(result, check) for result in results.values() for check in result.shifted if check.shift == shift]
    assert len(checks) >= 20
    assert [(c.table, c.feature, c.reason) for _, c in checks if c.verdict != DRIFT] == []
    assert [(c.table, c.split) for result, c in checks if result.split_alarms(c.split)] == []


@pytest.mark.parametrize("shift", [LOCATION, SHARE])
def test_moderate_shifts_are_caught_where_the_halves_can_show_them(results, shift):
    """+0.5 standard deviation is caught on halves of 170 rows or more, +15 points of a share on halves of 250
    or more; on smaller halves a miss says that a change this size can be chance there."""
    smallest_halves = 250 if shift in CATEGORICAL_SHIFTS else 170
    for result in results.values():
        checks = [check for check in result.shifted if check.shift == shift]
        if len(result.table.frame) // 2 >= smallest_halves:
            assert [(c.feature, c.reason) for c in checks if c.verdict != DRIFT] == [], result.table.name
            assert checks or shift == SHARE
        for check in checks:
            if check.verdict != DRIFT:
                assert check.verdict == OK and check.p_value >= DEFAULT_SIGNIFICANCE
                assert "can be chance" in check.reason
                assert not result.split_alarms(check.split)


def test_the_docs_hold_these_results(results):
    with open(os.path.join(REPO, "docs", "drift.md")) as source:
        document = source.read()
    table = document.split(DOC_START, 1)[1].split(DOC_END, 1)[0]
    assert table.strip() == markdown(list(results.values())).strip(), (
        "docs/drift.md is stale: python -m benchmarks.drift_calibration --write docs/drift.md")


def test_the_calibrations_statistics_judge_as_the_statistics_stage_does(tmp_path):
    """The calibration computes statistics with tfdv.generate_statistics_from_dataframe; the stage runs TFDV in
    Beam on ingested tf.Examples. On 13,000-row halves of a real table (where TFDV's quantiles are sketched,
    not exact) both give the same measures and verdicts."""
    from components.stage_logic.ingest import ingest_examples
    from components.stage_logic.statistics import generate_statistics, load_statistics

    frame = load_tables(["weather"])["weather"].frame[["origin", "temp", "wind_speed", "precip", "visib"]]
    baseline, current = random_halves(frame, 1)[0]
    current = current.assign(temp=current.temp + 0.5 * frame.temp.std())
    for split, rows in (("train", baseline), ("eval", current)):
        os.makedirs(tmp_path / "data" / split)
        rows.to_csv(tmp_path / "data" / split / "rows.csv", index=False)
    ingest_examples(str(tmp_path / "data" / "{SPLIT}" / "rows.csv"), str(tmp_path / "examples"))
    generate_statistics(str(tmp_path / "examples"), str(tmp_path / "statistics"))
    stage = judge_drift(load_statistics(str(tmp_path / "statistics"), "train"),
                        load_statistics(str(tmp_path / "statistics"), "eval"))
    calibration = judge_drift(statistics(baseline), statistics(current))
    assert [(v.feature, v.verdict) for v in stage] == [(v.feature, v.verdict) for v in calibration]
    assert [v.feature for v in stage if v.verdict == DRIFT] == ["temp"]
    for from_stage, from_calibration in zip(stage, calibration):
        assert from_stage.value == pytest.approx(from_calibration.value, rel=1e-4), from_stage.feature
        assert from_stage.p_value == pytest.approx(from_calibration.p_value, abs=1e-3), from_stage.feature
