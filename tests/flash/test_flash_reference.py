"""The online softmax, the blocked NumPy FlashAttention (forward and backward), the byte counts,
the reference backend of ``flash_attention`` and the exercise checker."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit.core import attend
from attnkit.exercises.flash import check_online_softmax
from attnkit.flash.api import flash_attention, flash_attention_forward
from attnkit.flash.online_softmax import (
    ByteCounter,
    attention_np,
    flash1_block_sizes,
    flash_backward_np,
    flash_forward_kv_outer_np,
    flash_forward_np,
    hbm_traffic,
    hbm_traffic_backward,
    online_softmax,
    online_softmax_stats,
    register_bytes,
    sram_bytes,
)
from attnkit.masks import causal_mask


def _loop_softmax(x: np.ndarray) -> np.ndarray:
    """Softmax of each row by an explicit Python loop (float64), zeros for all -inf rows."""
    out = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        m = max(row)
        if m == -math.inf:
            continue
        e = [math.exp(r - m) for r in row]
        out[idx] = [t / sum(e) for t in e]
    return out


# ---------------------------------------------------------------- online softmax

@given(rows=st.integers(1, 4), n=st.integers(1, 20), block=st.integers(1, 8), scale=st.floats(0.1, 50.0),
       seed=st.integers(0, 10_000))
def test_online_softmax_matches_a_loop_for_any_block_size(rows, n, block, scale, seed):
    x = np.random.default_rng(seed).normal(size=(rows, n)) * scale
    np.testing.assert_allclose(online_softmax(x, block), _loop_softmax(x), rtol=1e-12, atol=1e-14)


@given(n=st.integers(2, 16), seed=st.integers(0, 10_000))
def test_online_stats_do_not_depend_on_the_blocking(n, seed):
    x = np.random.default_rng(seed).normal(size=(3, n)) * 10
    m1, l1 = online_softmax_stats([x])
    m2, l2 = online_softmax_stats(x[:, j:j + 1] for j in range(n))    # one column at a time
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    # m + log l is the log-sum-exp of the row
    np.testing.assert_allclose(m1 + np.log(l1), np.log(np.exp(x).sum(-1)), rtol=1e-12)


def test_online_softmax_edge_rows():
    x = np.array([[1e4, 0.0, -1e4, 9999.0],
                  [-np.inf, -np.inf, -np.inf, -np.inf],
                  [-np.inf, -np.inf, 0.0, 1.0]])
    p = online_softmax(x, block_size=2)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, _loop_softmax(x), atol=1e-15)
    m, l_ = online_softmax_stats([x[:, :2], x[:, 2:]])
    assert m[1] == -np.inf and l_[1] == 0.0


def test_online_softmax_errors():
    with pytest.raises(ValueError, match="at least one block"):
        online_softmax_stats([])
    with pytest.raises(ValueError, match="block_size"):
        online_softmax(np.zeros((2, 3)), block_size=0)


# ---------------------------------------------------------------- blocked forward and backward

def _qkv(seed: int, shape=(2, 3, 37, 16)):
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(size=shape) for _ in range(4))


def test_attention_np_matches_attend():
    q, k, v, _ = _qkv(0, (2, 9, 8))
    for causal in (False, True):
        o, _ = attention_np(q, k, v, causal)
        mask = causal_mask(9) if causal else None
        ref, _ = attend(*(torch.from_numpy(t) for t in (q, k, v)), mask=mask)
        np.testing.assert_allclose(o, ref.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("block_m", "block_n"), [(16, 16), (8, 32), (32, 8), (5, 7), (64, 64)])
def test_blocked_forward_is_exact(causal, block_m, block_n):
    q, k, v, _ = _qkv(1)
    o, lse = flash_forward_np(q, k, v, causal, block_m=block_m, block_n=block_n)
    o_ref, lse_ref = attention_np(q, k, v, causal)
    np.testing.assert_allclose(o, o_ref, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("block_m", "block_n"), [(16, 16), (8, 32), (5, 7)])
def test_blocked_backward_matches_autograd(causal, block_m, block_n):
    q, k, v, do = _qkv(2, (2, 2, 29, 16))
    scale = 0.3
    o, lse = flash_forward_np(q, k, v, causal, scale)
    grads = flash_backward_np(q, k, v, o, lse, do, causal, scale, block_m=block_m, block_n=block_n)
    tq, tk, tv = (torch.tensor(t, requires_grad=True) for t in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal, scale=scale)
    out.backward(torch.from_numpy(do))
    for got, ref in zip(grads, (tq.grad, tk.grad, tv.grad)):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- byte counts

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("n", "block_m", "block_n"), [(64, 16, 16), (100, 32, 16), (37, 8, 32), (50, 64, 64)])
def test_counted_bytes_equal_the_formula(causal, n, block_m, block_n):
    d = 8
    q, k, v, _ = _qkv(3, (n, d))
    counter = ByteCounter(bytes_per_element=2)
    flash_forward_np(q, k, v, causal, block_m=block_m, block_n=block_n, counter=counter)
    assert counter.total == hbm_traffic(n, d, block_m, block_n, causal)["tiled"]
    # every element of q is read once and of o written once
    assert counter.reads["Q"] == counter.writes["O"] == n * d * 2


def test_traffic_properties():
    n, d = 4096, 64
    t = {bm: hbm_traffic(n, d, bm, 64)["tiled"] for bm in (16, 32, 64, 128, 256)}
    assert all(t[a] > t[b] for a, b in zip(list(t)[:-1], list(t)[1:]))        # bigger q tiles, fewer K/V reloads
    full, causal = hbm_traffic(n, d, 128, 64), hbm_traffic(n, d, 128, 64, causal=True)
    assert full["naive"] == (4 * n * d + 4 * n * n) * 2
    # naive / tiled is about 2 block_m / d = 4 here (K and V re-read N / block_m times)
    assert 3.5 < full["naive"] / full["tiled"] < 4.5 and causal["tiled"] < 0.6 * full["tiled"]
    # SRAM: the q tile plus num_stages buffers of a k and a v tile, 16-bit; acc and S are registers
    assert sram_bytes(128, 64, 64, num_stages=4) == (128 * 64 + 4 * 2 * 64 * 64) * 2 == 80 * 1024
    assert register_bytes(128, 64, 64) == 4 * (128 * 64 + 128 * 64 + 2 * 128)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("n", "block_r", "block_c"), [(64, 16, 16), (100, 32, 16), (37, 8, 32), (50, 64, 64)])
def test_flash1_loop_order_is_exact_and_counted(causal, n, block_r, block_c):
    d = 8
    q, k, v, _ = _qkv(5, (2, n, d))
    counter = ByteCounter(bytes_per_element=2)
    o, lse = flash_forward_kv_outer_np(q, k, v, causal, block_r=block_r, block_c=block_c, counter=counter)
    o_ref, lse_ref = attention_np(q, k, v, causal)
    np.testing.assert_allclose(o, o_ref, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-12)
    formula = hbm_traffic(n, d, block_r, block_c, causal, order="kv_outer")["tiled"]
    assert counter.total == 2 * formula                      # two heads
    assert counter.reads["K"] == counter.reads["V"] == 2 * n * d * 2   # K and V once: the outer loop
    if not causal:                                            # Q and O once per key block
        assert counter.reads["Q"] == counter.reads["O"] == 2 * n * d * 2 * -(-n // block_c)


def test_loop_orders_move_theta_n2d2_over_m():
    """Theorem 2 of Dao et al. (2022): Theta(N^2 d^2 / M) HBM accesses with blocks of ~M / (4 d) rows."""
    n, d = 8192, 64
    assert flash1_block_sizes(4 * 64 * 64, 64) == (64, 64) and flash1_block_sizes(1000, 64) == (4, 4)
    ratios = {"q_outer": [], "kv_outer": []}
    for m_sram in (2 ** 14, 2 ** 15, 2 ** 16, 2 ** 17):
        b = m_sram // (4 * d)
        for order in ratios:
            elements = hbm_traffic(n, d, b, b, order=order, bytes_per_element=1)["tiled"]
            ratios[order].append(elements / (n * n * d * d / m_sram))
    # the traffic tracks N^2 d^2 / M within a constant (about 8 when queries are outside, 12 when keys are)
    for order, lo, hi in (("q_outer", 8, 9.5), ("kv_outer", 12, 15)):
        assert all(lo <= r <= hi for r in ratios[order]), (order, ratios[order])
    with pytest.raises(ValueError, match="d <= M"):
        flash1_block_sizes(32, 64)
    with pytest.raises(ValueError, match="order"):
        hbm_traffic(64, 8, order="fa3")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("n", "block_m", "block_n"), [(48, 16, 16), (37, 8, 32), (100, 32, 16)])
def test_backward_counter_with_the_delta_prepass(causal, n, block_m, block_n):
    d = 8
    q, k, v, do = _qkv(4, (n, d))
    o, lse = flash_forward_np(q, k, v, causal)
    c = ByteCounter()
    flash_backward_np(q, k, v, o, lse, do, causal, block_m=block_m, block_n=block_n, counter=c)
    assert c.reads["K"] == c.reads["V"] == c.writes["dK"] == n * d * 2
    assert c.reads["O"] == n * d * 2                          # the delta pre-pass reads O once ...
    assert c.writes["delta"] == n * 4                         # ... and writes delta in float32
    assert c.reads["dO"] == n * d * 2 + c.reads["Q"]          # dO: the pre-pass, then with every Q block
    if not causal:
        assert c.reads["Q"] == -(-n // block_n) * n * d * 2   # Q once per key block
    assert c.total == hbm_traffic_backward(n, d, block_m, block_n, causal)


def _compiled_fwd_shared(bm: int, bn: int, warps: int, stages: int, d: int) -> int | None:
    try:
        from attnkit.flash.triton_kernel import compile_for_gpu

        cfg = {"fwd": {"BLOCK_M": bm, "BLOCK_N": bn, "num_warps": warps, "num_stages": stages}}
        return compile_for_gpu(d=d, dtype=torch.bfloat16, causal=False, kernels=("fwd",), config=cfg)["fwd"][
            "shared_bytes"]
    except (ImportError, RuntimeError) as err:   # no Triton (not Linux), Triton < 3.3, or TRITON_INTERPRET=1
        pytest.skip(f"cannot compile the Triton kernel here: {err}")


@pytest.mark.parametrize(("bm", "bn", "warps", "stages", "d"),
                         [(128, 64, 4, 4, 64), (128, 64, 8, 3, 128), (64, 32, 4, 2, 64)])
def test_sram_model_against_the_compiled_kernel(bm, bn, warps, stages, d):
    """sram_bytes against the shared memory Triton allocates for the forward kernel (compiled for sm_90)."""
    shared = _compiled_fwd_shared(bm, bn, warps, stages, d)
    model = sram_bytes(bm, bn, d, num_stages=stages)
    assert shared == model, (shared, model)     # equal for every forward tile of AUTOTUNE_CONFIGS (Triton 3.9)


# ---------------------------------------------------------------- the reference backend of flash_attention

@pytest.mark.parametrize("causal", [False, True])
def test_reference_backend_matches_sdpa_with_gradients(causal):
    q, k, v = (torch.randn(1, 2, 21, 32, requires_grad=True) for _ in range(3))
    out = flash_attention(q, k, v, causal=causal, backend="reference")
    ref = torch.nn.functional.scaled_dot_product_attention(*(t.double() for t in (q, k, v)), is_causal=causal)
    torch.testing.assert_close(out, ref.float(), rtol=1e-5, atol=1e-6)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), g)
    refs = torch.autograd.grad(ref, (q, k, v), g.double())
    for a, b in zip(grads, refs):
        torch.testing.assert_close(a, b.float(), rtol=1e-4, atol=1e-5)


def test_reference_forward_lse_and_scale():
    q, k, v = (torch.randn(2, 1, 10, 16) for _ in range(3))
    out, lse = flash_attention_forward(q, k, v, softmax_scale=0.5, backend="reference")
    s = (q @ k.transpose(-1, -2)).double() * 0.5
    torch.testing.assert_close(lse, torch.logsumexp(s, -1).float())
    torch.testing.assert_close(out, (s.softmax(-1) @ v.double()).float())
    assert lse.dtype == torch.float32 and out.dtype == q.dtype


def test_auto_backend_on_cpu_is_the_reference():
    q, k, v = (torch.randn(1, 1, 5, 16, dtype=torch.float16) for _ in range(3))
    out = flash_attention(q, k, v)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, flash_attention(q, k, v, backend="reference"))


# ---------------------------------------------------------------- the exercise checker

def _correct(blocks):
    m = l_ = None
    for s in blocks:
        s = s.double()
        if m is None:
            m = torch.full(s.shape[:-1], -math.inf, dtype=torch.float64)
            l_ = torch.zeros(s.shape[:-1], dtype=torch.float64)
        m_new = torch.maximum(m, s.amax(-1))
        safe = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
        l_ = l_ * torch.exp(m - safe) + torch.exp(s - safe[:, None]).sum(-1)
        m = m_new
    return m, l_


def _no_rescale(blocks):
    m = l_ = None
    for s in blocks:
        m = s.amax(-1) if m is None else torch.maximum(m, s.amax(-1))
        l_ = torch.exp(s - m[:, None]).sum(-1) if l_ is None else l_ + torch.exp(s - m[:, None]).sum(-1)
    return m, l_


def _two_pass(blocks):
    x = torch.cat(list(blocks), -1)
    return x.amax(-1), torch.exp(x - x.amax(-1, keepdim=True)).sum(-1)


def _reads_twice(blocks):
    m = torch.stack([b.amax(-1) for b in blocks]).amax(0)
    return m, sum(torch.exp(b - m[:, None]).sum(-1) for b in blocks)


def test_checker_passes_a_correct_and_fails_buggy_solutions():
    assert check_online_softmax(_correct, quiet=True)
    bad = check_online_softmax(_no_rescale, quiet=True)
    assert not bad and bad.failed_case == "three blocks of 4"
    two = check_online_softmax(_two_pass, quiet=True)        # concatenating: right except on empty rows
    assert not two and two.failed_case == "a fully masked row"
    twice = check_online_softmax(_reads_twice, quiet=True)
    assert not twice and "only once" in twice.message


def test_without_triton_the_reference_still_works(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "triton", None)     # as on macOS or Windows: no triton package
    from attnkit.flash.api import triton_available

    assert not triton_available()
    q, k, v = (torch.randn(1, 2, 9, 16) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(flash_attention(q, k, v), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="needs the triton package"):
        flash_attention(q, k, v, backend="interpret")
