"""The stages of living-pipeline.

`components/<stage>.py` holds each stage's logic as plain functions, testable without KFP;
`components/stages.py` holds one thin, typed KFP component per stage that calls that logic; and
`pipeline.py` turns those into components for an image and wires them.
"""
