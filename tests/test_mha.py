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


def test_attention_dropout_matches_torch_with_the_same_seed() -> None:
    mha = MultiHeadAttention(16, 4, dropout=0.3).double()
    ref = _copy_into_torch(mha)
    ref.dropout = 0.3
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    torch.manual_seed(5)
    out, w = mha(x)
    torch.manual_seed(5)
    ref_out, _ = ref(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 5, dtype=torch.float64))  # before dropout
    mha.eval()
    ref.eval()
    torch.testing.assert_close(mha(x)[0], ref(x, x, x)[0])  # no dropout in eval mode
    assert MultiHeadAttention(8, 2).dropout.p == 0.0  # default, like nn.MultiheadAttention


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"embed_dim": 8, "num_heads": 0}, ValueError, "num_heads must be a positive int; got 0"),
    ({"embed_dim": 0, "num_heads": 1}, ValueError, "embed_dim must be a positive int; got 0"),
    ({"embed_dim": 8, "num_heads": -2}, ValueError, "num_heads must be a positive int; got -2"),
    ({"embed_dim": -8, "num_heads": 2}, ValueError, "embed_dim must be a positive int; got -8"),
    ({"embed_dim": 8.0, "num_heads": 2}, TypeError, "embed_dim must be a positive int; got float"),
    ({"embed_dim": 8, "num_heads": 2, "score": "foo"}, ValueError, "score must be one of"),
    ({"embed_dim": 8, "num_heads": 2, "normalize": "softmin"}, ValueError, "normalize must be one of"),
    ({"embed_dim": 8, "num_heads": 2, "dropout": 1.0}, ValueError, r"dropout must be a probability in \[0, 1\)"),
    ({"embed_dim": 8, "num_heads": 2, "dropout": -0.1}, ValueError, "dropout must be a finite non-negative"),
])
def test_constructor_refuses_nonsense(kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        MultiHeadAttention(**kwargs)


def test_forward_errors_name_the_argument() -> None:
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 5, 8)
    with pytest.raises(TypeError, match="query must have the module's dtype"):
        mha(x.double())
    with pytest.raises(ValueError, match="key_padding must be bool"):
        mha(x, key_padding=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\) does not broadcast"):
        mha(x, mask=causal_mask(4))
    with pytest.raises(ValueError, match="one batch size B"):
        mha(x, torch.randn(3, 5, 8))


def test_half_precision_module_matches_float32() -> None:
    mha = MultiHeadAttention(64, 4)
    x = torch.randn(2, 6, 64) * 4
    ref, _ = mha(x)
    out, w = mha.half()(x.half())
    assert out.dtype == w.dtype == torch.float16
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)
