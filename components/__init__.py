"""The stages of living-pipeline, and everything they stand on, by concern.

`components/stages.py` holds one thin, typed KFP component per stage (the contracts the KFP dashboard shows);
`components/stage_table.py` says what the platform needs to know about each stage; `components/stage_logic/`
holds each stage's logic as plain functions, testable without KFP; and `data/`, `state/`, `evaluation/`,
`training/`, `tf_serving/` and `platform/` hold what the stages share. `pipeline.py` turns the components into a
pipeline for an image; `pipeline_cli.py` is its command line. docs/design.md maps every module.
"""
