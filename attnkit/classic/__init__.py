"""Part I: attention before deep learning (1950s to 2005). Chapters: *The cocktail party*,
*Sigma-pi units*, *Fast weights*, *The bilateral filter*, *Non-local means*.

- :mod:`attnkit.classic.cocktail`: selective listening; Broadbent's filter (hard weights) and
  Treisman's attenuator (soft weights); Sperling's partial report.
- :mod:`attnkit.classic.sigma_pi`: multiplicative units; one computes the bilinear score.
- :mod:`attnkit.classic.fast_weights`: a slow net writes outer products into fast weights:
  causal linear attention.
- :mod:`attnkit.classic.bilateral`: the bilateral filter; each pixel attends to its window.
- :mod:`attnkit.classic.nonlocal_means`: non-local means; pixels attend to similar patches.
- :mod:`attnkit.classic.images`: the sample photograph, noise, blur, PSNR, edge measures.
"""

from attnkit.classic.bilateral import bilateral_filter, bilateral_weights
from attnkit.classic.cocktail import partial_report, select_channel, synthesize_voices
from attnkit.classic.fast_weights import FastWeightProgrammer, causal_linear_attention, fast_weight_programmer
from attnkit.classic.images import add_gaussian_noise, gaussian_blur, load_sample_image, psnr
from attnkit.classic.nonlocal_means import nadaraya_watson, nlm_weights, non_local_means
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
    "bilateral_filter",
    "bilateral_weights",
    "non_local_means",
    "nlm_weights",
    "nadaraya_watson",
    "load_sample_image",
    "add_gaussian_noise",
    "gaussian_blur",
    "psnr",
]
