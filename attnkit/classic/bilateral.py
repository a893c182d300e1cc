r"""The bilateral filter (Tomasi and Manduchi, 1998) as attention.

Every pixel $i$ is a **query** over the pixels $j$ of its $(2r+1)\times(2r+1)$ window, the
**keys** and **values** are those pixels' intensities, and the weight of $j$ is a spatial
Gaussian times a range (intensity) Gaussian:

$$
a_{ij} = \frac{\exp(-\lVert p_i - p_j\rVert^2 / 2\sigma_s^2 - (x_i - x_j)^2 / 2\sigma_r^2)}{\sum_{j'} (\dots)},
\qquad y_i = \sum_j a_{ij}\, x_j .
$$

In :func:`attnkit.attend` terms: ``q = x_i`` (``d = 1``), ``k = v = x_j``, the ``gaussian``
score $-(x_i - x_j)^2$ at temperature $2\sigma_r^2$, softmax, and the spatial term as an
additive float mask $-\lVert p_i - p_j\rVert^2 / (2\sigma_s^2)$ (``-inf`` for neighbours outside
the image, which therefore get weight 0). With $\sigma_r \to \infty$ it is a Gaussian blur.

Shapes: ``image: (H, W)``; ``n`` query pixels per chunk, ``K = (2r+1)^2`` keys per query.

Against the peers (the book's *Conventions* page; ``tests/test_conventions.py`` checks both):

- OpenCV's ``cv2.bilateralFilter(src, d, sigmaColor, sigmaSpace)`` uses the same two Gaussians
  (``sigmaColor`` is our ``sigma_range``, ``sigmaSpace`` our ``sigma_space``) but a **disc** of
  radius ``d // 2`` instead of our square of radius ``radius``, and pads the border by
  reflection (``BORDER_REFLECT_101``) where we leave outside pixels out and renormalise. It
  equals ``attend`` over the disc offsets of the reflect-padded image.
- scikit-image's ``denoise_bilateral(image, win_size, sigma_color, sigma_spatial)`` has our
  square window (``win_size = 2 * radius + 1``) and the same range Gaussian, but pads with
  ``mode`` (default a constant 0 that takes part) and, in version 0.26, builds its spatial
  lookup table on a grid one offset too wide, so its spatial kernel is not the symmetric
  Gaussian; only the interior with near-uniform spatial weights agrees exactly.
"""

from __future__ import annotations

import torch

from attnkit._checks import check_positive, check_size_fits
from attnkit.classic.images import check_image, check_positive_int, check_radius, sliding_windows, window_offsets
from attnkit.core import attend

_CHUNK_ELEMENTS = 1 << 22  # about 4M window entries (16 MB in float32) per chunk of rows


def spatial_log_weights(radius: int, sigma_space: float, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The spatial term $-\lVert p_i - p_j\rVert^2 / (2\sigma_s^2)$ for the ``K`` offsets: ``(K,)``."""
    check_positive("sigma_space", sigma_space)
    off = window_offsets(radius, dtype=dtype)  # (K, 2)
    return -(off**2).sum(-1) / (2 * sigma_space**2)


def _check_args(image: torch.Tensor, radius: int, sigma_space: float, sigma_range: float) -> None:
    check_image("image", image)
    check_radius("radius", radius)
    check_positive("sigma_space", sigma_space)
    check_positive("sigma_range", sigma_range)


def _bilateral_rows(image: torch.Tensor, radius: int, sigma_space: float, sigma_range: float,
                    start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Output ``(n,)`` and weights ``(n, K)`` for the query pixels of rows ``start:stop``."""
    windows, valid = sliding_windows(image[None], radius, start, stop)  # (n, K, 1), (n, K)
    q = image[start:stop].reshape(-1, 1, 1)  # (n, Lq=1, d=1): the centre pixel x_i
    spatial = spatial_log_weights(radius, sigma_space, dtype=image.dtype).to(image.device)  # (K,)
    # float mask: -|p_i - p_j|^2 / (2 sigma_s^2) inside the image, -inf outside: (n, 1, K)
    mask = torch.where(valid, spatial, torch.full_like(spatial, float("-inf"))).unsqueeze(1)
    # a_ij = softmax_j(-(x_i - x_j)^2 / (2 sigma_r^2) + spatial_ij);  y_i = sum_j a_ij x_j
    out, w = attend(q, windows, windows, score="gaussian", temperature=2 * sigma_range**2, mask=mask)
    return out.view(-1), w.squeeze(1)  # (n,), (n, K)


def bilateral_filter(image: torch.Tensor, radius: int, sigma_space: float, sigma_range: float, *,
                     chunk_rows: int | None = None) -> torch.Tensor:
    r"""Bilateral filter of a grayscale ``image: (H, W)`` -> ``(H, W)``, computed by ``attend``.

    Equivalent to (for every pixel ``(i, j)``, neighbours ``(k, l)`` inside the image)::

        w = exp(-((i-k)**2 + (j-l)**2) / (2 * sigma_space**2)
                - (x[i, j] - x[k, l])**2 / (2 * sigma_range**2))
        y[i, j] = sum(w * x[k, l]) / sum(w)          # over |i-k| <= r, |j-l| <= r

    Args:
        image: float grayscale image ``(H, W)``.
        radius: window half-width ``r >= 0``; the window is ``(2r+1) x (2r+1)`` (about
            ``2 * sigma_space`` is enough). A radius above ``max(H, W) - 1`` is clamped to it,
            which changes nothing (the extra window pixels lie outside the image).
        sigma_space: spatial bandwidth in pixels (> 0).
        sigma_range: intensity bandwidth in image units (> 0): differences much larger than it
            (edges) get almost no weight.
        chunk_rows: rows of queries per chunk (default: about 4M window entries per chunk).

    Returns:
        The filtered image, same shape and dtype.

    Raises:
        TypeError: ``image`` not a floating-point tensor, ``radius`` not an int.
        ValueError: ``image`` not 2-D, a negative ``radius``, non-positive sigmas.
    """
    _check_args(image, radius, sigma_space, sigma_range)
    H, W = image.shape
    # a window wider than the image adds only masked (outside) pixels: same result, less memory
    radius = min(radius, max(H, W) - 1)
    K = (2 * radius + 1) ** 2
    step = max(1, _CHUNK_ELEMENTS // (W * K)) if chunk_rows is None else check_positive_int("chunk_rows", chunk_rows)
    rows = [_bilateral_rows(image, radius, sigma_space, sigma_range, a, min(a + step, H))[0]
            for a in range(0, H, step)]
    return torch.cat(rows).view(H, W)  # (H * W,) -> (H, W)


def bilateral_weights(image: torch.Tensor, row: int, col: int, radius: int, sigma_space: float,
                      sigma_range: float) -> torch.Tensor:
    """The attention weights of one query pixel ``(row, col)`` over its window: ``(2r+1, 2r+1)``.

    Entry ``[r + dy, r + dx]`` is the weight of pixel ``(row + dy, col + dx)``; it is 0 outside
    the image. The map sums to 1 and ``bilateral_filter(image, ...)[row, col]`` equals
    ``(bilateral_weights(...) * window).sum()``. ``radius`` may exceed the image (the extra
    entries are 0) up to 2047, a map of at most 2^24 entries; larger radii are refused.
    """
    _check_args(image, radius, sigma_space, sigma_range)
    H, W = image.shape
    # the map has (2r+1)^2 entries: refuse maps beyond 2^24 entries (r > 2047)
    check_size_fits("radius", radius, 2047, "the weight map is (2r+1, 2r+1), at most 2^24 entries")
    for name, value, size in (("row", row, H), ("col", col, W)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
            raise ValueError(f"{name} must be an int in [0, {size}); got {value!r}")
    # pixels beyond the image get weight 0: compute the window that covers the image, pad with zeros
    inner = min(radius, max(H, W) - 1)
    _, w = _bilateral_rows(image, inner, sigma_space, sigma_range, row, row + 1)  # (W, K)
    pad = radius - inner
    return torch.nn.functional.pad(w[col].view(2 * inner + 1, 2 * inner + 1), (pad, pad, pad, pad))
