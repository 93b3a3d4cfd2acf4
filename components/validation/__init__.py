"""Validation measures computed from TFDV statistics, with no kfp import: drift and skew between two datasets.

drift_measures.py  per feature: the measure, its value, its threshold, the verdict and the two distributions
                   that explain it, from what the statistics stage keeps per span (no second pass over the data)
"""
