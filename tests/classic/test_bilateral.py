"""Tests for attnkit.classic.bilateral: the bilateral filter is attention over each pixel's window."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnkit.classic.bilateral import bilateral_filter, bilateral_weights
from attnkit.classic.images import add_gaussian_noise, gaussian_blur, load_sample_image, psnr


def bilateral_loop(img: np.ndarray, r: int, ss: float, sr: float) -> np.ndarray:
    """Tomasi and Manduchi's filter by four nested loops, in float64, neighbours inside the image."""
    H, W = img.shape
    out = np.zeros_like(img, dtype=np.float64)
    for i in range(H):
        for j in range(W):
            num = den = 0.0
            for k in range(max(0, i - r), min(H, i + r + 1)):
                for m in range(max(0, j - r), min(W, j + r + 1)):
                    w = math.exp(-((i - k) ** 2 + (j - m) ** 2) / (2 * ss**2)
                                 - (img[i, j] - img[k, m]) ** 2 / (2 * sr**2))
                    num += w * img[k, m]
                    den += w
            out[i, j] = num / den
    return out


@pytest.mark.parametrize("r,ss,sr", [(1, 1.0, 0.1), (2, 1.5, 0.2), (3, 2.0, 0.05), (4, 1.0, 1.0)])
@pytest.mark.parametrize("chunk_rows", [None, 1, 3])
def test_bilateral_matches_loop_reference(r, ss, sr, chunk_rows):
    img = torch.rand(7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(r))
    got = bilateral_filter(img, r, ss, sr, chunk_rows=chunk_rows)
    np.testing.assert_allclose(got.numpy(), bilateral_loop(img.numpy(), r, ss, sr), atol=1e-12)


def test_bilateral_float32_close_to_float64():
    img = torch.rand(12, 10, dtype=torch.float64)
    got = bilateral_filter(img.float(), 2, 1.5, 0.1)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), bilateral_loop(img.numpy(), 2, 1.5, 0.1), atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(0, 3), st.floats(0.3, 5.0), st.floats(0.01, 2.0),
       st.integers(0, 1000))
def test_bilateral_is_a_convex_combination(H, W, r, ss, sr, seed):
    img = torch.rand(H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    out = bilateral_filter(img, r, ss, sr)
    assert out.shape == (H, W) and torch.isfinite(out).all()
    assert out.min() >= img.min() - 1e-12 and out.max() <= img.max() + 1e-12
    i, j = seed % H, (seed // 7) % W
    w = bilateral_weights(img, i, j, r, ss, sr)
    assert w.shape == (2 * r + 1, 2 * r + 1) and abs(w.sum().item() - 1) < 1e-12 and (w >= 0).all()
    # the output is the weighted sum of the window (zero outside the image)
    padded = torch.nn.functional.pad(img, (r, r, r, r))
    assert abs((w * padded[i:i + 2 * r + 1, j:j + 2 * r + 1]).sum().item() - out[i, j].item()) < 1e-12


def test_weights_are_zero_outside_the_image():
    img = torch.rand(6, 6, dtype=torch.float64)
    w = bilateral_weights(img, 0, 5, 2, 1.0, 0.3)  # top-right corner
    assert (w[:2] == 0).all() and (w[:, 3:] == 0).all() and (w[2:, :3] > 0).all()


def test_radius_zero_is_identity_and_constant_is_kept():
    img = torch.rand(5, 6, dtype=torch.float64)
    assert torch.equal(bilateral_filter(img, 0, 1.0, 0.1), img)
    const = torch.full((6, 6), 0.4, dtype=torch.float64)
    assert torch.allclose(bilateral_filter(const, 3, 2.0, 0.1), const)


def test_huge_sigma_range_is_a_gaussian_blur_inside():
    img = torch.rand(16, 16, dtype=torch.float64)
    r = 3
    bil = bilateral_filter(img, r, 1.2, 1e6)
    blur = gaussian_blur(img, 1.2, r)
    assert torch.allclose(bil[r:-r, r:-r], blur[r:-r, r:-r], atol=1e-10)


def test_bilateral_keeps_a_step_edge_that_blur_smears():
    step = torch.zeros(10, 10, dtype=torch.float64)
    step[:, 5:] = 1.0
    bil = bilateral_filter(step, 3, 2.0, 0.1)
    assert torch.allclose(bil, step, atol=1e-10)
    assert (gaussian_blur(step, 2.0)[:, 4] - 0.0).abs().min() > 0.2


def test_bilateral_denoises_the_photo():
    x = load_sample_image(0.25)
    y = add_gaussian_noise(x, 0.1, seed=0)
    out = bilateral_filter(y, 3, 1.5, 0.2)
    assert out.shape == x.shape and psnr(out, x) > psnr(y, x) + 3


@pytest.mark.parametrize("args,exc,match", [
    ((torch.rand(2, 5, 5), 1, 1.0, 0.1), ValueError, "image"),
    ((torch.rand(5), 1, 1.0, 0.1), ValueError, "image"),
    ((torch.ones(5, 5, dtype=torch.int64), 1, 1.0, 0.1), TypeError, "image"),
    ((np.ones((5, 5)), 1, 1.0, 0.1), TypeError, "image"),
    ((torch.rand(5, 5), -1, 1.0, 0.1), ValueError, "radius"),
    ((torch.rand(5, 5), 1.5, 1.0, 0.1), TypeError, "radius"),
    ((torch.rand(5, 5), 1, -1.0, 0.1), ValueError, "sigma_space"),
    ((torch.rand(5, 5), 1, 1.0, 0.0), ValueError, "sigma_range"),
    ((torch.rand(5, 5), 1, 1.0, -0.1), ValueError, "sigma_range"),
])
def test_bad_input(args, exc, match):
    with pytest.raises(exc, match=match):
        bilateral_filter(*args)


def test_bad_query_pixel_and_chunk():
    img = torch.rand(5, 5)
    with pytest.raises(ValueError, match="row"):
        bilateral_weights(img, 5, 0, 1, 1.0, 0.1)
    with pytest.raises(ValueError, match="col"):
        bilateral_weights(img, 0, -1, 1, 1.0, 0.1)
    with pytest.raises(ValueError, match="chunk_rows"):
        bilateral_filter(img, 1, 1.0, 0.1, chunk_rows=0)
