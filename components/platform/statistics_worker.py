"""What a worker process of the statistics stage's DirectRunner does as it starts, besides what every worker does
(components.platform.beam_worker): it builds TFDV's standard histograms as the stage process does
(components.platform.tfdv_histograms), since the workers are where TFDV turns each split's accumulated statistics
into histograms. Imported in each such worker as a Beam plugin (`--beam_plugin`, which
components.platform.beam_options adds for the statistics stage's workers); Beam imports a plugin for what
importing it does, and nothing else imports this module.
"""
from components.platform import tfdv_histograms

tfdv_histograms.install()
