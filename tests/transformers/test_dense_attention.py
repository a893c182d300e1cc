"""CCNet, DANet, axial and triangle attention against explicit references; costs; bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit.transformers.dense_attention import (
    attention_cost,
    axial_attention,
    criss_cross_attention,
    criss_cross_mask,
    danet_channel_attention,
    full_attention_2d,
    triangle_attention,
)


def test_criss_cross_mask_by_loop() -> None:
    H, W = 3, 4
    m = criss_cross_mask(H, W)
    for i in range(H * W):
        for j in range(H * W):
            assert bool(m[i, j]) == (i // W == j // W or i % W == j % W)
    assert (m.sum(-1) == H + W - 1).all()
    reach = (m.float() @ m.float()) > 0
    assert reach.all()  # two passes reach every position


@given(H=st.integers(1, 5), W=st.integers(1, 5), seed=st.integers(0, 1000))
def test_criss_cross_gather_equals_masked_full(H: int, W: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(2, 3, H, W, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 5, H, W, generator=g, dtype=torch.float64)
    out, w = criss_cross_attention(q, k, v)
    ref, _ = full_attention_2d(q, k, v, mask=criss_cross_mask(H, W))
    torch.testing.assert_close(out, ref)
    assert w.shape == (2, H, W, W + H)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, H, W, dtype=torch.float64))


def test_full_attention_2d_matches_sdpa() -> None:
    q, k, v = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5), torch.randn(2, 6, 3, 5)
    out, _ = full_attention_2d(q, k, v)
    flat = lambda t: t.flatten(2).transpose(1, 2)  # noqa: E731
    ref = torch.nn.functional.scaled_dot_product_attention(flat(q), flat(k), flat(v), scale=1.0)
    torch.testing.assert_close(out, ref.transpose(1, 2).reshape(2, 6, 3, 5), atol=1e-5, rtol=1e-5)


def test_danet_channel_attention_by_formula() -> None:
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    X = x.reshape(2, 4, 9)
    s = X @ X.transpose(1, 2)
    # the paper's eq. (3): x_ji = exp(A_i . A_j) / sum_i exp(A_i . A_j)
    out, w = danet_channel_attention(x)
    a = torch.exp(s) / torch.exp(s).sum(-1, keepdim=True)
    torch.testing.assert_close(w, a)
    torch.testing.assert_close(out, (a @ X).reshape(2, 4, 3, 3))
    # the authors' CAM_Module: softmax(max(energy) - energy), which is softmax(-energy)
    out_c, w_c = danet_channel_attention(x, variant="code")
    a_c = torch.softmax(s.amax(-1, keepdim=True) - s, -1)
    torch.testing.assert_close(w_c, a_c)
    torch.testing.assert_close(w_c, torch.softmax(-s, -1))
    torch.testing.assert_close(out_c, (a_c @ X).reshape(2, 4, 3, 3))
    # they disagree on which channel a channel attends to most: itself (paper) vs the least similar (code)
    assert torch.equal(w.argmax(-1), s.argmax(-1)) and torch.equal(w_c.argmax(-1), s.argmin(-1))
    with pytest.raises(ValueError, match="variant"):
        danet_channel_attention(x, variant="official")


def test_axial_attention_by_loops() -> None:
    x = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    out, (w_row, w_col) = axial_attention(x, x, x)
    assert w_row.shape == (1, 4, 5, 5) and w_col.shape == (1, 5, 4, 4)
    rows = torch.zeros(1, 3, 4, 5, dtype=torch.float64)
    for y in range(4):
        seq = x[0, :, y, :].T  # (W, C)
        rows[0, :, y, :] = (torch.softmax(seq @ seq.T, -1) @ seq).T
    ref = torch.zeros_like(rows)
    for c in range(5):
        qk = x[0, :, :, c].T  # (H, C)
        ref[0, :, :, c] = (torch.softmax(qk @ qk.T, -1) @ rows[0, :, :, c].T).T
    torch.testing.assert_close(out, ref)


def test_triangle_attention_by_loop() -> None:
    g = torch.Generator().manual_seed(0)
    n, c, cp = 4, 3, 2
    z = torch.randn(n, n, c, generator=g, dtype=torch.float64)
    Wq, Wk, Wv = (torch.randn(c, cp, generator=g, dtype=torch.float64) for _ in range(3))
    w_b = torch.randn(c, generator=g, dtype=torch.float64)
    out, a = triangle_attention(z, Wq, Wk, Wv, w_b)
    for i in range(n):
        for j in range(n):
            s = torch.stack([(z[i, j] @ Wq) @ (z[i, k] @ Wk) / math.sqrt(cp) + z[j, k] @ w_b for k in range(n)])
            torch.testing.assert_close(a[i, j], torch.softmax(s, 0))
            torch.testing.assert_close(out[i, j], sum(a[i, j, k] * (z[i, k] @ Wv) for k in range(n)))


def test_costs() -> None:
    nl = attention_cost("nonlocal", 16, 16, 64)
    cc = attention_cost("criss_cross", 16, 16, 64, recurrence=1)
    assert nl["weights"] == 256**2 and nl["macs"] == 256**2 * (8 + 64)
    assert cc["weights"] == 256 * 31
    assert attention_cost("axial", 16, 16, 64)["weights"] == 256 * 32
    assert attention_cost("danet", 16, 16, 64)["weights"] == 256**2 + 64**2
    # the counts equal the sizes of the weight tensors the implementations build
    q, v = torch.randn(1, 8, 16, 16), torch.randn(1, 64, 16, 16)
    assert full_attention_2d(q, q, v)[1].numel() == nl["weights"]
    w_cc = criss_cross_attention(q, q, v)[1]
    assert int((w_cc > 0).sum()) == cc["weights"]  # the duplicated self is stored but weighted 0


def test_bad_input() -> None:
    t = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="q and k must have the same shape"):
        criss_cross_attention(t, torch.randn(1, 2, 4, 4), t)
    with pytest.raises(ValueError, match="v must share"):
        axial_attention(t, t, torch.randn(1, 3, 4, 5))
    with pytest.raises(ValueError, match="feature map"):
        danet_channel_attention(t[0, 0][None, None, None])
    with pytest.raises(ValueError, match="H must be a positive int"):
        criss_cross_mask(0, 3)
    with pytest.raises(ValueError, match="kind"):
        attention_cost("ring", 4, 4, 8)
    Ws = [torch.randn(2, 2) for _ in range(3)]
    with pytest.raises(ValueError, match="pair representation"):
        triangle_attention(torch.randn(3, 4, 2), *Ws, torch.randn(2))
    with pytest.raises(ValueError, match="w_b must be"):
        triangle_attention(torch.randn(3, 3, 2), *Ws, torch.randn(3))
    with pytest.raises(ValueError, match="W_k must be"):
        triangle_attention(torch.randn(3, 3, 2), Ws[0], torch.randn(3, 2), Ws[2], torch.randn(2))
