"""The bad-input cases found in attnkit.flash after issue #17 (one test each; the table is
``test_flash_robustness.py``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from attnkit.flash import autotune
from attnkit.flash.online_softmax import (
    attention_np,
    flash_backward_np,
    flash_forward_kv_outer_np,
    flash_forward_np,
    hbm_traffic,
    online_softmax,
    online_softmax_stats,
)


def sdpa(q, k, v, causal=False):
    """float64 SDPA (top-left causal, as attention_np) and its log-sum-exp, as NumPy arrays."""
    q, k, v = (torch.from_numpy(t) for t in (q, k, v))
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool).tril(), float("-inf"))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return out.numpy(), torch.logsumexp(s, -1).numpy()


def qkv(lq=8, lk=8, d=4, dv=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(2, lq, d)), rng.normal(size=(2, lk, d)), rng.normal(size=(2, lk, dv))


@pytest.mark.parametrize("fn", [flash_forward_np, flash_forward_kv_outer_np, attention_np])
@pytest.mark.parametrize("lq, lk, dv, causal", [(4, 11, 4, False), (4, 11, 3, False), (11, 4, 4, False),
                                                (8, 8, 3, True), (8, 8, 1, False), (5, 9, 2, True)])
def test_blocked_forwards_use_every_key_and_any_value_width(fn, lq, lk, dv, causal) -> None:
    # flash_forward_np once looped over the first Lq keys only (Lk > Lq: a wrong answer, silently),
    # and the accumulators had q's width d (dv != d: a crash, or for dv = 1 a silent broadcast)
    q, k, v = qkv(lq, lk, 4, dv)
    kw = {"block_m": 3, "block_n": 2} if fn is flash_forward_np else {}
    kw = {"block_r": 3, "block_c": 2} if fn is flash_forward_kv_outer_np else kw
    o, lse = fn(q, k, v, causal, **kw)
    ref_o, ref_lse = sdpa(q, k, v, causal)
    np.testing.assert_allclose(o, ref_o, atol=1e-12)
    np.testing.assert_allclose(lse, ref_lse, atol=1e-12)


@pytest.mark.parametrize("lq, lk, dv, causal", [(4, 11, 3, False), (11, 4, 2, False), (8, 8, 3, True)])
def test_blocked_backward_uses_every_key_and_any_value_width(lq, lk, dv, causal) -> None:
    q, k, v = qkv(lq, lk, 4, dv, seed=1)
    do = np.random.default_rng(2).normal(size=(2, lq, dv))
    o, lse = attention_np(q, k, v, causal)
    dq, dk, dv_ = flash_backward_np(q, k, v, o, lse, do, causal, block_m=3, block_n=2)
    tq, tk, tv = (torch.from_numpy(t).requires_grad_() for t in (q, k, v))
    (torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal) * torch.from_numpy(do)).sum() \
        .backward()
    for got, want in ((dq, tq), (dk, tk), (dv_, tv)):
        np.testing.assert_allclose(got, want.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("fn", [flash_forward_np, flash_forward_kv_outer_np, attention_np])
def test_zero_keys_give_zeros_and_minus_inf(fn) -> None:
    q, k, v = qkv(5, 0, 4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        o, lse = fn(q, k, v)
    assert o.shape == (2, 5, 3) and not o.any()
    assert lse.shape == (2, 5) and np.isneginf(lse).all()


def test_an_empty_axis_gives_an_empty_softmax() -> None:
    assert online_softmax(np.zeros((3, 0))).shape == (3, 0)
    assert online_softmax(np.zeros((0, 4))).shape == (0, 4)
    with pytest.raises(ValueError, match="blocks"):
        online_softmax_stats([])


@pytest.mark.parametrize("fn", [flash_forward_np, flash_forward_kv_outer_np, attention_np])
def test_complex_bool_and_wrong_shapes_are_refused_by_name(fn) -> None:
    q, k, v = qkv()
    with pytest.raises(TypeError, match=r"\bq\b.*complex"):
        fn(q + 1j, k, v)  # np.asarray(..., float64) dropped the imaginary part with a mere warning
    with pytest.raises(TypeError, match=r"\bv\b.*bool"):
        fn(q, k, v > 0)
    with pytest.raises(ValueError, match=r"\bk\b"):
        fn(q, k[..., :3], v)
    with pytest.raises(ValueError, match=r"\bv\b"):
        fn(q, k, v[:, :5])
    with pytest.raises(ValueError, match=r"\bq\b"):
        fn(q[0, 0], k, v)
    with pytest.raises(TypeError, match="causal"):
        fn(q, k, v, causal="yes")
    with pytest.raises(ValueError, match="softmax_scale"):
        fn(q, k, v, softmax_scale=-1.0)


def test_block_sizes_are_checked_and_huge_ones_are_one_block() -> None:
    q, k, v = qkv()
    with pytest.raises(ValueError, match="block_m"):
        flash_forward_np(q, k, v, block_m=0)
    with pytest.raises(TypeError, match="block_c"):
        flash_forward_kv_outer_np(q, k, v, block_c=2.5)
    with pytest.raises(ValueError, match="block_size"):
        online_softmax(q, block_size=0)
    o, _ = flash_forward_np(q, k, v, block_m=10**9, block_n=10**9)
    np.testing.assert_allclose(o, sdpa(q, k, v)[0], atol=1e-12)


def test_backward_checks_its_saved_tensors() -> None:
    q, k, v = qkv()
    o, lse = attention_np(q, k, v)
    with pytest.raises(ValueError, match="lse"):
        flash_backward_np(q, k, v, o, lse[:, :3], o)
    with pytest.raises(ValueError, match=r"\bdo\b"):
        flash_backward_np(q, k, v, o, lse, o[..., :2])


def test_autotune_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"\bd\b"):
        autotune.d_class(300)       # once a KeyError from AUTOTUNE_CONFIGS
    with pytest.raises(ValueError, match=r"\bd\b"):
        autotune.block_d(0)
    with pytest.raises(TypeError, match=r"\bn\b"):
        autotune.bucket("8")
    with pytest.raises(ValueError, match="name"):
        autotune.prune("fwdd", 64, torch.float16, 1 << 20)
    with pytest.raises(TypeError, match="dtype"):
        autotune.prune("fwd", 64, "float16", 1 << 20)
    with pytest.raises(ValueError, match="max_shared"):
        autotune.prune("fwd", 64, torch.float16, -1)
    with pytest.raises(ValueError, match="entry"):
        autotune.shared_bytes("fwd", (64, 64, 4), 64)
    with pytest.raises(ValueError, match="name"):
        autotune.uses_tma("fw", 64)
    assert autotune.d_class(256) == 256 and autotune.bucket(0) == 16


def test_numpy_integers_are_sizes_too() -> None:
    # the chapter sweeps n over 2 ** np.arange(8, 15)
    n = np.int64(256)
    assert hbm_traffic(n, 64) == hbm_traffic(256, 64)
    assert autotune.bucket(np.int32(100)) == 128
    with pytest.raises(TypeError, match="block_m"):
        hbm_traffic(256, 64, block_m=np.float64(16.0))
