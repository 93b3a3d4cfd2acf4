"""The stage reports as a person reads them, built from real statistics, blessings and schemas.

Statistics come from TFDV on the Palmer penguins rows (train: 2007 and 2008, eval: 2009), the blessing
from `components.evaluation.blessing.decide`, the schema from the curated penguin schema. Each test reads the page
(headings, table cells, chart series) and asserts what a reader sees there; the browser tests at the
end open pages in headless Chromium.
"""
import os
import re
from types import SimpleNamespace

import pandas as pd
import pytest

from components import reports
from components.evaluation.blessing import decide
from components.platform.run_report import write_run_report
from components.stage_logic.evaluate import evaluation_html
from components.stage_logic.ingest import demo_data_pattern
from components.stage_logic.statistics import statistics_html
from components.stage_logic.train import learning_curves_html
from components.stage_logic.validate import anomalies_markdown
from report_pages import read_page, table_with_header

SLICE_PREFIX = "island_"


@pytest.fixture(scope="module")
def penguins():
    return pd.read_csv(demo_data_pattern())


def _statistics(frame, slice_by_island=False):
    """TFDV statistics of `frame`; with slices, one data set per island beside the overall one, named as
    TFDV's feature-value slicer names them."""
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation import constants

    statistics = tfdv.generate_statistics_from_dataframe(frame.reset_index(drop=True))
    if slice_by_island:
        statistics.datasets[0].name = constants.DEFAULT_SLICE_KEY
        for island, rows in frame.groupby("island"):
            dataset = tfdv.generate_statistics_from_dataframe(rows.reset_index(drop=True)).datasets[0]
            dataset.name = f"{SLICE_PREFIX}{island}"
            statistics.datasets.append(dataset)
    return statistics


@pytest.fixture(scope="module")
def statistics_page(penguins):
    train = penguins[penguins.year < 2009]
    # Eval holds few Biscoe penguins, so its most frequent island (Dream) is not train's (Biscoe).
    later = penguins[penguins.year == 2009]
    evaluation = pd.concat([later[later.island != "Biscoe"], later[later.island == "Biscoe"].head(5)])
    # Given eval first, as a directory listing sorts them.
    html = statistics_html({"eval": _statistics(evaluation, True), "train": _statistics(train, True)})
    return html, read_page(html), train, evaluation


def _card(html, feature):
    """The HTML of one feature's card."""
    start = html.index(f'id="feature-{feature}"')
    end = html.find('<div class="feature"', start)
    return html[start:end if end > 0 else len(html)]


def test_numbers_print_as_a_person_writes_them():
    assert reports.number(2007) == "2007"
    assert reports.number(2007.0) == "2007"
    assert reports.number(1.2e-17) == "0"
    assert reports.number(-3e-9) == "0"
    assert reports.number(0.0015564) == "0.001556"
    assert reports.number(43.9219) == "43.92"
    assert reports.number(None) == "-"
    assert reports.fixed(-1e-9, 2) == "0.00"


def test_statistics_put_train_first_then_eval(statistics_page):
    _, page, train, evaluation = statistics_page
    summary = table_with_header(page, "split")
    assert summary[1:] == [["train", str(len(train)), "8"], ["eval", str(len(evaluation)), "8"]]
    for table in page.tables:
        header = table[0]["cells"]
        if "train" in header and "eval" in header:
            assert header.index("train") < header.index("eval")


def test_statistics_draw_every_split_in_one_histogram_on_a_shared_axis(statistics_page):
    html, page, _, _ = statistics_page
    histograms = [chart for chart in page.charts if chart["class"] == "histogram"]
    assert len(histograms) == 5, "bill length and depth, flipper length, body mass, year"
    for chart in histograms:
        assert chart["series"] == ["train", "eval"]
        assert chart["texts"][-2:] == ["train", "eval"], "a legend names both"
    body_mass = read_page(_card(html, "body_mass_g")).charts[0]
    ticks = [float(text) for text in body_mass["texts"] if re.fullmatch(r"\d+", text)]
    assert len(ticks) >= 3 and ticks == sorted(ticks), "an axis with round ticks, not only min and max"
    assert all(3000 <= tick <= 6000 for tick in ticks)


def test_statistics_show_years_as_years_and_means_like_medians(statistics_page):
    html, _, train, evaluation = statistics_page
    year = {row["cells"][0]: row["cells"][1:] for row in read_page(_card(html, "year")).tables[0][1:]}
    assert year["min"] == ["2007", "2009"] and year["max"] == ["2008", "2009"]
    bill = {row["cells"][0]: row["cells"][1:] for row in read_page(_card(html, "bill_length_mm")).tables[0][1:]}
    decimals = {len(value.partition(".")[2]) for label in ("min", "mean", "median", "max") for value in bill[label]}
    assert decimals == {2}, bill
    assert bill["median"][1] == f"{evaluation.bill_length_mm.median():.2f}"
    assert year["std"][0] == f"{train.year.std(ddof=0):.3f}", "a standard deviation under 1 keeps its digits"


def test_statistics_order_top_values_the_same_in_every_split(statistics_page):
    html, _, train, evaluation = statistics_page
    chart = read_page(_card(html, "island")).charts[0]
    labels = [mark["text"] for mark in chart["marks"] if mark["class"] == "category"]
    assert labels == list(train.island.value_counts().index), "train's order, in eval too"
    assert evaluation.island.value_counts().index[0] == "Dream", "eval alone would put Dream first"
    bars = [mark["attrs"]["data-series"] for mark in chart["marks"] if mark["class"] == "bar"]
    assert bars == ["train", "eval"] * 3, "every island has a train and an eval bar"


def test_statistics_show_each_slice(statistics_page):
    _, page, train, evaluation = statistics_page
    slices = table_with_header(page, "slice")
    assert slices[0] == ["slice", "train examples", "eval examples"]
    assert slices[1:] == [[f"{SLICE_PREFIX}{island}", str((train.island == island).sum()),
                           str((evaluation.island == island).sum())] for island in ("Biscoe", "Dream", "Torgersen")]


def _slices(candidate, baseline=None):
    """Per-slice metrics as evaluate passes them to decide: {slice: {model: {metric: value}}}."""
    return {name: {"candidate": {"sparse_categorical_accuracy": value, "example_count": count},
                   **({"baseline": {"sparse_categorical_accuracy": baseline[name]}} if baseline else {})}
            for name, (value, count) in candidate.items()}


def _decision(slices, **gates):
    blessed, reasons, rows = decide(slices, "sparse_categorical_accuracy", 0.8, 0.01, "serving model version 1",
                                    **gates)
    return {"blessed": blessed, "reasons": reasons, "metric": "sparse_categorical_accuracy", "baseline_version": 1,
            "overall": {"candidate": slices["Overall"]["candidate"], "baseline": slices["Overall"]["baseline"],
                        "diff": {"sparse_categorical_accuracy": slices["Overall"]["candidate"]
                                 ["sparse_categorical_accuracy"] - slices["Overall"]["baseline"]
                                 ["sparse_categorical_accuracy"]}},
            "slices": rows}


def test_evaluation_shows_candidate_baseline_and_difference_per_slice_and_the_deciding_slice():
    slices = _slices({"Overall": (0.9, 114), "island:Biscoe": (0.6, 50), "island:Dream": (1.0, 44)},
                     baseline={"Overall": 0.92, "island:Biscoe": 0.9, "island:Dream": 0.95})
    decision = _decision(slices, slice_threshold=0.7)
    confusion = (["Adelie", "Chinstrap", "Gentoo"], [[47, 1, 1], [0, 24, 0], [0, 0, 41]])
    page = read_page(evaluation_html(decision, confusion=confusion))
    assert "NOT BLESSED" in page.texts
    table = next(t for t in page.tables if t[0]["cells"][0] == "slice")
    assert table[0]["cells"][:5] == ["slice", "examples", "candidate", "baseline (serving version 1)", "difference"]
    rows = {row["cells"][0].split(" ◀")[0]: row for row in table[1:]}
    assert rows["island:Biscoe"]["cells"][1:5] == ["50", "0.6", "0.9", "-0.3"]
    assert rows["island:Dream"]["cells"][1:5] == ["44", "1", "0.95", "0.05"]
    decided = [name for name, row in rows.items() if row["class"] == "decisive"]
    assert decided == ["island:Biscoe"] and "decided the blessing" in rows["island:Biscoe"]["cells"][0]
    matrix = table_with_header(page, "actual \\ predicted")
    assert matrix == [["actual \\ predicted", "Adelie", "Chinstrap", "Gentoo"], ["Adelie", "47", "1", "1"],
                      ["Chinstrap", "0", "24", "0"], ["Gentoo", "0", "0", "41"]]


def test_evaluation_marks_the_whole_split_when_no_slice_gates():
    slices = _slices({"Overall": (0.95, 114), "island:Biscoe": (0.6, 50)},
                     baseline={"Overall": 0.9, "island:Biscoe": 0.9})
    page = read_page(evaluation_html(_decision(slices)))
    table = next(t for t in page.tables if t[0]["cells"][0] == "slice")
    assert [row["cells"][0].split(" ◀")[0] for row in table[1:] if row["class"] == "decisive"] == ["Overall"]


def test_learning_curves_use_a_log_scale_when_the_loss_spans_orders_of_magnitude():
    history = {"loss": [1.2, 0.3, 0.05, 0.004, 0.0016], "val_loss": [0.9, 0.2, 0.04, 0.02, 0.014],
               "accuracy": [0.4, 0.8, 0.95, 1.0, 1.0], "val_accuracy": [0.5, 0.85, 0.95, 0.98, 0.98]}
    page = read_page(learning_curves_html(history))
    loss, metrics = page.charts
    assert loss["class"] == "line-chart log" and loss["series"] == ["loss", "val_loss"]
    assert "loss (log scale)" in loss["texts"]
    assert {"0.001", "0.01", "0.1", "1"} <= set(loss["texts"]), "a tick per power of ten"
    assert metrics["class"] == "line-chart linear" and metrics["series"] == ["accuracy", "val_accuracy"]
    y_ticks = [mark for mark in metrics["marks"] if mark["class"] == "y-tick"]
    assert len(y_ticks) >= 3
    assert {"1", "3", "5"} <= set(metrics["texts"]), "epochs on the x axis"


def test_learning_curves_keep_a_linear_scale_for_a_loss_within_one_order():
    page = read_page(learning_curves_html({"loss": [0.9, 0.6, 0.5], "val_loss": [0.95, 0.7, 0.6]}))
    assert page.charts[0]["class"] == "line-chart linear"


def _validation_result():
    """What validate returns for a span with drift measured, no serving sample, and one anomaly."""
    return {"anomalies": [{"split": "eval", "feature": "island", "check": "schema",
                           "kind": "ENUM_TYPE_UNEXPECTED_STRING_VALUES", "share": 0.125,
                           "detail": "Examples contain values missing from the schema: Atlantis (~12%)."}],
            "checks": {"drift": "2 of 2 features checked against span 1", "skew": "NOT CHECKED: no serving sample"},
            "drift": [{"feature": "bill_length_mm", "measure": "Jensen-Shannon", "threshold": 0.25,
                       "distance": 1.3e-17, "outcome": "ok"},
                      {"feature": "island", "measure": "L-infinity", "threshold": 0.25, "distance": 0.31,
                       "outcome": "ABOVE THRESHOLD"}],
            "skew": []}


def test_validation_markdown_page_has_one_title_and_near_zero_distances_print_as_0():
    page = read_page(reports.markdown_page("validate: anomalies report", anomalies_markdown(_validation_result())))
    assert [text for tag, text in page.headings if tag == "h1"] == ["Validation"]
    drift = table_with_header(page, "feature")
    rows = {row[0]: row for row in drift[1:]}
    assert rows["bill_length_mm"][2:4] == ["0", "0.25"]
    assert rows["island"][2:5] == ["0.31", "0.25", "ABOVE THRESHOLD"]
    anomalies = table_with_header(page, "split")
    assert anomalies[0][:4] == ["split", "feature", "kind", "rows"]
    assert anomalies[1][:4] == ["eval", "island", "ENUM_TYPE_UNEXPECTED_STRING_VALUES", "12.5%"]


def test_schema_markdown_writes_an_open_ended_domain_in_words():
    from components.penguins import curated_schema_path
    from components.stage_logic.schema import load_schema, schema_markdown

    schema = load_schema(os.path.dirname(curated_schema_path()))
    page = read_page(reports.markdown_page("schema: schema report", schema_markdown(schema, "curated")))
    rows = {row[0]: row for row in table_with_header(page, "feature")[1:]}
    assert rows["year"][3] == "at least 2007"
    assert rows["bill_length_mm"][3] == "25 to 70"
    assert [text for tag, text in page.headings if tag == "h1"] == ["Schema"]


def _run_outputs(blessed, reasons, warnings):
    artifact = SimpleNamespace
    return {"blessing": artifact(metadata={"blessed": blessed, "reasons": reasons}),
            "pushed_model": artifact(metadata={"pushed": blessed, "version": 3.0, "path": "serving/penguins/3"}),
            "anomalies": artifact(metadata={"anomaly_count": len(warnings), "warnings": warnings})}


def test_run_index_shows_the_reasons_the_anomaly_count_and_the_warnings(tmp_path):
    reasons = ["sparse_categorical_accuracy on the whole eval split (114 examples): candidate 0.9825, "
               "threshold >= 0.8: passes"]
    warnings = ["  - eval: feature 'island': ENUM_TYPE_UNEXPECTED_STRING_VALUES: Atlantis (~12%)"]
    path = write_run_report(str(tmp_path / "run"), ["ingest"], {"ingest": {"status": "SUCCESS", "seconds": 1.0}},
                            [], _run_outputs(True, reasons, warnings))
    with open(path, encoding="utf-8") as source:
        page = read_page(source.read())
    verdict = " ".join(page.texts[page.texts.index("BLESSED"):][:4])
    assert "published version 3 at serving/penguins/3" in verdict and "1 data anomaly" in verdict
    assert reasons[0] in page.texts
    assert ("h2", "Warnings") in page.headings
    assert "eval: feature 'island': ENUM_TYPE_UNEXPECTED_STRING_VALUES: Atlantis (~12%)" in page.texts


def test_run_index_says_no_anomalies_when_there_were_none(tmp_path):
    path = write_run_report(str(tmp_path / "run"), [], {}, [], _run_outputs(False, ["FAILS"], []))
    with open(path, encoding="utf-8") as source:
        page = read_page(source.read())
    assert "NOT BLESSED" in page.texts and "no data anomalies" in page.texts
    assert ("h2", "Warnings") not in page.headings


@pytest.mark.slow
def test_statistics_page_in_a_browser(statistics_page, tmp_path):
    from browser import rendered_dom, screenshot

    path = tmp_path / "statistics.html"
    path.write_text(statistics_page[0], encoding="utf-8")
    page = read_page(rendered_dom(str(path)))
    histograms = [chart for chart in page.charts if chart["class"] == "histogram"]
    assert [chart["series"] for chart in histograms] == [["train", "eval"]] * 5
    assert screenshot(str(path), str(tmp_path / "statistics.png")) > 20


@pytest.mark.slow
def test_evaluation_page_in_a_browser(tmp_path):
    from browser import rendered_dom

    slices = _slices({"Overall": (0.9, 114), "island:Biscoe": (0.6, 50)},
                     baseline={"Overall": 0.92, "island:Biscoe": 0.9})
    path = tmp_path / "evaluation.html"
    path.write_text(evaluation_html(_decision(slices, slice_threshold=0.7),
                                    confusion=(["Adelie", "Gentoo"], [[10, 1], [0, 12]])), encoding="utf-8")
    page = read_page(rendered_dom(str(path)))
    table = next(t for t in page.tables if t[0]["cells"][0] == "slice")
    assert "baseline (serving version 1)" in table[0]["cells"]
    assert [row["class"] for row in table[1:]] == ["", "decisive"]
    assert table_with_header(page, "actual \\ predicted")[1] == ["Adelie", "10", "1"]
