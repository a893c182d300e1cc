"""Autograded exercises: call a checker on your own function, read the verdict.

>>> from attnkit.exercises import check_masked_softmax
>>> check_masked_softmax(my_masked_softmax)   # "✓ ... passed", or the first failure

Checkers never raise for a wrong answer; they return a :class:`CheckResult` that is truthy
only when every hidden case passed.
"""

from attnkit.exercises._harness import Case, CheckResult, run_cases
from attnkit.exercises.core import check_masked_softmax, check_scaled_dot_attention
from attnkit.exercises.early import check_attenuator, check_bilinear_score, check_fast_weights
from attnkit.exercises.efficient import check_favor_features
from attnkit.exercises.everywhere import (
    check_gat_coefficients,
    check_hopfield_update,
    check_info_nce,
    check_patchify,
    check_rollout,
)
from attnkit.exercises.filters import check_bilateral_weights, check_nadaraya_watson
from attnkit.exercises.flash import check_online_softmax
from attnkit.exercises.llm import check_alibi_bias, check_kv_cache_bytes, check_pool_heads
from attnkit.exercises.recurrent import check_attention_penalty, check_reinforce_surrogate
from attnkit.exercises.seq2seq import check_bahdanau_step, check_local_mask
from attnkit.exercises.transformer import (
    check_causal_attention,
    check_multihead_attention,
    check_padded_attention,
    check_rotary,
    check_sinusoidal_positions,
)

__all__ = [
    "Case",
    "CheckResult",
    "run_cases",
    "check_masked_softmax",
    "check_scaled_dot_attention",
    "check_attenuator",
    "check_bilinear_score",
    "check_fast_weights",
    "check_bilateral_weights",
    "check_nadaraya_watson",
    "check_bahdanau_step",
    "check_local_mask",
    "check_reinforce_surrogate",
    "check_attention_penalty",
    "check_favor_features",
    "check_sinusoidal_positions",
    "check_rotary",
    "check_causal_attention",
    "check_padded_attention",
    "check_multihead_attention",
    "check_gat_coefficients",
    "check_hopfield_update",
    "check_info_nce",
    "check_patchify",
    "check_rollout",
    "check_online_softmax",
    "check_kv_cache_bytes",
    "check_pool_heads",
    "check_alibi_bias",
]
