"""The living scenario through its command line: `python pipeline.py demo-living`, spans arriving one by one.

Spans 1 to 3 publish versions 1 to 3, each compared with the model serving before it and checked for drift and
skew; a corrupted span stops at validate; a span with shuffled labels is not blessed and is no drift baseline;
a span run again publishes a whole new version. Its own file (six whole runs), so that `make test`'s workers can
run it beside test_end_to_end.py.
"""
import json
import os
import subprocess
import sys

import pytest

from components.state.statistics_store import read_span_verdict, stored_spans
from helpers import REPO

# It runs `pipeline.py demo-living`: six whole pipeline runs.
pytestmark = pytest.mark.slow


def test_living_scenario(tmp_path):
    """Spans arrive, bad ones are refused, a span runs twice: `python pipeline.py demo-living`."""
    summary = tmp_path / "living.json"
    process = subprocess.run(
        [sys.executable, os.path.join(REPO, "pipeline.py"), "demo-living", "--dir", str(tmp_path / "demo"),
         "--summary-json", str(summary)], capture_output=True, text=True, timeout=1200)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert "Traceback" not in process.stderr and "Warning" not in process.stderr, process.stderr[-3000:]
    first, second, third, corrupted, shuffled, again = json.loads(summary.read_text())

    for number, step in enumerate((first, second, third), 1):
        assert step["succeeded"] and step["blessed"], step
        assert step["published_version"] == number
        assert step["versions_after"] == list(range(1, number + 1))
    assert first["reasons"][1] == "no model is serving yet: the first model is blessed on the threshold alone"
    for later, baseline in ((second, 1), (third, 2)):
        assert f"serving model version {baseline} " in later["reasons"][1]
        assert later["reasons"][1].endswith("(--tolerance): passes")
    for step in (first, second, third):
        # The curated schema sets skew thresholds on six features: not on the label, nor on the year.
        assert step["skew"].startswith("6 of 8 features checked against the serving sample"), step
    assert first["drift"] == "NOT CHECKED: no span of model 'penguins' before 1 has been kept yet (first span)"
    assert second["drift"].startswith("7 of 8 features checked against span 1, the last span of model 'penguins' "
                                      "before 2 whose data was accepted (its data passed validation and its model "
                                      "was blessed, published as version 1)")
    assert third["drift"].startswith("7 of 8 features checked against span 2, the last span of model 'penguins' "
                                     "before 3")

    assert not corrupted["succeeded"] and corrupted["failed_stage"] == "validate"
    report = corrupted["errors"][0]
    for text in ("feature 'body_mass_g': UNEXPECTED_DATA_TYPE", "feature 'island': ENUM_TYPE_UNEXPECTED_STRING",
                 "feature 'species': FEATURE_TYPE_LOW_FRACTION_PRESENT"):
        assert text in report
    assert corrupted["versions_after"] == corrupted["versions_before"] == [1, 2, 3]

    assert shuffled["succeeded"] and not shuffled["blessed"]
    assert shuffled["published_version"] == 0
    assert any(reason.endswith("FAILS") for reason in shuffled["reasons"])
    assert shuffled["versions_after"] == [1, 2, 3]

    assert again["succeeded"] and again["versions_after"] == [1, 2, 3, 4]
    model_root = tmp_path / "demo" / "serving" / "penguins"
    assert sorted(os.listdir(model_root)) == [".publish.lock", "1", "2", "3", "4"]
    for version in (1, 2, 3, 4):
        assert (model_root / str(version) / "saved_model.pb").is_file()
        assert (model_root / str(version) / "variables" / "variables.index").is_file()
    assert os.listdir(tmp_path / "demo" / "statistics") == ["penguins"]
    store = str(tmp_path / "demo" / "statistics" / "penguins")
    assert stored_spans(store) == [1, 2, 3, 5]
    # The shuffled span's data passed validation, but its model was not blessed: it is no drift baseline.
    assert [read_span_verdict(store, span)["accepted"] for span in (1, 2, 3, 5)] == [True, True, True, False]
    assert "its model was not blessed" in read_span_verdict(store, 5)["reason"]
    assert "=== What the living pipeline decided ===" in process.stdout
    assert "Traceback" not in process.stdout + process.stderr
    assert "Exception ignored" not in process.stdout + process.stderr
