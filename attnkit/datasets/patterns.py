r"""Small image and pattern datasets generated in code for the Part III chapters.

Nothing is downloaded; every function takes a ``seed`` and returns the same tensors for it.

- ``repeated_patches``: images made of a few random patches, each repeated at random places of
  a grid, plus noise: a denoising task where the far-away *copies* of a patch hold the
  information (non-local blocks must find them by their content).
- ``tiled_textures``: periodic textures (a random motif tiled over the image) plus noise, a
  denoising task where far-away repeats of a pixel hold the information a local filter lacks
  (non-local means).
- ``shapes_dataset``: one of four shapes (square, cross, ring, bar) in one of four quadrants,
  with noise: a classification task for the tiny ViT and image/caption pairs for tiny CLIP.
- ``digit_glyphs``: the ten digits of a 3 x 5 bitmap font, upscaled: correlated binary
  patterns for the Hopfield network.

Images are ``(N, 1, H, W)`` float tensors: ``N`` images, one channel, ``H`` rows, ``W`` columns.
"""

from __future__ import annotations

import torch

from attnkit._checks import check_cells, check_int, check_positive, check_tensor

SHAPES = ("square", "cross", "ring", "bar")
"""Class names of ``shapes_dataset``, in label order."""

QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
"""Position names of ``shapes_dataset``, in label order."""

_FONT = {  # 3 x 5 bitmap font: one string of 3 characters per row
    0: ("###", "#.#", "#.#", "#.#", "###"),
    1: (".#.", "##.", ".#.", ".#.", "###"),
    2: ("###", "..#", "###", "#..", "###"),
    3: ("###", "..#", ".##", "..#", "###"),
    4: ("#.#", "#.#", "###", "..#", "..#"),
    5: ("###", "#..", "###", "..#", "###"),
    6: ("###", "#..", "###", "#.#", "###"),
    7: ("###", "..#", ".#.", ".#.", ".#."),
    8: ("###", "#.#", "###", "#.#", "###"),
    9: ("###", "#.#", "###", "..#", "###"),
}


def repeated_patches(n: int, *, grid: int = 4, patch: int = 4, motifs: int = 4, noise: float = 0.2,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images of repeated random patches: returns ``(noisy, clean, groups)``.

    Each clean image is a ``grid x grid`` array of ``patch x patch`` cells (``size = grid *
    patch``). ``motifs`` random patches (pixel values uniform in ``[0, 1)``, new ones for every
    image) fill the cells, each motif the same number of times (``grid**2 / motifs``) at random
    cells; ``noisy = clean + noise * N(0, 1)``. ``groups: (n, grid**2)`` long gives the motif of
    every cell in row-major order: cells with the same group are exact copies. A cell's copies
    are anywhere in the image, and its pixels are independent, so only *matching the content*
    of far-away cells can average the noise away. Shapes: ``(n, 1, size, size)`` for the images.
    """
    check_int("n", n, minimum=1)
    check_int("grid", grid, minimum=1)
    check_int("patch", patch, minimum=1)
    check_int("motifs", motifs, minimum=1)
    check_positive("noise", noise, allow_zero=True)
    cells = grid * grid
    if cells % motifs:
        raise ValueError(f"motifs={motifs} must divide the grid**2 = {cells} cells (equal numbers of copies)")
    g = torch.Generator().manual_seed(seed)
    tiles = torch.rand(n, motifs, patch, patch, generator=g)  # (n, motifs, P, P)
    groups = torch.stack([torch.randperm(cells, generator=g) % motifs for _ in range(n)])  # (n, G*G)
    cells_px = tiles[torch.arange(n)[:, None], groups]  # (n, G*G, P, P): the motif of every cell
    size = grid * patch
    clean = cells_px.reshape(n, grid, grid, patch, patch).permute(0, 1, 3, 2, 4)  # (n, G, P, G, P)
    clean = clean.reshape(n, 1, size, size)  # (n, 1, G*P, G*P)
    noisy = clean + noise * torch.randn(clean.shape, generator=g)
    return noisy, clean, groups


def tiled_textures(n: int, size: int = 16, *, periods: tuple[int, ...] = (3, 4, 5), noise: float = 0.5,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy periodic textures: returns ``(noisy, clean)``, both ``(n, 1, size, size)``.

    Each clean image tiles a random ``p x p`` motif (``p`` drawn from ``periods``, pixel values
    0 or 1) with a random offset; ``noisy = clean + noise * N(0, 1)``. A pixel's value appears
    about ``(size / p)^2`` times in the image, so averaging its repeats removes most of the noise.
    """
    check_int("n", n, minimum=1)
    check_int("size", size, minimum=2)
    check_positive("noise", noise, allow_zero=True)
    if not periods or any(isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= size for p in periods):
        raise ValueError(f"periods must be a non-empty tuple of ints in [1, size={size}]; got {periods!r}")
    g = torch.Generator().manual_seed(seed)
    clean = torch.empty(n, 1, size, size)
    rows = torch.arange(size)
    for i in range(n):
        p = periods[int(torch.randint(len(periods), (1,), generator=g))]
        motif = torch.rand(p, p, generator=g)  # (p, p): grey levels in [0, 1)
        dy, dx = (int(o) for o in torch.randint(p, (2,), generator=g))
        # pixel (r, c) takes motif[(r + dy) mod p, (c + dx) mod p]
        clean[i, 0] = motif[(rows[:, None] + dy) % p, (rows[None, :] + dx) % p]
    noisy = clean + noise * torch.randn(clean.shape, generator=g)
    return noisy, clean


def cells(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``(n, 1, G P, G P)`` images -> ``(n, G*G, P*P)``: the cells in row-major order, flattened."""
    check_cells("images", images, patch)
    if images.shape[1] != 1:
        raise ValueError(f"images must have one channel (n, 1, H, W); got shape {tuple(images.shape)}")
    n, _, H, W = images.shape
    x = images.reshape(n, H // patch, patch, W // patch, patch)  # (n, G, P, G, P)
    return x.permute(0, 1, 3, 2, 4).reshape(n, (H // patch) * (W // patch), patch * patch)  # (n, G*G, P*P)


def uncells(x: torch.Tensor, patch: int) -> torch.Tensor:
    """The inverse of ``cells``: ``(n, G*G, P*P)`` -> ``(n, 1, G P, G P)``."""
    check_tensor("x", x, min_rank=3, floating=False, shape="(n, G*G, P*P)")
    check_int("patch", patch, minimum=1)
    n, c, _ = x.shape if x.dim() == 3 else (0, 0, 0)
    grid = round(c**0.5)
    if x.dim() != 3 or grid * grid != c or x.shape[-1] != patch * patch or c == 0:
        raise ValueError(f"x must be (n, G*G, P*P) with P = patch = {patch}; got shape {tuple(x.shape)}")
    x = x.reshape(n, grid, grid, patch, patch).permute(0, 1, 3, 2, 4)  # (n, G, P, G, P)
    return x.reshape(n, 1, grid * patch, grid * patch)


def _shape_stamp(kind: int, s: int) -> torch.Tensor:
    """A ``(s, s)`` binary stamp of shape ``kind`` (index into ``SHAPES``)."""
    r = torch.arange(s)
    yy, xx = r[:, None].expand(s, s), r[None, :].expand(s, s)
    c = (s - 1) / 2
    if kind == 0:  # filled square
        return torch.ones(s, s)
    if kind == 1:  # cross (plus sign)
        return ((yy - c).abs() < 1) | ((xx - c).abs() < 1)
    if kind == 2:  # ring
        d = ((yy - c) ** 2 + (xx - c) ** 2).sqrt()
        return (d > c - 1.3) & (d <= c + 0.3)
    return (yy - c).abs() < 1  # horizontal bar


def shapes_dataset(n: int, size: int = 16, *, stamp: int = 6, noise: float = 0.2,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shapes in quadrants: returns ``(images (n, 1, size, size), shape (n,), quadrant (n,))``.

    Each image holds one ``stamp x stamp`` shape (``SHAPES``: square, cross, ring, bar) at a
    random position inside one of the four quadrants (``QUADRANTS``), plus Gaussian noise of
    standard deviation ``noise``. Labels are ``int64``.
    """
    check_int("n", n, minimum=1)
    check_int("stamp", stamp, minimum=3)
    check_int("size", size, minimum=2 * stamp)
    check_positive("noise", noise, allow_zero=True)
    g = torch.Generator().manual_seed(seed)
    shape = torch.randint(len(SHAPES), (n,), generator=g)
    quad = torch.randint(len(QUADRANTS), (n,), generator=g)
    stamps = [_shape_stamp(k, stamp).float() for k in range(len(SHAPES))]
    half = size // 2
    images = torch.zeros(n, 1, size, size)
    for i in range(n):
        qy, qx = divmod(int(quad[i]), 2)  # quadrant row and column
        y0 = qy * half + int(torch.randint(half - stamp + 1, (1,), generator=g))
        x0 = qx * half + int(torch.randint(half - stamp + 1, (1,), generator=g))
        images[i, 0, y0:y0 + stamp, x0:x0 + stamp] = stamps[int(shape[i])]
    images += noise * torch.randn(images.shape, generator=g)
    return images, shape, quad


def digit_glyphs(scale: int = 2) -> torch.Tensor:
    """The digits 0-9 of a 3 x 5 bitmap font as ``+-1`` images ``(10, 5 * scale, 3 * scale)``.

    ``+1`` is ink, ``-1`` background. The digits share many pixels (8 and 0 differ in one), so
    they are strongly correlated patterns: hard for the classical Hopfield network.
    """
    check_int("scale", scale, minimum=1)
    rows = [[[1.0 if ch == "#" else -1.0 for ch in line] for line in _FONT[d]] for d in range(10)]
    glyphs = torch.tensor(rows)  # (10, 5, 3)
    return glyphs.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)  # (10, 5s, 3s)


def corrupt(patterns: torch.Tensor, fraction: float, *, mode: str = "flip", seed: int = 0) -> torch.Tensor:
    """Corrupt ``+-1`` patterns ``(..., d)`` or images: flip or zero (``mode="mask"``) a fraction of entries.

    ``mode="flip"`` multiplies each entry by -1 with probability ``fraction``; ``mode="mask"``
    sets the bottom ``fraction`` of the rows of each image ``(..., H, W)`` to 0 (unknown).
    """
    if not isinstance(patterns, torch.Tensor) or not patterns.is_floating_point():
        raise TypeError(f"patterns must be a floating-point torch.Tensor; got {type(patterns).__name__}")
    if patterns.dim() < 1:
        raise ValueError(f"patterns must have at least one dimension (..., d); got shape {tuple(patterns.shape)}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"fraction must be a number in [0, 1]; got {type(fraction).__name__}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction}")
    g = torch.Generator().manual_seed(seed)
    if mode == "flip":
        flips = (torch.rand(patterns.shape, generator=g) < fraction).to(patterns.device)  # drawn on the CPU
        return torch.where(flips, -patterns, patterns)
    if mode == "mask":
        if patterns.dim() < 2:
            raise ValueError(f"mode='mask' needs images (..., H, W); got shape {tuple(patterns.shape)}")
        out = patterns.clone()
        H = patterns.shape[-2]
        out[..., H - round(fraction * H):, :] = 0.0
        return out
    raise ValueError(f"mode must be 'flip' or 'mask'; got {mode!r}")
