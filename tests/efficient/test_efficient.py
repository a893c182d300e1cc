"""Tests for attnkit.efficient: every method against exact attention (attend, SDPA, float64 loops)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit import attend, causal_mask
from attnkit.classic.fast_weights import fast_weight_programmer
from attnkit.efficient import (
    attention_singular_values,
    chunked_attention,
    favor_features,
    fixed_sparse_mask,
    linear_attention,
    linear_attention_recurrent,
    linear_attention_step,
    linformer_attention,
    linformer_projection,
    local_attention,
    lsh_attention,
    lsh_attention_mask,
    lsh_buckets,
    orthogonal_gaussian,
    performer_attention,
    random_rotations,
    row_sum_normalize,
    shared_keys,
    sliding_window_mask,
)
from attnkit.efficient._common import relative_error
from attnkit.efficient.data import random_qkv, smooth_sequence
from attnkit.efficient.reformer import SELF_SCORE
from attnkit.exercises.efficient import check_favor_features, crossover_length


def qkv(*shape: int, dv: int | None = None, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    *batch, L, d = shape
    q, k = (torch.randn(*batch, L, d, generator=g, dtype=dtype) for _ in range(2))
    v = torch.randn(*batch, L, dv or d, generator=g, dtype=dtype)
    return q, k, v


def loop_softmax_attention(q, k, v, mask=None):
    """Independent reference: explicit loops in float64 over one (L, d) problem."""
    L, N = q.shape[0], k.shape[0]
    out = torch.zeros(L, v.shape[1], dtype=torch.float64)
    for i in range(L):
        js = [j for j in range(N) if mask is None or mask[i, j]]
        s = [float(q[i].double() @ k[j].double()) / math.sqrt(q.shape[1]) for j in js]
        if not js:
            continue
        mx = max(s)
        w = [math.exp(x - mx) for x in s]
        z = sum(w)
        for j, wj in zip(js, w, strict=True):
            out[i] += wj / z * v[j].double()
    return out


# ------------------------------------------------------------------ chunked (exact)

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunks", [(7, 5), (64, 64), (1000, 3)])
def test_chunked_matches_sdpa(causal, chunks):
    q, k, v = qkv(2, 3, 50, 8, dv=6)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    out = chunked_attention(q, k, v, key_chunk=chunks[0], query_chunk=chunks[1], causal=causal)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_chunked_matches_loop_and_float32():
    q, k, v = qkv(13, 4, dv=3)
    torch.testing.assert_close(chunked_attention(q, k[:9], v[:9], key_chunk=4), loop_softmax_attention(q, k[:9], v[:9]))
    q32, k32, v32 = (t.float() for t in (q, k, v))
    out = chunked_attention(q32 * 10, k32, v32, key_chunk=3)  # large logits: the online max keeps exp finite
    torch.testing.assert_close(out, attend(q32 * 10, k32, v32)[0], rtol=1e-5, atol=1e-5)


@given(L=st.integers(1, 40), N=st.integers(1, 40), kc=st.integers(1, 16), qc=st.integers(1, 16))
def test_chunked_any_chunking(L, N, kc, qc):
    g = torch.Generator().manual_seed(L * 100 + N)
    q, k, v = torch.randn(L, 4, generator=g), torch.randn(N, 4, generator=g), torch.randn(N, 2, generator=g)
    torch.testing.assert_close(chunked_attention(q, k, v, key_chunk=kc, query_chunk=qc), attend(q, k, v)[0],
                               rtol=1e-5, atol=1e-6)


def test_chunked_gradients():
    q, k, v = (t.requires_grad_() for t in qkv(6, 3, dv=2))
    assert torch.autograd.gradcheck(lambda a, b, c: chunked_attention(a, b, c, key_chunk=4, causal=True), (q, k, v))


# ------------------------------------------------------------------ local and block-sparse

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("L,w", [(37, 5), (16, 4), (8, 20), (1, 1)])
def test_local_matches_masked_attend(L, w, causal):
    q, k, v = qkv(2, L, 4, dv=3)
    mask = sliding_window_mask(L, w, causal=causal)
    torch.testing.assert_close(local_attention(q, k, v, window=w, causal=causal), attend(q, k, v, mask=mask)[0])
    torch.testing.assert_close(local_attention(q[0], k[0], v[0], window=w, causal=causal),
                               loop_softmax_attention(q[0], k[0], v[0], mask))


def test_masks_patterns():
    m = sliding_window_mask(6, 1)
    assert m.sum().item() == 6 + 2 * 5  # the band: diagonal and two neighbours
    g = sliding_window_mask(6, 0, global_tokens=(0,))
    assert g[0].all() and g[:, 0].all() and g[3, 3] and not g[3, 4]
    f = fixed_sparse_mask(8, 4, n_summary=1)
    assert f[0, :4].all() and f[0, 7] and not f[0, 5]  # own block + the last position of every block
    assert fixed_sparse_mask(8, 4, causal=True).triu(1).sum() == 0
    # full window = full attention
    q, k, v = qkv(10, 3)
    torch.testing.assert_close(local_attention(q, k, v, window=10), attend(q, k, v)[0])


# ------------------------------------------------------------------ Reformer

def reformer_reference(qk, v, rot, n_buckets, chunk, causal=False, exclude_self=True):
    L = qk.shape[-2]
    k = shared_keys(qk)
    P = lsh_attention_mask(lsh_buckets(k, rot, n_buckets), chunk, causal=causal)
    bias = torch.zeros(P.shape, dtype=qk.dtype).masked_fill(~P, float("-inf"))
    if exclude_self:
        bias = bias + SELF_SCORE * torch.eye(L, dtype=qk.dtype)
    return attend(qk, k, v, score="dot", mask=bias)[0]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("rounds", [1, 3])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_lsh_equals_attend_on_its_mask(causal, rounds, exclude_self):
    qk, _, v = qkv(2, 64, 8, dv=5)
    rot = random_rotations(8, 4, rounds, seed=3, dtype=torch.float64)
    out = lsh_attention(qk, v, n_buckets=4, chunk_size=16, causal=causal, rotations=rot, exclude_self=exclude_self)
    torch.testing.assert_close(out, reformer_reference(qk, v, rot, 4, 16, causal, exclude_self))


def test_lsh_one_chunk_is_exact():
    qk, _, v = qkv(48, 6)
    k = shared_keys(qk)
    ref = attend(qk, k, v, score="dot", mask=SELF_SCORE * torch.eye(48, dtype=torch.float64))[0]
    torch.testing.assert_close(lsh_attention(qk, v, n_buckets=4, n_rounds=2, chunk_size=48, seed=0), ref)


def test_lsh_buckets_are_angular():
    x = torch.randn(100, 5, dtype=torch.float64)
    rot = random_rotations(5, 6, 2, seed=0, dtype=torch.float64)
    h = lsh_buckets(x, rot, 6)
    assert h.shape == (2, 100) and h.min() >= 0 and h.max() < 6
    assert torch.equal(lsh_buckets(3.0 * x, rot, 6), h)  # only the direction matters
    assert torch.equal(lsh_buckets(x, rot, 1), torch.zeros(2, 100, dtype=torch.long))


def test_lsh_error_falls_with_rounds():
    q, _, v = smooth_sequence(512, 16, seed=1, dtype=torch.float64)
    k = shared_keys(q)
    ref = attend(q, k, v, score="dot", mask=SELF_SCORE * torch.eye(512, dtype=torch.float64))[0]
    errs = [relative_error(lsh_attention(q, v, n_buckets=16, n_rounds=r, chunk_size=32, seed=0), ref)
            for r in (1, 4, 8)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.1 < errs[0]


# ------------------------------------------------------------------ Linformer

def test_linformer_is_attend_on_projected_keys():
    q, k, v = qkv(2, 40, 6, dv=3)
    E = linformer_projection(40, 8, seed=0, dtype=torch.float64)
    torch.testing.assert_close(linformer_attention(q, k, v, E=E), attend(q, E @ k, E @ v)[0])
    F = linformer_projection(40, 8, seed=1, dtype=torch.float64)
    torch.testing.assert_close(linformer_attention(q, k, v, E=E, F=F), attend(q, E @ k, F @ v)[0])


def test_linformer_pool_exact_at_full_rank_and_error_falls():
    q, k, v = qkv(30, 4)
    torch.testing.assert_close(linformer_attention(q, k, v, r=30, kind="pool"), attend(q, k, v)[0])
    qs, ks, vs = smooth_sequence(512, 16, seed=0, dtype=torch.float64)
    ref = attend(qs, ks, vs)[0]
    errs = [relative_error(linformer_attention(qs, ks, vs, r=r, kind="pool"), ref) for r in (16, 64, 256)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.05


def test_pool_projection_rows_are_averages():
    P = linformer_projection(10, 3, kind="pool")
    torch.testing.assert_close(P.sum(-1), torch.ones(3))
    assert ((P > 0).sum(0) == 1).all()  # every position in exactly one segment


def test_singular_values_decay_faster_on_structure():
    qs, ks, _ = smooth_sequence(256, 16, seed=0, dtype=torch.float64)
    qr, kr, _ = random_qkv(256, 16, seed=0, dtype=torch.float64)
    s_struct = attention_singular_values(qs, ks)
    s_rand = attention_singular_values(qr * 2, kr * 2)
    assert s_struct.shape == (256,) and (s_struct[:-1] >= s_struct[1:] - 1e-12).all()
    energy = lambda s: (s[:32] ** 2).sum() / (s ** 2).sum()  # noqa: E731
    assert energy(s_struct) > 0.95 and energy(s_rand) < 0.8


# ------------------------------------------------------------------ Performer

def test_orthogonal_features_are_orthogonal_blocks():
    W = orthogonal_gaussian(10, 4, seed=0, dtype=torch.float64)
    U = W[:4] / W[:4].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(U @ U.T, torch.eye(4, dtype=torch.float64))
    assert W.shape == (10, 4)


@pytest.mark.parametrize("orthogonal", [True, False])
def test_favor_unbiased(orthogonal):
    """The mean over n draws of phi(x).phi(y) converges to exp(x.y), within ~ c / sqrt(n)."""
    g = torch.Generator().manual_seed(0)
    x, y = 0.5 * torch.randn(4, 6, generator=g, dtype=torch.float64), 0.5 * torch.randn(5, 6, generator=g,
                                                                                         dtype=torch.float64)
    exact = torch.exp(x @ y.T)
    n_draws = 4096
    # n_draws independent draws of m = 6 features: one orthogonal block each
    om = orthogonal_gaussian(6 * n_draws, 6, orthogonal=orthogonal, seed=0, dtype=torch.float64)
    om = om.reshape(n_draws, 6, 6)  # (n, m, d)
    fx = torch.exp(torch.einsum("id,nmd->nim", x, om) - (x * x).sum(-1)[:, None] / 2) / math.sqrt(6)  # (n, 4, m)
    fy = torch.exp(torch.einsum("jd,nmd->njm", y, om) - (y * y).sum(-1)[:, None] / 2) / math.sqrt(6)  # (n, 5, m)
    torch.testing.assert_close(fx[3], favor_features(x, om[3]))
    draws = fx @ fy.transpose(-2, -1)  # (n, 4, 5)
    sd = draws.std(0)
    errs = []
    for n in (64, 1024, 4096):
        err = (draws[:n].mean(0) - exact).abs()
        assert (err <= 5 * sd / math.sqrt(n)).all(), n  # within 5 standard errors, a bound that shrinks as 1/sqrt(n)
        errs.append(float(err.max()))
    assert errs[-1] < errs[0] / 3


@pytest.mark.parametrize("causal", [False, True])
def test_performer_is_attend_with_features(causal):
    q, k, v = qkv(2, 33, 8, dv=3)
    om = orthogonal_gaussian(16, 8, seed=0, dtype=torch.float64)
    phq, phk = favor_features(q / 8 ** 0.25, om), favor_features(k / 8 ** 0.25, om)
    mask = causal_mask(33) if causal else None
    ref = attend(phq, phk, v, score="dot", normalize=row_sum_normalize, mask=mask)[0]
    torch.testing.assert_close(performer_attention(q, k, v, omega=om, causal=causal, chunk=10), ref)


def test_causal_prefix_sum_matches_cumsum():
    g = torch.Generator().manual_seed(0)
    fq, fk, v = torch.rand(20, 5, generator=g), torch.rand(20, 5, generator=g), torch.randn(20, 3, generator=g)
    S = torch.cumsum(fk[:, :, None] * v[:, None, :], 0)  # (L, m, dv): S_i = sum_{j<=i} phi(k_j) v_j^T
    z = torch.cumsum(fk, 0)
    ref = torch.einsum("lm,lmd->ld", fq, S) / (fq * z).sum(-1, keepdim=True)
    torch.testing.assert_close(linear_attention(fq, fk, v, causal=True, chunk=7), ref)


def test_recurrent_form_equals_masked_quadratic_and_a_loop():
    g = torch.Generator().manual_seed(3)
    fq, fk = torch.rand(2, 19, 5, generator=g, dtype=torch.float64), torch.rand(2, 19, 5, generator=g,
                                                                                 dtype=torch.float64)
    v = torch.randn(2, 19, 3, generator=g, dtype=torch.float64)
    rec = linear_attention_recurrent(fq, fk, v)
    quadratic = attend(fq, fk, v, score="dot", normalize=row_sum_normalize, mask=causal_mask(19))[0]
    torch.testing.assert_close(rec, quadratic)
    torch.testing.assert_close(rec, linear_attention(fq, fk, v, causal=True, chunk=4))
    # independent reference: an explicit double loop, o_i = sum_{j<=i} (fq_i . fk_j) v_j / sum_{j<=i} fq_i . fk_j
    ref = torch.zeros_like(rec)
    for b in range(2):
        for i in range(19):
            w = [float(fq[b, i] @ fk[b, j]) for j in range(i + 1)]
            ref[b, i] = sum(wj * v[b, j] for j, wj in enumerate(w)) / sum(w)
    torch.testing.assert_close(rec, ref)
    # numerator and denominator are two unnormalised fast-weight programmers (Schmidhuber, 1992)
    num = fast_weight_programmer(fq, fk, v)
    den = fast_weight_programmer(fq, fk, torch.ones(2, 19, 1, dtype=torch.float64))
    torch.testing.assert_close(rec, num / den)


def test_recurrent_state_is_the_prefix_sum_and_constant_size():
    g = torch.Generator().manual_seed(4)
    fq, fk, v = torch.rand(11, 6, generator=g), torch.rand(11, 6, generator=g), torch.randn(11, 2, generator=g)
    state = None
    for t in range(11):
        o_t, state = linear_attention_step(state, fq[t], fk[t], v[t])
        S, z = state
        assert S.shape == (6, 2) and z.shape == (6,)            # m x dv + m numbers at every step
        torch.testing.assert_close(S, (fk[:t + 1, :, None] * v[:t + 1, None, :]).sum(0))
        torch.testing.assert_close(z, fk[:t + 1].sum(0))
        torch.testing.assert_close(o_t, (fq[t] @ S) / (fq[t] @ z))
    zero_q = torch.zeros(6)
    o0, _ = linear_attention_step(None, zero_q, fk[0], v[0])    # zero denominator: zeros, not NaN
    assert torch.equal(o0, torch.zeros(2))
    with pytest.raises(ValueError, match="same batch dims"):
        linear_attention_step(None, fq[0], fk[0, :5], v[0])


def test_lsh_scores_follow_the_trax_and_hf_convention():
    """Keys RMS-normalised then divided by sqrt(d) (trax's attend, HF's _len_and_dim_norm): unit keys, raw queries."""
    qk, _, v = qkv(32, 6, dv=4, seed=9)
    rot = random_rotations(6, 2, 1, seed=0, dtype=torch.float64)
    out = lsh_attention(qk, v, n_buckets=2, chunk_size=32, rotations=rot, exclude_self=False)
    k_trax = qk / torch.sqrt((qk ** 2).mean(-1, keepdim=True)) / math.sqrt(6)
    ref = torch.softmax(qk @ k_trax.T, dim=-1) @ v                  # one chunk: every key in P_i
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("causal", [False, True])
def test_performer_error_bound_and_falls_with_features(causal):
    q, k, v = qkv(64, 8, seed=2)
    q, k = 0.5 * q, 0.5 * k
    mask = causal_mask(64) if causal else None
    ref = attend(q, k, v, mask=mask)[0]
    errs = [relative_error(performer_attention(q, k, v, n_features=m, causal=causal, seed=0), ref)
            for m in (8, 256, 8192)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.05


def test_stabilizers_do_not_change_output():
    q, k, v = qkv(20, 4, seed=3)
    om = orthogonal_gaussian(32, 4, seed=0, dtype=torch.float64)
    plain = linear_attention(favor_features(q, om), favor_features(k, om), v)
    stab = linear_attention(favor_features(q, om, stabilizer="row"), favor_features(k, om, stabilizer="all"), v)
    torch.testing.assert_close(stab, plain)


# ------------------------------------------------------------------ determinism

@pytest.mark.parametrize("fn", [
    lambda q, k, v, s: performer_attention(q, k, v, n_features=16, seed=s),
    lambda q, k, v, s: linformer_attention(q, k, v, r=8, seed=s),
    lambda q, k, v, s: lsh_attention(q, v, n_buckets=4, chunk_size=8, seed=s),
])
def test_same_seed_same_output(fn):
    q, k, v = qkv(32, 4, seed=5)
    a, b, c = fn(q, k, v, 7), fn(q, k, v, 7), fn(q, k, v, 8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("call,err,words", [
    (lambda q, k, v: chunked_attention(q, k[:, :3], v), ValueError, "width d"),
    (lambda q, k, v: chunked_attention(q, k, v[:5]), ValueError, "one value per key"),
    (lambda q, k, v: chunked_attention(q, k, v, key_chunk=0), ValueError, "key_chunk"),
    (lambda q, k, v: chunked_attention(q.long(), k, v), TypeError, "floating-point"),
    (lambda q, k, v: chunked_attention(q.float(), k, v), TypeError, "same dtype"),
    (lambda q, k, v: local_attention(q, k[:7], v[:7]), ValueError, "as many queries as keys"),
    (lambda q, k, v: local_attention(q, k, v, window=1.5), TypeError, "window must be a positive int; got float"),
    (lambda q, k, v: lsh_attention(q, v, chunk_size=5), ValueError, "chunk_size must divide"),
    (lambda q, k, v: lsh_attention(q, v, n_buckets=3, chunk_size=4), ValueError, "1 or even"),
    (lambda q, k, v: lsh_attention(q, v, rotations=torch.zeros(1, 3, 2), chunk_size=4), ValueError, "rotations"),
    (lambda q, k, v: lsh_attention(q, v, seed=0, generator=torch.Generator(), chunk_size=4), ValueError, "not both"),
    (lambda q, k, v: linformer_attention(q, k, v, E=torch.zeros(4, 5)), ValueError, "(r, N)"),
    (lambda q, k, v: linformer_attention(q, k, v, r=20, kind="pool"), ValueError, "r <= n"),
    (lambda q, k, v: linformer_attention(q, k, v, kind="fft"), ValueError, "kind must be one of"),
    (lambda q, k, v: performer_attention(q, k, v, omega=torch.zeros(8, 3, dtype=torch.float64)), ValueError,
     "omega must be (m, d)"),
    (lambda q, k, v: performer_attention(q, k[:7], v[:7], causal=True), ValueError, "as many queries"),
    (lambda q, k, v: favor_features(q, orthogonal_gaussian(4, 4), stabilizer="max"), ValueError, "stabilizer"),
    (lambda q, k, v: performer_attention(q, k, v, n_features=0), ValueError, "m must be a positive int; got 0"),
    (lambda q, k, v: sliding_window_mask(8, 2, global_tokens=(9,)), ValueError, "global_tokens"),
    (lambda q, k, v: fixed_sparse_mask(8, 2, n_summary=3), ValueError, "n_summary"),
    (lambda q, k, v: chunked_attention(q[0], k, v), ValueError, "shape (..., L, d)"),
])
def test_bad_input_errors(call, err, words):
    q, k, v = qkv(8, 4)
    with pytest.raises(err, match=words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        call(q, k, v)


# ------------------------------------------------------------------ the exercise checker

def test_check_favor_features():
    good = lambda x, w: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(w.shape[0])  # noqa: E731
    no_norm = lambda x, w: torch.exp(x @ w.T) / math.sqrt(w.shape[0])  # noqa: E731
    no_sqrt = lambda x, w: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2)  # noqa: E731
    trig = lambda x, w: torch.cos(x @ w.T) / math.sqrt(w.shape[0])  # noqa: E731
    assert check_favor_features(good, quiet=True)
    for bad in (no_norm, no_sqrt, trig):
        assert not check_favor_features(bad, quiet=True)
    assert crossover_length(8 * 2 ** 30) == 26754
