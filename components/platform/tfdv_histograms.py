"""TFDV's standard (equi-width) histogram of a numeric feature, computed on plain floats.

TFDV's basic statistics build each numeric feature's standard histogram
(`tensorflow_data_validation.utils.quantiles_util.generate_equi_width_histogram`) from a quantiles histogram
of 100 buckets per quantiles bucket asked for. With the 50 quantiles buckets the drift measures read
(components/validation/drift_measures.py) that is 5,000 buckets, each added as a protocol buffer message and
read back field by field while the standard buckets are summed: about 9 ms per numeric feature and split on
this project's 2-core machine (2 ms on floats), a sixth of the demo's statistics stage and two thirds of the
drift calibration.

`install()` puts in its place the same computation on the quantiles histogram's bounds and counts as floats:
TFDV's own helpers strip the infinities and spread the counts of repeated bounds, then each standard bucket
sums the same overlaps of the same buckets in the same order. Every histogram is the one TFDV's function
gives, bit for bit (tests/test_tfdv_histograms.py). TFDV 1.16.1 is pinned (constraints.txt): its
generators call the function through the module, so replacing the module's attribute reaches them.
"""
import importlib

import numpy as np

_MODULE = "tensorflow_data_validation.utils.quantiles_util"


def install():
    """Makes TFDV build standard histograms on floats (once per process; safe to call again)."""
    quantiles_util = importlib.import_module(_MODULE)
    if getattr(quantiles_util.generate_equi_width_histogram, "on_floats", False):
        return
    replacement = _on_floats(quantiles_util)
    replacement.original = quantiles_util.generate_equi_width_histogram
    quantiles_util.generate_equi_width_histogram = replacement


def _on_floats(quantiles_util):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    def generate_equi_width_histogram(quantiles, cumulative_counts, finite_min, finite_max, num_buckets,
                                      num_pos_inf):
        result = statistics_pb2.Histogram()
        result.type = statistics_pb2.Histogram.STANDARD
        if not np.isfinite(finite_min) and not np.isfinite(finite_max):
            result.buckets.add(low_value=finite_min, high_value=finite_max, sample_count=cumulative_counts[-1])
            return result
        assert np.isfinite(finite_min)
        assert np.isfinite(finite_max)
        assert np.all(quantiles[:-1] <= quantiles[1:])
        quantiles, cumulative_counts, num_neg_inf = quantiles_util._strip_infinities(
            quantiles, cumulative_counts, finite_max, num_pos_inf)
        # The quantiles histogram's buckets, as TFDV's stores them: doubles.
        lows, highs, counts = (np.asarray(values, dtype=np.float64).tolist()
                               for values in quantiles_util._get_bin_weights(quantiles, cumulative_counts))
        if finite_min == finite_max:
            boundaries = np.array([finite_min, finite_max])
        else:
            boundaries = np.linspace(finite_min, finite_max, num_buckets + 1)
            if not np.isfinite(boundaries).all():  # overflow: TFDV gives an empty histogram
                return result
        if num_neg_inf:
            result.buckets.add(low_value=float("-inf"), high_value=float("-inf"), sample_count=num_neg_inf)
        start_index = 0
        for i in range(boundaries.size - 1):
            low_bound, high_bound = boundaries[i], boundaries[i + 1]
            sample_count = 0
            for current in range(start_index, len(lows)):
                overlap, precedes, follows = _overlap(lows[current], highs[current], low_bound, high_bound, i == 0)
                if follows:
                    break
                if precedes:
                    start_index = current
                sample_count += overlap * counts[current]
            result.buckets.add(low_value=low_bound, high_value=high_bound, sample_count=sample_count)
        if num_pos_inf:
            result.buckets.add(low_value=float("inf"), high_value=float("inf"), sample_count=num_pos_inf)
        return result

    generate_equi_width_histogram.on_floats = True
    return generate_equi_width_histogram


def _overlap(low, high, low_bound, high_bound, first_bucket):
    """TFDV's `quantiles_util._overlap` of the bucket [low, high] and the interval: (the share of the bucket's
    count in the interval, whether the bucket lies wholly before it, whether wholly after it)."""
    if high == low == low_bound:  # a point on the interval's left edge: only the first interval holds it
        return (1.0, False, False) if first_bucket else (0.0, True, False)
    if high < low_bound:
        return 0.0, True, False
    if low > high_bound:
        return 0.0, False, True
    if low_bound <= low and high_bound >= high:
        return 1.0, False, False
    if low_bound <= low:
        return (high_bound - low) / (high - low), False, False
    if high_bound >= high:
        return (high - low_bound) / (high - low), False, False
    if low_bound > low and high_bound < high:
        return (high_bound - low_bound) / (high - low), False, False
    raise ValueError(f"Unable to compute overlap between ({low_bound}, {high_bound}) and the bucket [{low}, {high}]")
