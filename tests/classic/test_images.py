"""Tests for attnkit.classic.images: the sample photo, noise, Gaussian blur, PSNR and edge measures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnkit.classic.images import (
    add_gaussian_noise,
    edge_mask,
    edge_preservation,
    gaussian_blur,
    gaussian_kernel1d,
    gradient_magnitude,
    load_sample_image,
    psnr,
    sliding_windows,
    window_offsets,
)


def test_sample_image_is_float_gray_in_unit_range():
    x = load_sample_image()
    assert x.shape == (300, 256) and x.dtype == torch.float32
    assert 0 <= x.min() < 0.2 and 0.8 < x.max() <= 1
    full = load_sample_image(1.0, dtype=torch.float64)
    assert full.shape == (600, 512) and full.dtype == torch.float64
    # the shrunk photo is close to a 2x2 block average of the full one
    pooled = torch.nn.functional.avg_pool2d(full[None, None], 2)[0, 0]
    assert (pooled - x.double()).abs().mean() < 0.02


@pytest.mark.parametrize("scale", [0.0, -1.0, 1.5])
def test_sample_image_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        load_sample_image(scale)


def test_noise_is_seeded_with_the_right_sigma():
    x = torch.full((200, 200), 0.5, dtype=torch.float64)
    a, b = add_gaussian_noise(x, 0.1, seed=3), add_gaussian_noise(x, 0.1, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, add_gaussian_noise(x, 0.1, seed=4))
    assert abs((a - x).std().item() - 0.1) < 0.003 and abs((a - x).mean().item()) < 0.003
    clipped = add_gaussian_noise(x, 1.0, seed=0, clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1
    with pytest.raises(ValueError, match="sigma"):
        add_gaussian_noise(x, -0.1)


def _blur_loop(img: np.ndarray, sigma: float, r: int) -> np.ndarray:
    t = np.arange(-r, r + 1)
    g = np.exp(-(t**2) / (2 * sigma**2))
    g /= g.sum()
    p = np.pad(img, r, mode="reflect")
    H, W = img.shape
    out = np.zeros_like(img)
    for i in range(H):
        for j in range(W):
            out[i, j] = (np.outer(g, g) * p[i:i + 2 * r + 1, j:j + 2 * r + 1]).sum()
    return out


@pytest.mark.parametrize("sigma,radius", [(1.0, None), (0.7, 2), (2.0, 3)])
def test_gaussian_blur_matches_loop(sigma, radius):
    img = torch.rand(9, 11, dtype=torch.float64)
    r = math.ceil(3 * sigma) if radius is None else radius
    ref = _blur_loop(img.numpy(), sigma, r)
    np.testing.assert_allclose(gaussian_blur(img, sigma, radius).numpy(), ref, atol=1e-12)
    k = gaussian_kernel1d(sigma, radius)
    assert k.shape == (2 * r + 1,) and abs(k.sum().item() - 1) < 1e-12


def test_gaussian_blur_keeps_constants_and_dtype():
    x = torch.full((5, 4), 0.3)
    y = gaussian_blur(x, 3.0)  # radius 9 is larger than the image: the reflection is clipped
    assert y.dtype == torch.float32 and torch.allclose(y, x)


def test_psnr_known_values():
    ref = torch.zeros(10, 10, dtype=torch.float64)
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0)
    assert psnr(ref + 0.01, ref) == pytest.approx(40.0)
    assert psnr(ref, ref) == float("inf")
    assert psnr(ref + 25.5, ref, data_range=255) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="one shape"):
        psnr(ref, torch.zeros(10, 9, dtype=torch.float64))


def test_gradient_magnitude_matches_numpy_sobel():
    img = torch.rand(6, 7, dtype=torch.float64)
    p = np.pad(img.numpy(), 1, mode="edge")
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
    ref = np.zeros((6, 7))
    for i in range(6):
        for j in range(7):
            win = p[i:i + 3, j:j + 3]
            ref[i, j] = math.hypot((sx * win).sum(), (sx.T * win).sum())
    np.testing.assert_allclose(gradient_magnitude(img).numpy(), ref, atol=1e-12)
    step = torch.zeros(5, 6, dtype=torch.float64)
    step[:, 3:] = 1.0
    assert gradient_magnitude(step)[2, 2].item() == pytest.approx(0.5)


def test_edge_preservation_orders_filters():
    x = load_sample_image(0.25, dtype=torch.float64)
    assert edge_preservation(x, x) == pytest.approx(1.0)
    mild, strong = gaussian_blur(x, 1.0), gaussian_blur(x, 3.0)
    assert 0 < edge_preservation(strong, x) < edge_preservation(mild, x) < 1
    m = edge_mask(x, 0.1)
    assert m.dtype == torch.bool and abs(m.double().mean().item() - 0.1) < 0.02
    with pytest.raises(ValueError, match="fraction"):
        edge_mask(x, 1.5)


def test_sliding_windows_match_loop():
    x = torch.rand(2, 5, 6, dtype=torch.float64)
    r = 2
    win, valid = sliding_windows(x, r, 1, 4)
    off = window_offsets(r).long()
    assert win.shape == (3 * 6, 25, 2) and valid.shape == (18, 25)
    for n, (i, j) in enumerate((i, j) for i in range(1, 4) for j in range(6)):
        for kk, (dy, dx) in enumerate(off.tolist()):
            inside = 0 <= i + dy < 5 and 0 <= j + dx < 6
            assert bool(valid[n, kk]) == inside
            expected = x[:, i + dy, j + dx] if inside else torch.zeros(2, dtype=torch.float64)
            assert torch.equal(win[n, kk], expected)


@pytest.mark.parametrize("fn", [lambda im: gaussian_blur(im, 1.0), lambda im: gradient_magnitude(im),
                                lambda im: add_gaussian_noise(im, 0.1), lambda im: psnr(im, im)])
def test_bad_images(fn):
    with pytest.raises(ValueError, match="2-D"):
        fn(torch.rand(2, 4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.ones(4, 4, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        fn(np.ones((4, 4)))


def test_bad_sigma_and_radius():
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(torch.rand(4, 4), -1.0)
    with pytest.raises(ValueError, match="radius"):
        gaussian_blur(torch.rand(4, 4), 1.0, -2)
    with pytest.raises(TypeError, match="radius"):
        gaussian_blur(torch.rand(4, 4), 1.0, 1.5)
