"""Serving the published models: TF Serving warm-up requests, a mirror of a bucket serving root for TF Serving, and
a check that a published model serves.
"""
