"""Efficient attention (2019-2020): making ``attend`` cheaper than ``O(N^2)``.

======================  ==============================================  ==========================
module                  mechanism                                       exact?
======================  ==============================================  ==========================
:mod:`.chunked`         online softmax over key blocks, O(N) memory     exact
:mod:`.local`           sliding window, Sparse Transformer patterns     exact on its mask
:mod:`.reformer`        LSH buckets, sorted chunks, rounds, shared QK   exact on its (random) mask
:mod:`.linformer`       low-rank projection of K, V along the sequence  approximation
:mod:`.performer`       FAVOR+ positive orthogonal random features      unbiased kernel estimate
======================  ==============================================  ==========================
"""

from attnkit.efficient.chunked import chunked_attention
from attnkit.efficient.linformer import attention_singular_values, linformer_attention, linformer_projection
from attnkit.efficient.local import fixed_sparse_mask, local_attention, sliding_window_mask
from attnkit.efficient.performer import (
    favor_features,
    linear_attention,
    orthogonal_gaussian,
    performer_attention,
    row_sum_normalize,
)
from attnkit.efficient.reformer import (
    lsh_attention,
    lsh_attention_mask,
    lsh_buckets,
    random_rotations,
    shared_keys,
)

__all__ = [
    "attention_singular_values",
    "chunked_attention",
    "favor_features",
    "fixed_sparse_mask",
    "linear_attention",
    "linformer_attention",
    "linformer_projection",
    "local_attention",
    "lsh_attention",
    "lsh_attention_mask",
    "lsh_buckets",
    "orthogonal_gaussian",
    "performer_attention",
    "random_rotations",
    "row_sum_normalize",
    "shared_keys",
    "sliding_window_mask",
]
