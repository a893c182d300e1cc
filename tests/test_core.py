"""attnkit.attend against independent references, its properties, gradients and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attnkit import attend, attention_scores, causal_mask


def loop_reference(q, k, v, score, mask=None, temperature=1.0, **params) -> tuple[np.ndarray, np.ndarray]:
    """An explicit float64 double loop over (query, key) pairs in NumPy: nothing shared with attnkit."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    Lq, Lk = q.shape[0], k.shape[0]
    s = np.zeros((Lq, Lk))
    for i in range(Lq):
        for j in range(Lk):
            if score == "dot":
                s[i, j] = sum(q[i, t] * k[j, t] for t in range(q.shape[1]))
            elif score == "scaled_dot":
                s[i, j] = sum(q[i, t] * k[j, t] for t in range(q.shape[1])) / math.sqrt(q.shape[1])
            elif score == "general":
                s[i, j] = q[i] @ np.asarray(params["W"], dtype=np.float64) @ k[j]
            elif score == "additive":
                Wq, Wk, w = (np.asarray(params[n], dtype=np.float64) for n in ("W_q", "W_k", "w"))
                s[i, j] = w @ np.tanh(Wq @ q[i] + Wk @ k[j])
            elif score == "cosine":
                s[i, j] = q[i] @ k[j] / (np.linalg.norm(q[i]) * np.linalg.norm(k[j]))
            elif score == "gaussian":
                s[i, j] = -np.sum((q[i] - k[j]) ** 2)
    s = s / temperature
    keep = np.ones((Lq, Lk), bool) if mask is None else np.asarray(mask, bool)
    w = np.zeros((Lq, Lk))
    for i in range(Lq):
        idx = np.flatnonzero(keep[i])
        if len(idx):
            e = np.exp(s[i, idx] - s[i, idx].max())
            w[i, idx] = e / e.sum()
    return w @ v, w


SCORES = ["dot", "scaled_dot", "general", "additive", "cosine", "gaussian"]


def _params(score: str, d: int, dk: int, g: torch.Generator) -> dict:
    if score == "general":
        return {"W": torch.randn(d, dk, generator=g, dtype=torch.float64)}
    if score == "additive":
        return {"W_q": torch.randn(7, d, generator=g, dtype=torch.float64),
                "W_k": torch.randn(7, dk, generator=g, dtype=torch.float64),
                "w": torch.randn(7, generator=g, dtype=torch.float64)}
    return {}


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("masked", [False, True])
def test_attend_matches_float64_loop(score: str, masked: bool) -> None:
    g = torch.Generator().manual_seed(1)
    q = torch.randn(4, 5, generator=g, dtype=torch.float64)
    k = torch.randn(6, 5, generator=g, dtype=torch.float64)
    v = torch.randn(6, 3, generator=g, dtype=torch.float64)
    mask = torch.rand(4, 6, generator=g) > 0.4 if masked else None
    if mask is not None:
        mask[1] = False  # one fully masked row
    params = _params(score, 5, 5, g)
    out, w = attend(q, k, v, score=score, mask=mask, temperature=0.7, score_params=params)
    ref_out, ref_w = loop_reference(q, k, v, score, mask, 0.7, **{n: t.numpy() for n, t in params.items()})
    np.testing.assert_allclose(w.numpy(), ref_w, atol=1e-10)
    np.testing.assert_allclose(out.numpy(), ref_out, atol=1e-10)


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("causal", [False, True])
def test_attend_matches_torch_sdpa(dtype: torch.dtype, atol: float, causal: bool) -> None:
    q, k, v = (torch.randn(2, 3, 7, 16, dtype=dtype) for _ in range(3))
    mask = causal_mask(7) if causal else None
    out, _ = attend(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(out, ref, atol=atol, rtol=atol)


def test_float_mask_is_added_to_scores() -> None:
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    bias = torch.randn(3, 5)
    bias[0, 2] = float("-inf")
    out, w = attend(q, k, v, mask=bias)
    ref = F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=bias)[0]
    torch.testing.assert_close(out, ref)
    assert w[0, 2] == 0


def test_callable_score_and_normalizer() -> None:
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    _, w = attend(q, k, v, score=lambda a, b: -(a[:, None] - b[None]).abs().sum(-1),
                    normalize=lambda s, m, d: torch.softmax(s, d))
    ref_w = torch.softmax(-torch.cdist(q, k, p=1), -1)
    torch.testing.assert_close(w, ref_w)


def test_hard_and_sparsemax_rows() -> None:
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 6, 4), torch.randn(2, 6, 5)
    _, w = attend(q, k, v, normalize="hard")
    s = attention_scores(q, k)
    assert torch.equal(w.argmax(-1), s.argmax(-1)) and torch.equal(w.sum(-1), torch.ones(2, 3))
    _, w = attend(q, k, v, normalize="sparsemax", temperature=0.1)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3))
    assert (w == 0).any()


def test_none_normalizer_is_masked_scores() -> None:
    q, k, v = (torch.randn(5, n, dtype=torch.float64) for n in (4, 4, 3))
    out, _ = attend(q, k, v, score="dot", normalize="none", mask=causal_mask(5))
    torch.testing.assert_close(out, torch.tril(q @ k.T) @ v)


def test_temperature_limits() -> None:
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    _, cold = attend(q, k, v, temperature=1e-4)
    _, hard = attend(q, k, v, normalize="hard")
    torch.testing.assert_close(cold, hard, atol=1e-4, rtol=0)
    _, hot = attend(q, k, v, temperature=1e6)
    torch.testing.assert_close(hot, torch.full_like(hot, 1 / 5), atol=1e-5, rtol=0)


def test_broadcast_batch_dims() -> None:
    q = torch.randn(2, 1, 3, 4)
    k = torch.randn(1, 5, 6, 4)
    v = torch.randn(6, 2)
    out, w = attend(q, k, v)
    assert out.shape == (2, 5, 3, 2) and w.shape == (2, 5, 3, 6)


# ---- properties (hypothesis) -----------------------------------------------------------------

shapes = st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 7), st.integers(1, 5))


@given(shape=shapes, seed=st.integers(0, 10_000), p_keep=st.floats(0.0, 1.0))
def test_rows_sum_to_one_or_zero(shape, seed, p_keep) -> None:
    B, Lq, Lk, d = shape
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, n, d, generator=g, dtype=torch.float64) for n in (Lq, Lk, Lk))
    mask = torch.rand(B, Lq, Lk, generator=g) < p_keep
    out, w = attend(q, k, v, mask=mask)
    sums = w.sum(-1)
    expected = mask.any(-1).to(sums.dtype)
    torch.testing.assert_close(sums, expected)
    assert not torch.isnan(out).any()
    assert (w[~mask] == 0).all()


@given(shape=shapes, seed=st.integers(0, 10_000))
def test_permuting_keys_and_values_permutes_weights(shape, seed) -> None:
    B, Lq, Lk, d = shape
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, n, d, generator=g, dtype=torch.float64) for n in (Lq, Lk, Lk))
    perm = torch.randperm(Lk, generator=g)
    out, w = attend(q, k, v)
    out_p, w_p = attend(q, k[:, perm], v[:, perm])
    torch.testing.assert_close(out_p, out)  # the output does not depend on the order of the keys
    torch.testing.assert_close(w_p, w[..., perm])  # the weights move with their keys


@given(shape=shapes, seed=st.integers(0, 10_000), c=st.floats(-50, 50))
def test_adding_a_constant_to_a_row_of_scores_changes_nothing(shape, seed, c) -> None:
    B, Lq, Lk, d = shape
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, n, d, generator=g, dtype=torch.float64) for n in (Lq, Lk, Lk))
    row_shift = torch.full((B, Lq, 1), c, dtype=torch.float64)  # a float mask adds it to every score of a row
    _, w = attend(q, k, v)
    _, w_shift = attend(q, k, v, mask=row_shift)
    torch.testing.assert_close(w_shift, w)


# ---- gradients -------------------------------------------------------------------------------

@pytest.mark.parametrize("score", SCORES)
def test_gradcheck(score: str) -> None:
    g = torch.Generator().manual_seed(2)
    q = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 0, 1, 1, 1]], dtype=torch.bool)
    params = _params(score, 4, 4, g)
    assert torch.autograd.gradcheck(
        lambda q, k, v: attend(q, k, v, score=score, mask=mask, score_params=params)[0], (q, k, v))


def test_gradients_of_fully_masked_rows_are_finite() -> None:
    q, k, v = (torch.randn(4, 3, requires_grad=True) for _ in range(3))
    mask = torch.zeros(4, 4, dtype=torch.bool)
    out, _ = attend(q, k, v, mask=mask)
    out.sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()


# ---- bad input ------------------------------------------------------------------------------

def test_errors_name_the_argument_and_shapes() -> None:
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    rank_msg = r"q must have shape \(\.\.\., Lq, d\) \(at least 2 dimensions\); got shape \(4,"
    with pytest.raises(ValueError, match=rank_msg):
        attend(torch.randn(4), k, v)
    with pytest.raises(ValueError, match=r"q.shape\[-1\] = 3 but k.shape\[-1\] = 4"):
        attend(torch.randn(3, 3), k, v)
    with pytest.raises(ValueError, match=r"k.shape\[-2\] = 5 but v.shape\[-2\] = 6"):
        attend(q, k, torch.randn(6, 2))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 5\) does not broadcast to the scores' shape \(3,"):
        attend(q, k, v, mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"mask must be bool .* got dtype torch.int64"):
        attend(q, k, v, mask=torch.ones(3, 5, dtype=torch.long))
    with pytest.raises(TypeError, match=r"same dtype; got q: torch.float32, k: torch.float64"):
        attend(q, k.double(), v)
    with pytest.raises(TypeError, match="floating-point tensor; got dtype torch.int64"):
        attend(q.long(), k, v)
    with pytest.raises(TypeError, match="q must be a torch.Tensor; got list"):
        attend([[1.0]], k, v)
    with pytest.raises(ValueError, match=r"unknown score 'bilinear'; choose one of"):
        attend(q, k, v, score="bilinear")
    with pytest.raises(ValueError, match=r"unknown normalize 'softmin'"):
        attend(q, k, v, normalize="softmin")
    with pytest.raises(ValueError, match="temperature must be a finite positive number; got 0"):
        attend(q, k, v, temperature=0)
    with pytest.raises(ValueError, match=r"batch dimensions of q, k, v do not broadcast"):
        attend(torch.randn(2, 3, 4), torch.randn(3, 5, 4), torch.randn(3, 5, 2))
    with pytest.raises(ValueError, match=r"general score needs W of shape \(d, dk\) = \(4, 4\)"):
        attend(q, k, v, score="general", score_params={"W": torch.randn(3, 4)})
    with pytest.raises(TypeError, match="score 'general': wrong score_params"):
        attend(q, k, v, score="general")


def test_mixed_devices_error() -> None:
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    with pytest.raises(ValueError, match="same device; got q on cpu, k on meta, v on cpu"):
        attend(q, k.to("meta"), v)
