"""Cross-check: the decoder's grouped-query, cached attention equals ``flash_attention``.

The kernel shares K/V heads the same way (query head ``h`` uses head ``h // G``) and aligns
its causal mask bottom-right, as decoding against a cache needs. The blocked reference runs
everywhere; the Triton kernel runs in Triton's interpreter on a small case where available.
"""

from __future__ import annotations

import pytest
import torch

from attnkit.flash.api import flash_attention, interpreter_available
from attnkit.llm.cache import KVCache
from attnkit.llm.gpt import GPT, GPTConfig

BACKENDS = ["reference", pytest.param("interpret", marks=pytest.mark.skipif(
    not interpreter_available(), reason="Triton's interpreter is not available here"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_cached_gqa_step_matches_flash_attention(backend, n_kv_head) -> None:
    torch.manual_seed(0)
    m = GPT(GPTConfig(d_model=64, n_head=4, n_kv_head=n_kv_head, positions="none")).eval()
    attn = m.blocks[0].attn
    x = torch.randn(2, 12, 64)
    cache = KVCache()
    with torch.no_grad():
        attn(x[:, :9], cache)                      # prefill 9 positions
        got = attn(x[:, 9:], cache)                # then 3 new queries over 12 keys
        B, Hkv, Dh = 2, n_kv_head, 16
        q = attn.wq(x[:, 9:]).view(B, 3, 4, Dh).transpose(1, 2)       # (B, H, 3, Dh)
        k = attn.wk(x).view(B, 12, Hkv, Dh).transpose(1, 2)           # (B, Hkv, 12, Dh)
        v = attn.wv(x).view(B, 12, Hkv, Dh).transpose(1, 2)
        out = flash_attention(q.contiguous(), k.contiguous(), v.contiguous(), causal=True,
                              backend=backend)                          # (B, H, 3, Dh)
        ref = attn.wo(out.transpose(1, 2).reshape(B, 3, 4 * Dh))
    torch.testing.assert_close(got, ref, atol=2e-5, rtol=1e-4)
