"""Where and how the pipeline runs: cluster settings, submission to KFP and Vertex AI, local runs (kfp.local, warm
stage processes, the run report) and Beam runners.
"""
