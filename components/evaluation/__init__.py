"""Evaluation with TFMA: the metrics the blessing and reports use, batched extraction, and the blessing decision."""
