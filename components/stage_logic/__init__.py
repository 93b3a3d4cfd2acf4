"""Each stage's logic as plain functions, one module per stage (no kfp import): what components/stages.py calls."""
