"""Benchmarks of the local pipeline: synthetic data, floors and the runner (`make bench`)."""
