r"""Images for the Part I filters: a real photograph, noise, a Gaussian blur and two measures.

The bilateral filter and non-local means chapters denoise matplotlib's sample photograph of
Grace Hopper (shipped with matplotlib, so nothing is downloaded). This module loads it as a
float grayscale image in $[0, 1]$, adds Gaussian noise with a seed, blurs it with a Gaussian
(the linear baseline every edge-aware filter is compared with) and measures the result:

- :func:`psnr`: peak signal-to-noise ratio $10 \log_{10}(1 / \mathrm{MSE})$ in dB;
- :func:`edge_preservation`: how much of the clean image's gradient survives at its edges.

Images are 2-D tensors ``(H, W)``: ``H`` rows, ``W`` columns, values in ``[0, 1]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attnkit._checks import check_int, check_positive, check_same_device, check_size_fits, check_tensor, shape_str


def check_image(name: str, image: object) -> torch.Tensor:
    """A floating-point grayscale image ``(H, W)``; else a TypeError/ValueError naming ``name``."""
    check_tensor(name, image)
    if image.dim() != 2:
        raise ValueError(f"{name} must be a 2-D grayscale image (H, W); got shape {shape_str(image)}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column; got shape {shape_str(image)}")
    if image.device.type == "meta":
        raise ValueError(f"{name} is on the meta device, which holds no pixel values")
    return image


def check_radius(name: str, radius: object) -> int:
    """A non-negative integer window radius."""
    return check_int(name, radius, minimum=0)


def check_positive_int(name: str, value: object) -> int:
    """A positive integer (a tile size, a number of rows per chunk)."""
    return check_int(name, value, minimum=1)


def load_sample_image(scale: float = 0.5, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Matplotlib's ``grace_hopper.jpg`` as a float grayscale image ``(H, W)`` in ``[0, 1]``.

    The RGB photograph (600 x 512 pixels) is converted to luminance with the ITU-R BT.601
    weights ``0.299 R + 0.587 G + 0.114 B`` and, for ``scale < 1``, shrunk with an antialiased
    bilinear resize (``scale=0.5`` gives 300 x 256 pixels).
    """
    import matplotlib.cbook as cbook
    import matplotlib.image as mimage

    check_positive("scale", scale)
    if scale > 1:
        raise ValueError(f"scale must be in (0, 1] (the photo is only shrunk); got {scale}")
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        rgb = torch.from_numpy(mimage.imread(f, format="jpg").copy()).to(torch.float64) / 255.0  # (H, W, 3)
    gray = rgb @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)  # (H, W)
    if scale < 1:
        h, w = gray.shape
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        gray = F.interpolate(gray[None, None], size=size, mode="bilinear", antialias=True,
                             align_corners=False)[0, 0]  # (1, 1, H, W) -> (H', W')
    return gray.clamp(0, 1).to(dtype)


def add_gaussian_noise(image: torch.Tensor, sigma: float, *, seed: int = 0, clip: bool = False) -> torch.Tensor:
    r"""``image + sigma * N(0, 1)`` with a seeded generator (optionally clipped to ``[0, 1]``).

    ``image: (H, W)`` float -> ``(H, W)``; ``sigma`` is in the image's units (0.1 = 10% of
    the range $[0, 1]$). Unclipped noise (the default) keeps the noise zero-mean, as in the
    denoising literature.
    """
    check_image("image", image)
    check_positive("sigma", sigma, allow_zero=True)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(image.shape, generator=g, dtype=torch.float64).to(image)  # on the image's device
    noisy = image + sigma * noise  # y = x + sigma * n,  n ~ N(0, 1)
    return noisy.clamp(0, 1) if clip else noisy


def gaussian_kernel1d(sigma: float, radius: int | None = None, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Normalised 1-D Gaussian $g_t \propto e^{-t^2 / (2\sigma^2)}$ for $t = -r, \dots, r$; ``(2r+1,)``.

    The default radius is $\lceil 3\sigma \rceil$.
    """
    check_positive("sigma", sigma)
    radius = math.ceil(3 * sigma) if radius is None else check_radius("radius", radius)
    t = torch.arange(-radius, radius + 1, dtype=dtype)
    g = torch.exp(-t**2 / (2 * sigma**2))  # g_t = exp(-t^2 / (2 sigma^2))
    return g / g.sum()


def gaussian_blur(image: torch.Tensor, sigma: float, radius: int | None = None) -> torch.Tensor:
    r"""Gaussian blur of ``image: (H, W)`` -> ``(H, W)``, separable, with reflected borders.

    Equivalent to the bilateral filter with ``sigma_range = inf``: every neighbour gets the
    weight $e^{-\lVert p_i - p_j\rVert^2 / (2\sigma^2)}$ whatever its intensity. ``radius``
    defaults to $\lceil 3\sigma \rceil$ (clipped to the image size for the reflection, so a radius
    beyond the image changes nothing).
    """
    check_image("image", image)
    check_positive("sigma", sigma)
    radius = math.ceil(3 * sigma) if radius is None else check_radius("radius", radius)
    # only max(H, W) - 1 taps fit the reflection: a wider kernel is cut there anyway (same result)
    radius = min(radius, max(image.shape) - 1)
    g = gaussian_kernel1d(sigma, radius, dtype=image.dtype).to(image.device)
    r = (g.numel() - 1) // 2
    x = image[None, None]  # (1, 1, H, W)
    rh, rw = min(r, image.shape[0] - 1), min(r, image.shape[1] - 1)
    if rh or rw:
        x = F.pad(x, (rw, rw, rh, rh), mode="reflect")
    gh = g[r - rh:r + rh + 1] / g[r - rh:r + rh + 1].sum()
    gw = g[r - rw:r + rw + 1] / g[r - rw:r + rw + 1].sum()
    x = F.conv2d(x, gh.view(1, 1, -1, 1))  # blur the columns: (1, 1, H, W + 2 rw)
    x = F.conv2d(x, gw.view(1, 1, 1, -1))  # blur the rows:    (1, 1, H, W)
    return x[0, 0]


def psnr(estimate: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> float:
    r"""Peak signal-to-noise ratio in dB: $10 \log_{10}(\mathrm{range}^2 / \mathrm{MSE})$.

    ``estimate`` and ``reference``: ``(H, W)`` of one shape. Higher is better; +6 dB halves the
    root-mean-square error. Identical images give ``inf``.
    """
    check_image("estimate", estimate)
    check_image("reference", reference)
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate and reference must have one shape; got {shape_str(estimate)} "
                         f"and {shape_str(reference)}")
    check_positive("data_range", data_range)
    check_same_device(estimate=estimate, reference=reference)
    mse = (estimate.double() - reference.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(data_range**2 / mse)


def gradient_magnitude(image: torch.Tensor) -> torch.Tensor:
    r"""Sobel gradient magnitude $\sqrt{G_x^2 + G_y^2}$ of ``image: (H, W)`` -> ``(H, W)``.

    Borders are replicated; the Sobel kernels are divided by 8 so a unit step gives 0.5 per
    pixel, i.e. the magnitude is in intensity units per pixel.
    """
    check_image("image", image)
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=image.dtype) / 8
    kernels = torch.stack([sobel_x, sobel_x.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    x = F.pad(image[None, None], (1, 1, 1, 1), mode="replicate")  # (1, 1, H+2, W+2)
    gx, gy = F.conv2d(x, kernels)[0]  # (2, H, W)
    return torch.sqrt(gx**2 + gy**2)


def edge_mask(reference: torch.Tensor, fraction: float = 0.05) -> torch.Tensor:
    """Bool ``(H, W)``: the ``fraction`` of pixels with the largest gradient in the clean ``reference``."""
    check_image("reference", reference)
    check_positive("fraction", fraction)
    if fraction > 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
    grad = gradient_magnitude(reference)
    threshold = torch.quantile(grad.flatten().double(), 1 - fraction).to(grad.dtype)
    return grad >= threshold


def edge_preservation(filtered: torch.Tensor, reference: torch.Tensor, fraction: float = 0.05) -> float:
    r"""Share of the clean image's edge gradient that survives filtering.

    $\sum_{i \in E} \lVert \nabla f \rVert_i / \sum_{i \in E} \lVert \nabla x \rVert_i$ over the edge set $E$ of
    ``edge_mask`` (the ``fraction`` of strongest-gradient pixels of the clean
    ``reference``). 1 means edges as sharp as in the clean image, values near 0 mean smeared
    edges. ``filtered``, ``reference``: ``(H, W)`` of one shape.
    """
    check_image("filtered", filtered)
    check_image("reference", reference)
    check_same_device(filtered=filtered, reference=reference)
    mask = edge_mask(reference, fraction)
    if filtered.shape != reference.shape:
        raise ValueError(f"filtered and reference must have one shape; got {shape_str(filtered)} "
                         f"and {shape_str(reference)}")
    kept = gradient_magnitude(filtered)[mask].double().sum()
    clean = gradient_magnitude(reference)[mask].double().sum()
    return (kept / clean).item()


def window_offsets(radius: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Offsets ``(K, 2)`` = (row, column) of the ``K = (2r+1)^2`` pixels of a window, row-major.

    The order is that of ``sliding_windows`` (and ``torch.nn.functional.unfold``): from
    ``(-r, -r)`` along the first row to ``(r, r)``.
    """
    check_radius("radius", radius)
    t = torch.arange(-radius, radius + 1, dtype=dtype)
    dy, dx = torch.meshgrid(t, t, indexing="ij")  # (2r+1, 2r+1) each
    return torch.stack([dy.flatten(), dx.flatten()], dim=-1)  # (K, 2)


def sliding_windows(x: torch.Tensor, radius: int, start: int = 0, stop: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(2r+1)^2`` neighbours of every pixel in rows ``start:stop``, by ``unfold``.

    ``x: (C, H, W)`` (``C`` features per pixel) -> ``windows: (n, K, C)`` and ``valid: (n, K)``
    with ``n = (stop - start) * W`` query pixels (row-major) and ``K = (2r+1)^2`` neighbours in
    the order of ``window_offsets``. Neighbours outside the image are zeros in ``windows``
    and ``False`` in ``valid`` (they become masked keys). ``radius`` is at most
    ``max(H, W) - 1`` (a wider window only adds masked neighbours: clamp it first).
    """
    check_tensor("x", x, min_rank=3, shape="(C, H, W)")
    if x.dim() != 3 or min(x.shape) < 1:
        raise ValueError(f"x must be (C, H, W) with C, H, W >= 1; got shape {shape_str(x)}")
    C, H, W = x.shape
    check_radius("radius", radius)
    check_size_fits("radius", radius, max(H, W) - 1, f"a window wider than x: {shape_str(x)} adds only masked pixels")
    check_int("start", start, minimum=0)
    stop = H if stop is None else check_int("stop", stop, minimum=start + 1)
    if stop > H:
        raise ValueError(f"stop must be at most H = {H}; got {stop}")
    lo, hi = max(0, start - radius), min(H, stop + radius)
    # zero padding only where the window leaves the image: (C, stop - start + 2r, W + 2r)
    pad = (radius, radius, radius - (start - lo), radius - (hi - stop))
    xs = F.pad(x[:, lo:hi], pad)
    ones = F.pad(torch.ones(1, hi - lo, W, dtype=x.dtype, device=x.device), pad)
    k = 2 * radius + 1
    cols = F.unfold(xs[None], k)  # (1, C * K, n)
    windows = cols.view(C, k * k, -1).permute(2, 1, 0).contiguous()  # (C, K, n) -> (n, K, C)
    valid = F.unfold(ones[None], k)[0].T > 0.5  # (n, K)
    return windows, valid
