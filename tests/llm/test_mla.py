"""Multi-head latent attention: absorbed == naive, cached latents, against an explicit loop."""

from __future__ import annotations

import math

import pytest
import torch

from attnkit.llm.mla import kv_cache_elements, mla_attention, mla_latents, mla_weights


def _loop(x, w):
    """Per head, per query, in plain float64 loops: the naive form written out."""
    B, T, _ = x.shape
    H, _, Dh = w["W_q"].shape
    out = torch.zeros(B, H, T, Dh, dtype=x.dtype)
    c = x @ w["W_dkv"]
    for b in range(B):
        for h in range(H):
            k, v, q = c[b] @ w["W_uk"][h], c[b] @ w["W_uv"][h], x[b] @ w["W_q"][h]
            for i in range(T):
                s = torch.stack([q[i] @ k[j] / math.sqrt(Dh) for j in range(i + 1)])
                out[b, h, i] = torch.softmax(s, 0) @ v[: i + 1]
    return out


def test_absorbed_equals_naive_equals_loop() -> None:
    w = mla_weights(32, 4, 8, 12, seed=1)
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    naive = mla_attention(x, w)
    torch.testing.assert_close(naive, _loop(x, w))
    assert (mla_attention(x, w, absorbed=True) - naive).abs().max() < 1e-12


def test_decoding_from_cached_latents() -> None:
    w = mla_weights(16, 2, 4, 6)
    x = torch.randn(1, 10, 16, dtype=torch.float64)
    c = mla_latents(x, w)
    assert c.shape == (1, 10, 6)
    for absorbed in (False, True):
        last = mla_attention(x[:, -2:], w, latents=c, absorbed=absorbed)
        torch.testing.assert_close(last, mla_attention(x, w)[:, :, -2:])


def test_cache_elements() -> None:
    assert kv_cache_elements("mha", n_head=8, d_head=16) == 256
    assert kv_cache_elements("gqa", n_head=8, d_head=16, n_kv_head=2) == 64
    assert kv_cache_elements("mqa", n_head=8, d_head=16) == 32
    # DeepSeek-V2: d_c = 4 d_h, d_rope = d_h / 2
    assert kv_cache_elements("mla", n_head=128, d_head=128, d_latent=512, d_rope=64) == 576
    with pytest.raises(ValueError, match="kind"):
        kv_cache_elements("mlp", n_head=1, d_head=1)
    with pytest.raises(ValueError, match="x must be"):
        mla_attention(torch.zeros(3, 4), mla_weights(4, 1, 2, 2))
