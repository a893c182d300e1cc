"""The core at the edges, against torch SDPA: half precision, NaN, zero keys, mask dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnkit import (
    attend,
    attention_scores,
    causal_mask,
    hardmax,
    masked_softmax,
    no_normalize,
    scaled_dot_score,
    softmax_with_temperature,
    sparsemax,
)
from attnkit.efficient import chunked_attention
from attnkit.flash import online_softmax

HALF = [torch.float16, torch.bfloat16]
NAN = float("nan")


# ---- float16 / bfloat16: scores as SDPA computes them --------------------------------------------

@pytest.mark.parametrize("dtype", HALF)
def test_large_equal_logits_stay_finite_like_sdpa(dtype: torch.dtype) -> None:
    # q.k = 40 * 40 * 64 = 102400 overflows float16 (max 65504); the scaled logit 12800 does not
    q = torch.full((2, 4, 64), 40.0, dtype=dtype, requires_grad=True)
    k = torch.full((2, 4, 64), 40.0, dtype=dtype, requires_grad=True)
    v = torch.randn(2, 4, 64).to(dtype).requires_grad_()
    out, w = attend(q, k, v)
    ref = F.scaled_dot_product_attention(q, k, v)
    assert out.dtype == w.dtype == dtype
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    torch.testing.assert_close(out, ref)
    out.float().sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    s = attention_scores(q.detach(), k.detach())
    assert s.dtype == dtype and torch.equal(s.float(), torch.full((2, 4, 4), 12800.0))
    assert torch.isfinite(scaled_dot_score(q.detach(), k.detach())).all()


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision_error_is_no_worse_than_sdpa(dtype: torch.dtype, causal: bool) -> None:
    g = torch.Generator().manual_seed(3)
    # logits up to about 16, where rounding the scores to half precision would cost 1e-2
    q, k, v = ((torch.randn(2, 3, 64, 64, generator=g) * s).to(dtype) for s in (2.0, 2.0, 1.0))
    mask = causal_mask(64) if causal else None
    exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=causal)
    ours = (attend(q, k, v, mask=mask)[0].double() - exact).abs().max().item()
    sdpa = (F.scaled_dot_product_attention(q, k, v, is_causal=causal).double() - exact).abs().max().item()
    assert ours <= 1.25 * sdpa + 1e-4, (ours, sdpa)


@pytest.mark.parametrize("dtype", HALF)
def test_half_precision_matches_float32_computation(dtype: torch.dtype) -> None:
    q, k, v = (torch.randn(3, 9, 16).to(dtype) for _ in range(3))
    for score in ("dot", "scaled_dot", "cosine", "gaussian"):
        out, w = attend(q, k, v, score=score, temperature=4.0)
        ref_out, ref_w = attend(q.float(), k.float(), v.float(), score=score, temperature=4.0)
        assert out.dtype == dtype
        torch.testing.assert_close(out, ref_out.to(dtype), atol=0, rtol=0)
        torch.testing.assert_close(w, ref_w.to(dtype), atol=0, rtol=0)


def test_chunked_attention_float16_over_70000_equal_keys() -> None:
    # 70,000 equal scores: a float16 running sum would pass 65504 and overflow
    n = 70_000
    q = torch.ones(1, 2, 8, dtype=torch.float16)
    k = torch.ones(1, n, 8, dtype=torch.float16)
    v = torch.linspace(-1, 1, n).repeat(8, 1).T[None].contiguous().to(torch.float16)  # (1, N, 8)
    out = chunked_attention(q, k, v, key_chunk=4096)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    ref = v.double().mean(-2, keepdim=True).expand(1, 2, 8)
    torch.testing.assert_close(out.double(), ref, atol=1e-3, rtol=0)
    sdpa = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, sdpa, atol=1e-3, rtol=0)


# ---- NaN in, NaN out -----------------------------------------------------------------------------

def _scores_with_nan() -> torch.Tensor:
    s = torch.randn(3, 5, dtype=torch.float64)
    s[1, 2] = NAN
    return s


@pytest.mark.parametrize("norm", [masked_softmax, sparsemax, hardmax])
def test_a_nan_score_makes_its_row_nan(norm) -> None:
    s = _scores_with_nan()
    w = norm(s)
    assert torch.isnan(w[1]).all()
    assert not torch.isnan(w[[0, 2]]).any()
    torch.testing.assert_close(w[[0, 2]], norm(s[[0, 2]]))
    if norm is masked_softmax:
        torch.testing.assert_close(w, torch.softmax(s, -1), equal_nan=True)


@pytest.mark.parametrize("norm", [masked_softmax, sparsemax, hardmax])
def test_a_masked_out_nan_changes_nothing(norm) -> None:
    s = _scores_with_nan()
    keep = torch.ones(3, 5, dtype=torch.bool)
    keep[1, 2] = False
    w = norm(s, keep)
    assert not torch.isnan(w).any()
    torch.testing.assert_close(w, norm(torch.nan_to_num(s, nan=0.0), keep))


@pytest.mark.parametrize("norm", [masked_softmax, sparsemax, hardmax])
def test_nan_in_a_float_mask_makes_its_row_nan(norm) -> None:
    s = torch.randn(3, 5)
    bias = torch.zeros(3, 5)
    bias[0, 1] = NAN
    bias[2, 4] = float("-inf")
    w = norm(s, bias)
    assert torch.isnan(w[0]).all() and not torch.isnan(w[1:]).any()
    assert w[2, 4] == 0


def test_nan_in_a_float_mask_like_sdpa() -> None:
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    bias = torch.zeros(3, 5)
    bias[0, 1] = NAN
    out, _ = attend(q, k, v, mask=bias)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    assert torch.isnan(out[0]).all()
    torch.testing.assert_close(out, ref, equal_nan=True)


def test_online_softmax_propagates_nan() -> None:
    x = np.random.default_rng(0).normal(size=(3, 10))
    x[2, 7] = np.nan
    w = online_softmax(x, block_size=3)
    assert np.isnan(w[2]).all() and not np.isnan(w[:2]).any()
    np.testing.assert_allclose(w[:2], torch.softmax(torch.from_numpy(x[:2]), -1).numpy(), atol=1e-12)
    empty = online_softmax(np.full((1, 4), -np.inf))
    assert (empty == 0).all()


def test_attend_with_a_nan_query_gives_nan_for_that_query_only() -> None:
    q, k, v = torch.randn(4, 8), torch.randn(6, 8), torch.randn(6, 3)
    q[2, 0] = NAN
    out, w = attend(q, k, v)
    ref = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]
    assert torch.isnan(out[2]).all() and torch.isnan(w[2]).all()
    torch.testing.assert_close(out, ref, equal_nan=True)


def test_no_normalize_is_elementwise_with_nan() -> None:
    s = _scores_with_nan()
    w = no_normalize(s)
    assert torch.isnan(w[1, 2]) and torch.isnan(w).sum() == 1


# ---- no keys (Lk = 0) and no queries ---------------------------------------------------------------

@pytest.mark.parametrize("normalize", ["softmax", "sparsemax", "hard", "none"])
def test_zero_keys_give_zeros_like_sdpa(normalize: str) -> None:
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 0, 4), torch.randn(2, 0, 5)
    out, w = attend(q, k, v, normalize=normalize, mask=causal_mask(3, 0))
    ref = F.scaled_dot_product_attention(q, k, v)
    assert w.shape == (2, 3, 0) and out.shape == (2, 3, 5)
    torch.testing.assert_close(out, ref)
    assert torch.equal(out, torch.zeros(2, 3, 5))


def test_zero_keys_and_zero_queries_elsewhere() -> None:
    q, k, v = torch.randn(3, 4), torch.randn(0, 4), torch.randn(0, 5)
    assert torch.equal(chunked_attention(q, k, v), torch.zeros(3, 5))
    assert masked_softmax(torch.randn(3, 0)).shape == (3, 0)
    out, w = attend(torch.randn(0, 4), torch.randn(6, 4), torch.randn(6, 5))
    assert out.shape == (0, 5) and w.shape == (0, 6)


def test_nadaraya_watson_with_no_training_points_predicts_zero() -> None:
    from attnkit.classic import nadaraya_watson

    y, w = nadaraya_watson(torch.linspace(0, 1, 5), torch.empty(0), torch.empty(0))
    assert torch.equal(y, torch.zeros(5)) and w.shape == (5, 0)


# ---- masks of another float dtype, temperatures -----------------------------------------------------

@pytest.mark.parametrize("mask_dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_float_mask_of_another_dtype_is_accepted(mask_dtype: torch.dtype) -> None:
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    bias = torch.randn(3, 5)
    bias[0, 2] = float("-inf")
    out, w = attend(q, k, v, mask=bias.to(mask_dtype))
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(mask_dtype).float())
    assert out.dtype == w.dtype == torch.float32
    torch.testing.assert_close(out, ref)
    half = attend(q.half(), k.half(), v.half(), mask=bias.to(mask_dtype))[0]
    torch.testing.assert_close(half, F.scaled_dot_product_attention(q.half(), k.half(), v.half(),
                                                                   attn_mask=bias.to(mask_dtype).float()),
                               atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_temperatures_are_refused(bad: float) -> None:
    s = torch.randn(2, 3)
    with pytest.raises(ValueError, match="temperature must be a finite positive number"):
        softmax_with_temperature(s, bad)
    with pytest.raises(ValueError, match="temperature must be a finite positive number"):
        attend(s, s, s, temperature=bad)


def test_softmax_with_temperature_in_half_precision() -> None:
    s = torch.tensor([[60000.0, 0.0, -60000.0]], dtype=torch.float16)
    w = softmax_with_temperature(s, 0.5)  # s / T overflows float16 but not float32
    assert w.dtype == torch.float16 and torch.equal(w, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float16))
