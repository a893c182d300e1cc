"""Efficient attention (2019-2020): making ``attend`` cheaper than ``O(N^2)``.

The package behind the chapter *Efficient transformers (2019-2020)* (Part IV).

======================  ==================================================  ==============================
module                  mechanism                                           exact?
======================  ==================================================  ==============================
:mod:`.chunked`         online softmax over key blocks, O(N) memory         exact
:mod:`.local`           sliding window, Sparse Transformer patterns         exact on its mask
:mod:`.reformer`        LSH buckets, sorted chunks, rounds, shared QK       exact on its (random) mask
:mod:`.reversible`      Reformer's reversible layers, chunked feed-forward  exact (saves memory, not time)
:mod:`.linformer`       low-rank projection of K, V along the sequence      approximation
:mod:`.performer`       FAVOR+ random features; causal linear attention     unbiased kernel estimate
                        as a recurrence (the RNN form)
======================  ==================================================  ==============================
"""

from attnkit.efficient.chunked import chunked_attention
from attnkit.efficient.linformer import attention_singular_values, linformer_attention, linformer_projection
from attnkit.efficient.local import fixed_sparse_mask, local_attention, sliding_window_mask
from attnkit.efficient.performer import (
    favor_features,
    linear_attention,
    linear_attention_recurrent,
    linear_attention_step,
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
from attnkit.efficient.reversible import (
    FeedForward,
    ReversibleBlock,
    ReversibleStack,
    chunked_feed_forward,
    saved_tensor_bytes,
)

__all__ = [
    "FeedForward",
    "ReversibleBlock",
    "ReversibleStack",
    "attention_singular_values",
    "chunked_attention",
    "chunked_feed_forward",
    "favor_features",
    "fixed_sparse_mask",
    "linear_attention",
    "linear_attention_recurrent",
    "linear_attention_step",
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
    "saved_tensor_bytes",
    "shared_keys",
    "sliding_window_mask",
]
