"""Part V: attention in today's language models (2018 onwards).

Chapters: *Decoder-only models and the KV cache* (``chapters/part5/decoder-kv-cache``) and
*Long context: positions, windows and sinks* (``chapters/part5/long-context``).

- ``.corpus``: Tiny Shakespeare (character level), batches, the trivial baselines;
- ``.gpt``: the decoder (``GPT``, ``GPTConfig``; learned / sinusoidal / rotary / ALiBi /
  no positions; grouped-query heads; sliding windows), sampling and generation;
- ``.cache``: the contiguous, streaming (window + sinks) and paged KV caches;
- ``.train``: training, evaluation, mean-pooling MHA heads into GQA, streaming evaluation;
- ``.mla``: multi-head latent attention, naive and absorbed;
- ``.records``: ``python -m attnkit.llm.records kv-heads|positions`` (multi-seed runs);
- ``.diagrams``: the data-flow drawings of the chapters.
"""

from attnkit.llm.cache import KVCache, PagedKVCache, StreamingCache, allocation_waste, cache_bytes
from attnkit.llm.corpus import Corpus, baselines, eval_windows, get_batch, load_corpus
from attnkit.llm.gpt import (
    GPT,
    POSITIONS,
    GPTConfig,
    alibi_slopes,
    decoder_mask,
    generate,
    loss_fn,
    nll_per_position,
    sample_next,
)

__all__ = [
    "GPT", "POSITIONS", "Corpus", "GPTConfig", "KVCache", "PagedKVCache", "StreamingCache",
    "alibi_slopes", "allocation_waste", "baselines", "cache_bytes", "decoder_mask", "eval_windows",
    "generate", "get_batch", "load_corpus", "loss_fn", "nll_per_position", "sample_next",
]
