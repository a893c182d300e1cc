"""Tests for attnkit.classic.fast_weights: the fast-weight programmer is causal linear attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnkit.classic.fast_weights import (
    FastWeightProgrammer,
    capacity_curve,
    causal_linear_attention,
    decay_mask,
    decayed_linear_attention,
    elu_feature_map,
    fast_weight_programmer,
    linear_attention,
    linear_attention_recurrent,
    random_pairs,
    retrieval_error,
)
from attnkit.core import attend
from attnkit.masks import causal_mask


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 6), st.integers(1, 6), st.integers(0, 3), st.integers(0, 10_000))
def test_fast_weights_equal_causal_linear_attention_float64(L, d, dv, batch, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (batch,) if batch else ()
    q, k = (torch.randn(*shape, L, d, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(*shape, L, dv, generator=g, dtype=torch.float64)
    y = fast_weight_programmer(q, k, v)
    ref, _ = attend(q, k, v, score="dot", normalize="none", mask=causal_mask(L))
    assert y.shape == (*shape, L, dv)
    assert (y - ref).abs().max().item() < 1e-5
    assert (y - causal_linear_attention(q, k, v)).abs().max().item() < 1e-5


def test_fast_weights_match_a_numpy_loop_and_the_final_state():
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((7, 3)), rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    W = np.zeros((2, 3))
    ref = []
    for t in range(7):
        W = W + np.outer(v[t], k[t])
        ref.append(W @ q[t])
    y, W_L = fast_weight_programmer(*(torch.from_numpy(a) for a in (q, k, v)), return_state=True)
    np.testing.assert_allclose(y.numpy(), np.array(ref), atol=1e-12)
    np.testing.assert_allclose(W_L.numpy(), W, atol=1e-12)
    np.testing.assert_allclose(W_L.numpy(), v.T @ k, atol=1e-12)  # W_L = sum_t v_t k_t^T


def test_initial_fast_weights_add_a_constant_read():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 5, n, generator=g, dtype=torch.float64) for n in (3, 3, 4))
    W0 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    y = fast_weight_programmer(q, k, v, W0=W0)
    torch.testing.assert_close(y, causal_linear_attention(q, k, v) + q @ W0.T)


def test_module_recurrent_and_parallel_forms_agree_and_training_reduces_the_loss():
    torch.manual_seed(0)
    model = FastWeightProgrammer(6, 8, 3).double()
    x = torch.randn(4, 10, 6, dtype=torch.float64)
    torch.testing.assert_close(model(x), model(x, recurrent=True))
    # toy task: output the running mean of a linear function of the inputs seen so far
    target = torch.cumsum(x[..., :3], dim=1) / torch.arange(1, 11, dtype=torch.float64)[:, None]
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_retrieval_orthogonal_keys_are_exact_random_keys_follow_sqrt_n_over_d():
    k, v = random_pairs(16, 32, 8, n_trials=5, orthogonal=True)
    torch.testing.assert_close(k @ k.transpose(-2, -1), torch.eye(16, dtype=torch.float64).expand(5, 16, 16))
    assert retrieval_error(k, v).max() < 1e-12
    k, v = random_pairs(65, 64, 32, n_trials=30, seed=1)
    err = retrieval_error(k, v).mean().item()
    assert err == pytest.approx(math.sqrt(64 / 64), rel=0.1)
    # the explicit matrix memory gives the same recall as the attention form
    W = v[0].T @ k[0]  # (dv, d)
    ref = ((k[0] @ W.T - v[0]).norm(dim=-1) / v[0].norm(dim=-1)).mean()
    torch.testing.assert_close(retrieval_error(k[0], v[0]), ref)


def test_capacity_curve_grows_with_pairs_and_shrinks_with_key_width():
    c = capacity_curve([16, 64], [1, 8, 32], n_trials=10)
    assert c.shape == (2, 3)
    assert c[:, 0].max() < 1e-12  # one pair is stored perfectly
    assert (c[:, 1:].diff(dim=1) > 0).all() and (c[0, 1:] > c[1, 1:]).all()
    orth = capacity_curve([16], [8, 32], orthogonal=True, n_trials=3)
    assert orth[0, 0] < 1e-12 and torch.isnan(orth[0, 1])


def numpy_decayed_loop(q, k, v, lam):
    """W_t = lam W_{t-1} + v_t k_t^T, y_t = W_t q_t, in float64 NumPy."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    W = np.zeros((v.shape[-1], q.shape[-1]))
    ys = []
    for t in range(q.shape[0]):
        W = lam * W + np.outer(v[t], k[t])
        ys.append(W @ q[t])
    return np.stack(ys)


@pytest.mark.parametrize("lam", [1.0, 0.9, 0.5, 0.01])
def test_decayed_fast_weights_are_attention_with_a_decaying_causal_mask(lam):
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(9, n, generator=g, dtype=torch.float64) for n in (4, 4, 3))
    ref = numpy_decayed_loop(q, k, v, lam)
    np.testing.assert_allclose(fast_weight_programmer(q, k, v, decay=lam).numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(decayed_linear_attention(q, k, v, lam).numpy(), ref, atol=1e-12)
    D = decay_mask(9, lam)
    assert torch.equal(D == 0, ~causal_mask(9))  # zero exactly above the diagonal
    torch.testing.assert_close(D[5, 2], torch.tensor(lam**3, dtype=torch.float64))
    torch.testing.assert_close(D.diagonal(), torch.ones(9, dtype=torch.float64))
    if lam == 1.0:
        torch.testing.assert_close(decayed_linear_attention(q, k, v, 1.0), causal_linear_attention(q, k, v))
    # batched, float32
    qb, kb, vb = (torch.randn(2, 6, n, generator=g) for n in (3, 3, 2))
    torch.testing.assert_close(decayed_linear_attention(qb, kb, vb, lam), fast_weight_programmer(qb, kb, vb, decay=lam),
                               atol=1e-5, rtol=1e-5)


def test_decayed_memory_forgets_old_pairs():
    k, v = random_pairs(8, 64, 16, seed=4)
    k, v = k[0], v[0]
    for lam, older_worse in ((1.0, False), (0.5, True)):
        y = fast_weight_programmer(k, k, v, decay=lam, return_state=True)[1]  # W_8
        recalled = k @ y.T  # (N, dv): read every stored key
        err = (recalled - v).norm(dim=-1) / v.norm(dim=-1)
        assert (err[0] > err[-1] + 0.5) == older_worse  # with decay the first pair has faded


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 10), st.integers(1, 5), st.integers(1, 4), st.integers(0, 10_000))
def test_linear_attention_parallel_and_recurrent_forms_agree_with_a_loop(L, d, dv, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(2, L, d, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, L, dv, generator=g, dtype=torch.float64)
    y_rec, (S, z) = linear_attention_recurrent(q, k, v, return_state=True)
    torch.testing.assert_close(linear_attention(q, k, v), y_rec)
    fq, fk = (torch.nn.functional.elu(t) + 1 for t in (q, k))
    for b in range(2):
        for t in range(L):  # y_t = sum_{j<=t} (phi(q_t).phi(k_j)) v_j / sum_{j<=t} phi(q_t).phi(k_j)
            w = fk[b, : t + 1] @ fq[b, t]
            torch.testing.assert_close(y_rec[b, t], (w / w.sum()) @ v[b, : t + 1])
    torch.testing.assert_close(S, v.transpose(-2, -1) @ fk)  # S_L = sum_t v_t phi(k_t)^T
    torch.testing.assert_close(z, fk.sum(-2))  # z_L = sum_t phi(k_t)


def test_linear_attention_without_normaliser_and_feature_map_is_the_fast_weight_programmer():
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(7, n, generator=g, dtype=torch.float64) for n in (3, 3, 2))
    assert (elu_feature_map(q) > 0).all()
    # with the normaliser the output is a convex combination: it stays inside the values' range
    y = linear_attention(q, k, v)
    assert (y <= v.amax(0) + 1e-12).all() and (y >= v.amin(0) - 1e-12).all()
    # identity feature map, weights not normalised = fast weights; normalised, it is not
    ident = linear_attention(q, k, v, feature_map=lambda x: x)
    assert not torch.allclose(ident, fast_weight_programmer(q, k, v))
    num = attend(q, k, v, score="dot", normalize="none", mask=causal_mask(7))[0]
    torch.testing.assert_close(num, fast_weight_programmer(q, k, v))
    # non-causal form: all keys for every query (Lq != Lk allowed)
    full = linear_attention(q[:3], k, v, causal=False)
    w = elu_feature_map(q[:3]) @ elu_feature_map(k).T
    torch.testing.assert_close(full, (w / w.sum(-1, keepdim=True)) @ v)


def test_fast_weight_programmer_reading_with_the_raw_input():
    torch.manual_seed(1)
    model = FastWeightProgrammer(5, 5, 3, query="input").double()
    x = torch.randn(2, 7, 5, dtype=torch.float64)
    k, v = model.slow(x).split([5, 3], dim=-1)
    torch.testing.assert_close(model(x), fast_weight_programmer(x, k, v))  # y_t = W_t x_t
    torch.testing.assert_close(model(x), model(x, recurrent=True))
    assert model.slow.out_features == 8  # keys and values only: no query projection
    assert FastWeightProgrammer(5, 4, 3).slow.out_features == 11  # learned query: k, v and q
    with pytest.raises(ValueError, match="key_dim must equal in_dim"):
        FastWeightProgrammer(5, 4, 3, query="input")
    with pytest.raises(ValueError, match="query must be"):
        FastWeightProgrammer(5, 5, 3, query="cosine")


def test_bad_inputs_raise_clear_errors():
    q = torch.randn(5, 3)
    for bad in (0.0, 1.5, -0.1, True, "0.9"):
        with pytest.raises(ValueError, match="decay"):
            fast_weight_programmer(q, q, torch.randn(5, 2), decay=bad)
    with pytest.raises(ValueError, match="decay"):
        decay_mask(4, 2.0)
    with pytest.raises(ValueError, match="one query, key and value per step"):
        linear_attention(q, torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="width d"):
        fast_weight_programmer(q, torch.randn(5, 4), torch.randn(5, 2))
    with pytest.raises(ValueError, match="one query, key and value per step"):
        fast_weight_programmer(q, q, torch.randn(4, 2))
    with pytest.raises(TypeError, match="same dtype"):
        causal_linear_attention(q, q.double(), torch.randn(5, 2))
    with pytest.raises(TypeError, match="floating-point"):
        causal_linear_attention(q, q, torch.ones(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fast_weight_programmer(torch.randn(3), torch.randn(3), torch.randn(3))
    with pytest.raises(ValueError, match="W0"):
        fast_weight_programmer(q, q, torch.randn(5, 2), W0=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="orthogonal"):
        random_pairs(10, 4, 2, orthogonal=True)
    with pytest.raises(ValueError, match="n_pairs"):
        random_pairs(0, 4, 2)
    with pytest.raises(ValueError, match="one value per key"):
        retrieval_error(torch.randn(4, 3), torch.randn(5, 2))
