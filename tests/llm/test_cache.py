"""KV caches: bytes, the streaming cache (window, sinks), the paged cache and its waste."""

from __future__ import annotations

import math

import pytest
import torch
from llm_helpers import random_gpt

from attnkit.llm.cache import KVCache, PagedKVCache, StreamingCache, allocation_waste, cache_bytes
from attnkit.llm.gpt import GPT, GPTConfig


def test_measured_bytes_equal_the_formula() -> None:
    m = GPT(GPTConfig(n_kv_head=2)).eval()
    cache = KVCache()
    with torch.no_grad():
        m(torch.randint(65, (3, 40)), cache)
    assert cache.nbytes() == cache_bytes(2, 2, 8, 40, batch=3, itemsize=4) == 2 * 2 * 3 * 2 * 40 * 8 * 4
    with pytest.raises(ValueError, match="n_layer"):
        cache_bytes(0, 1, 1, 1)


@pytest.mark.parametrize("positions", ["rotary", "alibi", "none"])
def test_rolling_cache_equals_sliding_window_attention(positions) -> None:
    """A cache of the last w tokens, positions within the cache, gives the windowed model's logits."""
    m = random_gpt(positions=positions, window=6)
    x = torch.randint(65, (2, 25))
    full = m(x)
    cache = StreamingCache(6)
    steps = torch.cat([m(x[:, t:t + 1], cache) for t in range(25)], 1)
    assert (steps - full).abs().max() < 1e-12
    assert all(k.shape[-2] == 6 for k in cache.k.values())


def test_sinks_keep_the_first_tokens_and_the_last_window() -> None:
    cache = StreamingCache(3, sinks=2)
    for t in range(10):
        k = torch.full((1, 1, 1, 1), float(t))
        k_all, _ = cache.update(0, k, k)
    assert k_all.flatten().tolist() == [0.0, 1.0, 7.0, 8.0, 9.0]
    with pytest.raises(ValueError, match="one token at a time"):
        cache.update(0, torch.zeros(1, 1, 2, 1), torch.zeros(1, 1, 2, 1))
    with pytest.raises(ValueError, match="window"):
        StreamingCache(0)


def test_paged_cache_gives_identical_outputs() -> None:
    m = random_gpt(positions="rotary", n_kv_head=2)
    paged = PagedKVCache(2, n_blocks=20, block_size=4, n_kv_head=2, d_head=8, dtype=torch.float64)
    prompts = [torch.randint(65, (1, n)) for n in (5, 11, 2)]
    views = [paged.sequence(i) for i in range(3)]
    conts = [KVCache() for _ in range(3)]
    for step in range(6):  # interleave three requests, as a server does
        for i, p in enumerate(prompts):
            tok = p if step == 0 else torch.tensor([[step]])
            assert torch.equal(m(tok, views[i]), m(tok, conts[i]))
    assert paged.blocks_in_use() == sum(math.ceil((n + 5) / 4) for n in (5, 11, 2))
    in_use = paged.blocks_in_use()
    paged.release(1)
    assert len(paged.free) == 20 - in_use + math.ceil(16 / 4)


def test_paged_gather_reads_through_the_block_table() -> None:
    paged = PagedKVCache(1, n_blocks=6, block_size=2, n_kv_head=1, d_head=1)
    a = torch.arange(5.0).view(1, 1, 5, 1)
    b = 10 + torch.arange(3.0).view(1, 1, 3, 1)
    paged._append(0, 0, a[..., :3, :], a[..., :3, :])
    paged._append(1, 0, b, b)
    paged._append(0, 0, a[..., 3:, :], a[..., 3:, :])
    assert paged.tables[0] == [0, 1, 4] and paged.tables[1] == [2, 3]
    assert torch.equal(paged.gather(0, 0)[0], a) and torch.equal(paged.gather(1, 0)[0], b)
    with pytest.raises(ValueError, match="k holds 5 new tokens.*1 free"):
        paged._append(1, 0, torch.ones(1, 1, 5, 1), torch.ones(1, 1, 5, 1))
    # refused before writing: nothing half-appended (it used to store 3 of the 5 and take block 5)
    assert paged.tables[1] == [2, 3] and paged.free == [5] and torch.equal(paged.gather(1, 0)[0], b)


def test_allocation_waste_against_the_formula() -> None:
    lengths = [1, 16, 17, 100]
    w = allocation_waste(lengths, max_len=128, block_size=16)
    used = sum(lengths)
    assert w["contiguous_waste"] == pytest.approx(1 - used / (4 * 128))
    assert w["paged_slots"] == 16 * (1 + 1 + 2 + 7)
    assert w["paged_waste"] == pytest.approx(1 - used / w["paged_slots"])
    with pytest.raises(ValueError, match="max_len"):
        allocation_waste([200], max_len=128, block_size=16)
