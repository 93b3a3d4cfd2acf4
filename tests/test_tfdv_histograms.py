"""TFDV's standard histograms built on floats (components/platform/tfdv_histograms.py) are TFDV's own, bit for bit,
for every numeric feature TFDV meets in real tables and in the odd ones (infinities, a constant, a point mass, a
range too wide for a double), and the statistics stage and its worker processes build them that way."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import SetupOptions
from sklearn import datasets
from tensorflow_data_validation.utils import quantiles_util

from benchmarks.drift_calibration import statistics_options
from components.platform import beam_options, beam_workers, tfdv_histograms
from helpers import REPO


def odd_columns(rows=400):
    rng = np.random.default_rng(7)
    normal = rng.normal(size=rows)
    return pd.DataFrame({
        "infinities": np.where(np.arange(rows) % 9 == 0, np.inf, np.where(np.arange(rows) % 11 == 0, -np.inf, normal)),
        "only_positive_infinity": np.where(np.arange(rows) % 5 == 0, np.inf, normal),
        "constant": np.full(rows, 3.25),
        "few_values": rng.integers(0, 4, rows).astype(float),
        "point_mass": np.where(np.arange(rows) % 4 == 0, rng.exponential(size=rows), 0.0),
        "heavy_tail": -rng.pareto(1.0, rows),
        "widest": np.where(np.arange(rows) == 0, -1.7e308, np.where(np.arange(rows) == 1, 1.7e308, normal)),
        "tiny": normal * 1e-300,
        "missing": np.where(np.arange(rows) % 3 == 0, np.nan, normal),
        "all_infinite": np.full(rows, np.inf),
    })


def real_tables():
    yield datasets.load_wine(as_frame=True).frame
    yield datasets.load_diabetes(as_frame=True, scaled=False).frame
    yield datasets.load_breast_cancer(as_frame=True).frame.sample(frac=0.5, random_state=3)
    yield odd_columns()


@pytest.fixture(scope="module")
def tfdv_calls():
    """Every call TFDV's statistics make to its standard histogram function on the tables above (the stage's
    options, TFDV's defaults, and weighted examples), and what TFDV's own function answered."""
    current = quantiles_util.generate_equi_width_histogram  # this process's stage tests may have installed it
    original = getattr(current, "original", current)
    calls = []

    def recording(*args, **kwargs):
        answer = original(*args, **kwargs)
        kept = type(answer)()
        kept.CopyFrom(answer)  # TFDV then sets fields of the one it gets (num_nan)
        calls.append(((args, kwargs), kept))
        return answer

    quantiles_util.generate_equi_width_histogram = recording
    try:
        rng = np.random.default_rng(11)
        with np.errstate(over="ignore", invalid="ignore"):  # TFDV's variance of the widest column overflows
            for frame in real_tables():
                for options in (statistics_options(), tfdv.StatsOptions()):
                    tfdv.generate_statistics_from_dataframe(frame, options)
                weighted = frame.assign(weight=rng.random(len(frame)))
                tfdv.generate_statistics_from_dataframe(weighted, tfdv.StatsOptions(weight_feature="weight"))
    finally:
        quantiles_util.generate_equi_width_histogram = current
    return calls


def test_every_histogram_is_tfdvs_own_bit_for_bit(tfdv_calls):
    on_floats = tfdv_histograms._on_floats(quantiles_util)
    assert len(tfdv_calls) > 200
    for (args, kwargs), expected in tfdv_calls:
        with np.errstate(over="ignore", invalid="ignore"):  # as TFDV's own linspace on the widest column
            answer = on_floats(*args, **kwargs)
        assert answer.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


def test_the_calls_cover_infinities_a_constant_and_an_overflowing_range(tfdv_calls):
    answers = [expected for _, expected in tfdv_calls]
    assert any(bucket.low_value == -np.inf for answer in answers for bucket in answer.buckets)
    assert any(bucket.high_value == np.inf for answer in answers for bucket in answer.buckets)
    assert any(len(answer.buckets) == 1 and answer.buckets[0].low_value == answer.buckets[0].high_value == 3.25
               for answer in answers)
    assert any(len(answer.buckets) == 0 for answer in answers), "the widest column's range overflows: no buckets"
    assert any(0 < bucket.sample_count != int(bucket.sample_count) for answer in answers for bucket in answer.buckets)


def test_installed_once_and_the_statistics_stages_workers_install_it(monkeypatch):
    tfdv_histograms.install()
    installed = quantiles_util.generate_equi_width_histogram
    tfdv_histograms.install()
    assert quantiles_util.generate_equi_width_histogram is installed and installed.on_floats
    monkeypatch.delenv(beam_workers.PEAKS_VARIABLE, raising=False)
    options = beam_options.pipeline_options("--direct_running_mode=multi_processing --direct_num_workers=2",
                                            "statistics", lambda: None)
    beam_workers.workers_peak_mb()  # removes the folder that options for workers name
    plugins = options.view_as(SetupOptions).beam_plugins
    assert plugins == ["components.platform.beam_worker", "components.platform.statistics_worker"]
    worker = subprocess.run(
        [sys.executable, "-c", "import importlib, sys; importlib.import_module(sys.argv[1]); "
         "from tensorflow_data_validation.utils import quantiles_util as q; "
         "print(getattr(q.generate_equi_width_histogram, 'on_floats', False))", plugins[1]],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert worker.stdout.strip() == "True", worker.stderr
