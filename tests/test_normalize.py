"""Normalisers: stability, fully masked rows, sparsemax against a NumPy reference, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit import hardmax, masked_softmax, no_normalize, softmax_with_temperature, sparsemax


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_masked_softmax_large_logits_do_not_overflow(dtype: torch.dtype) -> None:
    s = torch.tensor([[1e4, 0.0, -1e4, 9990.0], [-1e4, -1e4, -1e4, -1e4]], dtype=dtype)
    w = masked_softmax(s, torch.ones(2, 4, dtype=torch.bool))
    assert w.dtype == dtype and torch.isfinite(w).all()
    ref = torch.softmax(s.double(), -1)
    torch.testing.assert_close(w.double(), ref, atol=1e-2, rtol=1e-2)
    # the plain exp-normalise formula overflows in half precision: the reason for the max shift
    assert not torch.isfinite(torch.exp(s[:1]) / torch.exp(s[:1]).sum()).all()


def test_fully_masked_rows_are_zero_and_gradients_flow() -> None:
    s = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    w = masked_softmax(s, mask)
    assert torch.equal(w[1], torch.zeros(5, dtype=torch.float64))
    assert (w[0, ~mask[0]] == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))
    (w * torch.randn(3, 5, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(s.grad).all() and (s.grad[1] == 0).all()
    assert torch.autograd.gradcheck(lambda x: masked_softmax(x, mask), (s,))


def test_float_mask_with_all_minus_inf_row() -> None:
    s = torch.randn(2, 3)
    m = torch.tensor([[0.0, 0.0, 0.0], [float("-inf")] * 3])
    w = masked_softmax(s, m)
    assert torch.equal(w[1], torch.zeros(3)) and torch.allclose(w[0], torch.softmax(s[0], -1))


def test_other_dim_and_temperature() -> None:
    s = torch.randn(4, 3)
    torch.testing.assert_close(masked_softmax(s, dim=0), torch.softmax(s, 0))
    torch.testing.assert_close(softmax_with_temperature(s, 0.5), torch.softmax(s / 0.5, -1))


def sparsemax_numpy(z: np.ndarray) -> np.ndarray:
    """Reference: Martins & Astudillo (2016), Algorithm 1, one row at a time."""
    out = np.zeros_like(z)
    for i, row in enumerate(z):
        zs = np.sort(row)[::-1]
        cs = np.cumsum(zs)
        k = np.arange(1, len(row) + 1)
        kz = k[1 + k * zs > cs].max()
        tau = (cs[kz - 1] - 1) / kz
        out[i] = np.maximum(row - tau, 0)
    return out


@given(seed=st.integers(0, 10_000), n=st.integers(1, 9), scale=st.floats(0.1, 10))
def test_sparsemax_matches_numpy_reference(seed: int, n: int, scale: float) -> None:
    z = np.random.default_rng(seed).normal(size=(3, n)) * scale
    w = sparsemax(torch.from_numpy(z))
    np.testing.assert_allclose(w.numpy(), sparsemax_numpy(z), atol=1e-10)


def test_sparsemax_masks_and_gradients() -> None:
    z = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 1, 0, 1], [0] * 6, [1] * 6], dtype=torch.bool)
    w = sparsemax(z, mask)
    assert torch.equal(w[1], torch.zeros(6, dtype=torch.float64)) and (w[0, ~mask[0]] == 0).all()
    ref = sparsemax_numpy(z.detach().numpy()[0, mask[0].numpy()][None])[0]
    np.testing.assert_allclose(w[0, mask[0]].detach().numpy(), ref, atol=1e-12)
    w.sum().backward()
    assert torch.isfinite(z.grad).all()


def test_hardmax_and_no_normalize() -> None:
    s = torch.tensor([[0.1, 3.0, 2.0], [5.0, 1.0, 0.0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    assert torch.equal(hardmax(s, mask), torch.tensor([[0.0, 0, 1], [0, 0, 0]]))
    assert torch.equal(no_normalize(s, mask), torch.tensor([[0.1, 0, 2.0], [0, 0, 0]]))


def test_masked_softmax_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="scores must be a floating-point tensor; got dtype torch.int64"):
        masked_softmax(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"mask of shape \(4,\) does not broadcast"):
        masked_softmax(torch.ones(2, 3), torch.ones(4, dtype=torch.bool))
