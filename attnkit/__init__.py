"""attnkit: the code of the book "Attention, from the cocktail party to FlashAttention".

Every mechanism in the book is ``attend(q, k, v)`` with a different score and normaliser.
The map of the package (module -> chapter) is in the README.
"""

from attnkit.core import attend, attention_scores
from attnkit.flash import flash_attention
from attnkit.masks import causal_mask, combine_masks, key_mask, padding_mask
from attnkit.mha import MultiHeadAttention
from attnkit.normalize import hardmax, masked_softmax, no_normalize, softmax_with_temperature, sparsemax
from attnkit.scores import (
    additive_score,
    cosine_score,
    dot_score,
    gaussian_score,
    general_score,
    scaled_dot_score,
)

__version__ = "0.1.0"

__all__ = [
    "attend",
    "attention_scores",
    "masked_softmax",
    "softmax_with_temperature",
    "no_normalize",
    "sparsemax",
    "hardmax",
    "dot_score",
    "scaled_dot_score",
    "general_score",
    "additive_score",
    "cosine_score",
    "gaussian_score",
    "causal_mask",
    "padding_mask",
    "key_mask",
    "combine_masks",
    "MultiHeadAttention",
    "flash_attention",
]
