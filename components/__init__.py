"""The stages of living-pipeline.

Each stage module holds the stage's logic as plain functions (testable without KFP) and one thin
KFP component function that calls them; `pipeline.py` turns those into components and wires them.
"""
