"""Part I: attention before deep learning (1950s to 2005).

- :mod:`attnkit.classic.cocktail`: selective listening; Broadbent's filter (hard weights) and
  Treisman's attenuator (soft weights); Sperling's partial report.
- :mod:`attnkit.classic.sigma_pi`: multiplicative units; one computes the bilinear score.
- :mod:`attnkit.classic.fast_weights`: a slow net writes outer products into fast weights:
  causal linear attention.
"""

from attnkit.classic.cocktail import partial_report, select_channel, synthesize_voices
from attnkit.classic.fast_weights import FastWeightProgrammer, causal_linear_attention, fast_weight_programmer
from attnkit.classic.sigma_pi import sigma_pi, sigma_pi_score, sigma_pi_unit

__all__ = [
    "synthesize_voices",
    "select_channel",
    "partial_report",
    "sigma_pi",
    "sigma_pi_score",
    "sigma_pi_unit",
    "fast_weight_programmer",
    "causal_linear_attention",
    "FastWeightProgrammer",
]
