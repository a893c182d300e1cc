"""Tests for attnkit.classic.nonlocal_means: non-local means is attend with the gaussian score on patches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnkit.classic.bilateral import bilateral_filter
from attnkit.classic.images import add_gaussian_noise, gaussian_blur, load_sample_image, psnr
from attnkit.classic.nonlocal_means import (
    KERNELS,
    fit_bandwidth,
    kernel_regression,
    log_kernel,
    method_noise,
    nadaraya_watson,
    nlm_weights,
    non_local_means,
    patch_vectors,
)
from attnkit.core import attend


def patches_loop(img: np.ndarray, f: int) -> np.ndarray:
    """Patch vectors (H, W, D) by loops over a NumPy reflect-padded image."""
    p = np.pad(img, f, mode="reflect")
    H, W = img.shape
    return np.stack([[p[i:i + 2 * f + 1, j:j + 2 * f + 1].ravel() for j in range(W)] for i in range(H)])


def nlm_loop(img: np.ndarray, f: int, t: int, h: float) -> np.ndarray:
    """Buades et al.'s non-local means by explicit loops and exponentials, float64."""
    P = patches_loop(img, f)
    H, W = img.shape
    out = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            num = den = 0.0
            for k in range(max(0, i - t), min(H, i + t + 1)):
                for m in range(max(0, j - t), min(W, j + t + 1)):
                    w = math.exp(-((P[i, j] - P[k, m]) ** 2).sum() / h**2)
                    num += w * img[k, m]
                    den += w
            out[i, j] = num / den
    return out


def test_patch_vectors_match_loop():
    img = torch.rand(6, 8, dtype=torch.float64)
    for f in (0, 1, 2):
        got = patch_vectors(img, f).permute(1, 2, 0).numpy()  # (D, H, W) -> (H, W, D)
        np.testing.assert_array_equal(got, patches_loop(img.numpy(), f))


@pytest.mark.parametrize("f,t,h", [(1, 2, 0.5), (1, 3, 0.2), (2, 2, 1.0), (0, 3, 0.1)])
@pytest.mark.parametrize("block,chunk_tiles", [(8, None), (1, None), (3, 2)])
def test_nlm_is_exactly_attend_with_gaussian_score_on_patch_vectors(f, t, h, block, chunk_tiles):
    img = torch.rand(7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(f + t))
    got = non_local_means(img, f, t, h, block=block, chunk_tiles=chunk_tiles)
    P = torch.from_numpy(patches_loop(img.numpy(), f))  # (H, W, D), built independently
    H, W = img.shape
    for i in range(H):
        for j in range(W):
            rows, cols = slice(max(0, i - t), i + t + 1), slice(max(0, j - t), j + t + 1)
            keys = P[rows, cols].reshape(-1, P.shape[-1])  # (Lk, D): patches of the search window
            vals = img[rows, cols].reshape(-1, 1)  # (Lk, 1): their centre pixels
            out, w = attend(P[i, j][None], keys, vals, score="gaussian", temperature=h**2)
            assert abs(out.item() - got[i, j].item()) < 1e-13
            if (i + j) % 5:
                continue  # the weight maps of a fifth of the pixels are enough
            wmap = nlm_weights(img, i, j, f, t, h)  # (2t+1, 2t+1), zero outside the image
            r0, c0 = t - (i - rows.start), t - (j - cols.start)
            nr, nc = min(i + t + 1, H) - rows.start, min(j + t + 1, W) - cols.start
            assert torch.allclose(wmap[r0:r0 + nr, c0:c0 + nc].reshape(-1), w[0], atol=1e-14)
            assert abs(wmap.sum().item() - 1) < 1e-12


@pytest.mark.parametrize("f,t,h", [(1, 2, 0.5), (2, 3, 0.8)])
def test_nlm_matches_loop_reference(f, t, h):
    img = torch.rand(8, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    np.testing.assert_allclose(non_local_means(img, f, t, h).numpy(), nlm_loop(img.numpy(), f, t, h), atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.integers(3, 8), st.integers(3, 8), st.integers(0, 2), st.integers(0, 3), st.floats(0.05, 5.0),
       st.integers(0, 1000))
def test_nlm_is_a_convex_combination(H, W, f, t, h, seed):
    f = min(f, min(H, W) - 1)
    img = torch.rand(H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    out = non_local_means(img, f, t, h)
    assert torch.isfinite(out).all()
    assert out.min() >= img.min() - 1e-12 and out.max() <= img.max() + 1e-12


def test_nlm_limits_of_h():
    img = torch.rand(9, 9, dtype=torch.float64)
    # tiny h: every pixel attends only to itself (its own patch is the only one at distance 0)
    assert torch.allclose(non_local_means(img, 1, 2, 1e-4), img)
    # huge h: a plain box mean over the search window (cut at the borders)
    box = torch.stack([torch.stack([img[max(0, i - 2):i + 3, max(0, j - 2):j + 3].mean() for j in range(9)])
                       for i in range(9)])
    assert torch.allclose(non_local_means(img, 1, 2, 1e6), box, atol=1e-10)


def test_nlm_float32_and_chunks_agree():
    img = torch.rand(20, 13)
    a = non_local_means(img, 1, 3, 0.4)
    for block, chunk in ((1, None), (5, 1), (16, None)):
        b = non_local_means(img, 1, 3, 0.4, block=block, chunk_tiles=chunk)
        assert b.dtype == torch.float32 and torch.allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a.double().numpy(), nlm_loop(img.double().numpy(), 1, 3, 0.4), atol=1e-5)


def test_nlm_beats_blur_and_bilateral_on_the_photo():
    x = load_sample_image(0.25)  # 150 x 128
    y = add_gaussian_noise(x, 0.1, seed=0)
    nlm = psnr(non_local_means(y, 1, 5, 0.42), x)
    assert nlm > psnr(gaussian_blur(y, 0.8), x) + 1
    assert nlm > psnr(bilateral_filter(y, 3, 1.5, 0.2), x) + 0.5


def test_nadaraya_watson_matches_formula_and_is_finite():
    g = torch.Generator().manual_seed(0)
    xt = torch.rand(30, generator=g, dtype=torch.float64) * 5
    yt = torch.sin(xt)
    xq = torch.linspace(-1, 6, 11, dtype=torch.float64)
    for bw in (0.3, 1.0):
        k = torch.exp(-((xq[:, None] - xt[None]) ** 2) / (2 * bw**2))
        ref = (k / k.sum(1, keepdim=True)) @ yt
        got, w = nadaraya_watson(xq, xt, yt, bw)
        assert torch.allclose(got, ref, atol=1e-12) and w.shape == (11, 30)
        assert torch.allclose(w.sum(1), torch.ones(11, dtype=torch.float64))
    far, _ = nadaraya_watson(torch.tensor([100.0], dtype=torch.float64), xt, yt, 0.1)
    assert torch.isfinite(far).all() and far.item() == pytest.approx(yt[xt.argmax()].item())


def kernel_loop(xq: np.ndarray, xt: np.ndarray, yt: np.ndarray, b: float, kernel: str) -> np.ndarray:
    """Nadaraya-Watson with the textbook kernels, by loops in float64 (NaN-free: empty rows give 0)."""
    K = {"gaussian": lambda u: math.exp(-u * u / 2), "boxcar": lambda u: float(abs(u) <= 1),
         "epanechnikov": lambda u: 0.75 * max(0.0, 1 - u * u)}[kernel]
    out = []
    for x in xq:
        w = np.array([K((x - xj) / b) for xj in xt])
        out.append(float(w @ yt / w.sum()) if w.sum() > 0 else 0.0)
    return np.array(out)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("b", [0.2, 0.7])
def test_kernel_regression_matches_a_loop_for_every_kernel(kernel, b):
    g = torch.Generator().manual_seed(2)
    xt = torch.rand(25, generator=g, dtype=torch.float64) * 5
    yt = torch.randn(25, generator=g, dtype=torch.float64)
    xq = torch.linspace(-1, 6, 15, dtype=torch.float64)  # the ends lie outside the data
    got, w = kernel_regression(xq, xt, yt, b, kernel)
    np.testing.assert_allclose(got.numpy(), kernel_loop(xq.numpy(), xt.numpy(), yt.numpy(), b, kernel), atol=1e-12)
    rows = w.sum(1)
    assert torch.isfinite(w).all() and ((rows - 1).abs() < 1e-12).logical_or(rows == 0).all()
    if kernel == "gaussian":
        torch.testing.assert_close(got, nadaraya_watson(xq, xt, yt, b)[0])
    else:  # compact support: a weight is zero exactly when the training point is farther than b
        far = (xq[:, None] - xt[None]).abs() > b * (1 if kernel == "boxcar" else 1 - 1e-12)
        assert torch.equal(w[far], torch.zeros_like(w[far]))


def test_log_kernel_values_and_leave_one_out():
    u = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(log_kernel(u, "gaussian").exp(), torch.exp(-u**2 / 2))
    torch.testing.assert_close(log_kernel(u, "boxcar").exp(), torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(log_kernel(u, "epanechnikov").exp(), (1 - u**2).clamp_min(0))
    xt = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    yt = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    loo, w = kernel_regression(xt, xt, yt, 1.5, "boxcar", leave_one_out=True)
    torch.testing.assert_close(loo, torch.tensor([2.0, 2.5, 2.0], dtype=torch.float64))  # mean of the others within b
    assert torch.equal(w.diagonal(), torch.zeros(3, dtype=torch.float64))


def test_fit_bandwidth_beats_a_bad_start_and_does_not_collapse():
    g = torch.Generator().manual_seed(0)
    xt = torch.sort(torch.rand(40, generator=g, dtype=torch.float64) * 5).values
    yt = 2 * torch.sin(xt) + xt + torch.randn(40, generator=g, dtype=torch.float64)
    b, losses = fit_bandwidth(xt, yt, init=3.0, steps=150)
    assert 0.05 < b < 3.0 and losses[-1] < 0.9 * losses[0]
    # the learned width is near the best leave-one-out width of a grid
    grid = torch.linspace(0.05, 2.0, 80, dtype=torch.float64)
    loo = [((kernel_regression(xt, xt, yt, float(c), leave_one_out=True)[0] - yt) ** 2).mean() for c in grid]
    best = float(grid[int(torch.stack(loo).argmin())])
    assert abs(b - best) < 0.1


def test_method_noise_is_what_the_filter_removed():
    img = torch.rand(8, 8, dtype=torch.float64)
    out = gaussian_blur(img, 1.0)
    torch.testing.assert_close(method_noise(img, out) + out, img)
    with pytest.raises(ValueError, match="one shape"):
        method_noise(img, out[:4])


def test_bad_kernel_regression_input():
    x = torch.rand(5, dtype=torch.float64)
    with pytest.raises(ValueError, match="kernel must be one of"):
        kernel_regression(x, x, x, 1.0, "triangle")
    with pytest.raises(ValueError, match="kernel must be one of"):
        log_kernel(x, "triangle")
    with pytest.raises(ValueError, match="leave_one_out"):
        kernel_regression(x[:3], x, x, 1.0, leave_one_out=True)
    with pytest.raises(ValueError, match="bandwidth"):
        kernel_regression(x, x, x, 0.0)
    with pytest.raises(ValueError, match="steps"):
        fit_bandwidth(x, x, steps=0)


@pytest.mark.parametrize("args,exc,match", [
    ((torch.rand(1, 6, 6), 1, 2, 0.5), ValueError, "image"),
    ((torch.rand(6), 1, 2, 0.5), ValueError, "image"),
    ((torch.ones(6, 6, dtype=torch.int32), 1, 2, 0.5), TypeError, "image"),
    ((torch.rand(6, 6), -1, 2, 0.5), ValueError, "patch"),
    ((torch.rand(6, 6), 1, -2, 0.5), ValueError, "search"),
    ((torch.rand(6, 6), 1, 2.0, 0.5), TypeError, "search"),
    ((torch.rand(6, 6), 1, 2, 0.0), ValueError, "h"),
    ((torch.rand(6, 6), 1, 2, -0.5), ValueError, "h"),
    ((torch.rand(6, 6), 6, 2, 0.5), ValueError, "patch"),
])
def test_bad_input(args, exc, match):
    with pytest.raises(exc, match=match):
        non_local_means(*args)


def test_bad_block_and_chunk():
    img = torch.rand(6, 6)
    with pytest.raises(ValueError, match="block"):
        non_local_means(img, 1, 2, 0.5, block=0)
    with pytest.raises(TypeError, match="block"):
        non_local_means(img, 1, 2, 0.5, block=2.0)
    with pytest.raises(ValueError, match="chunk_tiles"):
        non_local_means(img, 1, 2, 0.5, chunk_tiles=0)


def test_bad_nadaraya_watson_input():
    x = torch.rand(5)
    with pytest.raises(ValueError, match="x_query"):
        nadaraya_watson(x[None], x, x)
    with pytest.raises(ValueError, match="y_train"):
        nadaraya_watson(x, x, x[:4])
    with pytest.raises(ValueError, match="bandwidth"):
        nadaraya_watson(x, x, x, -1.0)
    with pytest.raises(TypeError, match="x_train"):
        nadaraya_watson(x, torch.arange(5), x)
