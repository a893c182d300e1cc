"""MultiHeadAttention against torch.nn.MultiheadAttention with the same weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnkit import MultiHeadAttention, causal_mask


def _copy_into_torch(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(mha.embed_dim, mha.num_heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
        ref.out_proj.weight.copy_(mha.out_proj.weight)
        ref.out_proj.bias.copy_(mha.out_proj.bias)
    return ref


def test_matches_torch_multihead_attention() -> None:
    mha = MultiHeadAttention(16, 4).double()
    ref = _copy_into_torch(mha)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    lengths_pad = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out, w = mha(x, mask=causal_mask(5), key_padding=lengths_pad)
    ref_out, ref_w = ref(x, x, x, attn_mask=~causal_mask(5), key_padding_mask=~lengths_pad, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(w, ref_w)
    assert w.shape == (2, 4, 5, 5)


def test_cross_attention_shapes_and_gradients() -> None:
    mha = MultiHeadAttention(8, 2)
    q, kv = torch.randn(3, 4, 8), torch.randn(3, 6, 8)
    out, w = mha(q, kv)
    assert out.shape == (3, 4, 8) and w.shape == (3, 2, 4, 6)
    out.sum().backward()
    assert all(p.grad is not None for p in mha.parameters())


def test_errors() -> None:
    with pytest.raises(ValueError, match="num_heads=3 must divide embed_dim=8"):
        MultiHeadAttention(8, 3)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"query must be \(B, L, 8\); got shape \(2, 5, 6\)"):
        mha(torch.randn(2, 5, 6))
    with pytest.raises(TypeError, match="mask must be bool"):
        mha(torch.randn(2, 5, 8), mask=torch.zeros(5, 5))
