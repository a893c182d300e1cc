r"""Non-local means (Buades, Coll and Morel, 2005) as attention, and its 1-D ancestor.

Non-local means replaces every pixel by a weighted average of the pixels of a large search
window, weighting pixel $j$ by how much the **patch** around it looks like the patch around
pixel $i$:

$$
a_{ij} = \frac{\exp(-\lVert P_i - P_j\rVert^2 / h^2)}{\sum_{j'} \exp(-\lVert P_i - P_{j'}\rVert^2 / h^2)},
\qquad y_i = \sum_j a_{ij}\, x_j ,
$$

where $P_i \in \mathbb{R}^{(2f+1)^2}$ is the vector of pixel values of the $(2f+1)\times(2f+1)$
patch centred at $i$. In :func:`attnkit.attend` terms: ``q = P_i``, ``k = P_j``, ``v = x_j``,
the ``gaussian`` score $-\lVert q - k\rVert^2$ at temperature $h^2$, softmax, and a bool mask
that drops search-window pixels outside the image.

The same weights on scalars are Nadaraya-Watson kernel regression (1964), the 1-D view of
attention used by Dive into Deep Learning: ``nadaraya_watson``; ``kernel_regression`` takes
other kernels (boxcar, Epanechnikov) as the score $\log K$, and ``fit_bandwidth`` learns the
Gaussian's width by leave-one-out gradient descent.

Shapes: ``image: (H, W)``; ``D = (2f+1)^2`` patch width; ``K = (2t+1)^2`` keys per query.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attnkit._checks import (
    argument_names,
    check_int,
    check_positive,
    check_same_dtype_device,
    check_size_fits,
    check_tensor,
    shape_str,
)
from attnkit.classic.images import check_image, check_positive_int, check_radius, sliding_windows
from attnkit.core import attend

_CHUNK_SCORES = 1 << 22  # about 4M (query, key) scores (16 MB in float32) per attend call


def patch_vectors(image: torch.Tensor, patch: int) -> torch.Tensor:
    """The patch of every pixel as a vector: ``image: (H, W)`` -> ``(D, H, W)``, ``D = (2f+1)^2``.

    Entry ``[(f + dy) * (2f+1) + (f + dx), i, j]`` is ``image[i + dy, j + dx]``, with the image
    reflected at its borders (``f = patch`` must be smaller than both sides of the image).
    """
    check_image("image", image)
    check_radius("patch", patch)
    H, W = image.shape
    if patch >= min(H, W):
        raise ValueError(f"patch radius must be smaller than the image sides for reflection; got patch = "
                         f"{patch} for image of shape {shape_str(image)}")
    x = image[None, None]  # (1, 1, H, W)
    if patch:
        x = F.pad(x, (patch, patch, patch, patch), mode="reflect")  # (1, 1, H + 2f, W + 2f)
    k = 2 * patch + 1
    return F.unfold(x, k).view(k * k, H, W)  # (1, D, H * W) -> (D, H, W)


def _check_args(image: torch.Tensor, patch: int, search: int, h: float) -> None:
    check_image("image", image)
    check_radius("patch", patch)
    check_radius("search", search)
    check_positive("h", h)


def _nlm_rows(image: torch.Tensor, patches: torch.Tensor, search: int, h: float, start: int,
              stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Output ``(n,)`` and weights ``(n, K)`` for the query pixels of rows ``start:stop``."""
    D = patches.shape[0]
    q = patches[:, start:stop].reshape(D, -1).T.unsqueeze(1)  # (D, n) -> (n, Lq=1, D): P_i
    k, valid = sliding_windows(patches, search, start, stop)  # (n, K, D): P_j, (n, K)
    v, _ = sliding_windows(image[None], search, start, stop)  # (n, K, 1): x_j
    # a_ij = softmax_j(-|P_i - P_j|^2 / h^2) over the search window;  y_i = sum_j a_ij x_j
    out, w = attend(q, k, v, score="gaussian", temperature=h**2, mask=valid.unsqueeze(1))
    return out.view(-1), w.squeeze(1)  # (n,), (n, K)


def _tiles(x: torch.Tensor, size: int, stride: int, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """``x: (C, H, W)`` zero-padded by ``pad`` and cut into ``size x size`` tiles: ``(n_tiles, size^2, C)``."""
    C = x.shape[0]
    cols = F.unfold(F.pad(x, pad)[None], size, stride=stride)  # (1, C * size^2, n_tiles)
    return cols.view(C, size * size, -1).permute(2, 1, 0).contiguous()  # (n_tiles, size^2, C)


def non_local_means(image: torch.Tensor, patch: int, search: int, h: float, *, block: int = 8,
                    chunk_tiles: int | None = None) -> torch.Tensor:
    r"""Non-local means of a grayscale ``image: (H, W)`` -> ``(H, W)``, computed by ``attend``.

    Equivalent to (for every pixel ``i`` and pixels ``j`` of its search window inside the image)::

        P = patch_vectors(image, patch)                  # (D, H, W)
        w_ij = exp(-((P[:, i] - P[:, j])**2).sum() / h**2)
        y[i] = sum_j w_ij * image[j] / sum_j w_ij

    The queries are processed in ``block x block`` tiles: the ``b^2`` queries of a tile share
    one key region of ``(b + 2t)^2`` pixels, and a bool mask keeps, for each query, only its own
    ``(2t+1)^2`` search window (and only pixels inside the image). One ``attend`` call then does
    a dense ``(b^2, D) x (D, (b+2t)^2)`` product per tile instead of ``b^2`` tiny ones; this
    only amortises the cost of a call (every tile's scores are still materialised, unlike
    FlashAttention's online softmax). ``block=1`` is one query per call.

    Args:
        image: float grayscale image ``(H, W)``.
        patch: patch radius ``f``; patches are ``(2f+1) x (2f+1)``, reflected at the borders.
        search: search-window radius ``t``; each pixel attends to the ``(2t+1)^2`` pixels
            around it that lie inside the image. A radius above ``max(H, W) - 1`` is clamped
            to it, which changes nothing (the extra pixels lie outside the image).
        h: bandwidth (> 0) in the units of a patch distance: the squared distance sums over
            ``(2f+1)^2`` pixels, so pure noise of standard deviation ``sigma`` puts it near
            ``2 (2f+1)^2 sigma^2`` and a good ``h`` grows like ``sigma * (2f+1)``.
        block: side of the query tiles (>= 1; clamped to ``max(H, W)``, which changes nothing).
        chunk_tiles: tiles per ``attend`` call (default: about 4M scores per call).

    Returns:
        The denoised image, same shape and dtype.

    Raises:
        TypeError: ``image`` not a floating-point tensor, ``patch``/``search``/``block`` not ints.
        ValueError: ``image`` not 2-D, negative radii, a patch as large as the image, ``h <= 0``.
    """
    _check_args(image, patch, search, h)
    b = check_positive_int("block", block)
    patches = patch_vectors(image, patch)  # (D, H, W)
    _, H, W = patches.shape
    # a search window wider than the image adds only masked (outside) pixels: same result
    search = min(search, max(H, W) - 1)
    b = min(b, max(H, W))  # a tile larger than the image is the whole image
    t, R = search, b + 2 * search
    Hp, Wp = -(-H // b) * b, -(-W // b) * b  # image size rounded up to whole tiles
    key_pad = (t, t + Wp - W, t, t + Hp - H)  # zeros around the image, for the key regions
    q = _tiles(patches, b, b, (0, Wp - W, 0, Hp - H))  # (n_tiles, b^2, D): P_i of each tile
    k = _tiles(patches, R, b, key_pad)  # (n_tiles, R^2, D): P_j of each tile's key region
    v = _tiles(image[None], R, b, key_pad)  # (n_tiles, R^2, 1): x_j
    inside = _tiles(torch.ones(1, H, W, dtype=image.dtype, device=image.device), R, b, key_pad)[..., 0] > 0.5
    # query u of a tile sees key y of its region iff |y - t - u| <= t, in rows and in columns
    u, y = torch.arange(b, device=image.device), torch.arange(R, device=image.device)
    near = (y[None, :] - t - u[:, None]).abs() <= t  # (b, R)
    window = (near[:, None, :, None] & near[None, :, None, :]).reshape(b * b, R * R)  # (b^2, R^2)
    step = max(1, _CHUNK_SCORES // (b * b * R * R))
    if chunk_tiles is not None:
        step = check_positive_int("chunk_tiles", chunk_tiles)
    outs = []
    for a in range(0, q.shape[0], step):
        mask = window & inside[a:a + step, None, :]  # (tiles, b^2, R^2): own window, inside the image
        # a_ij = softmax_j(-|P_i - P_j|^2 / h^2) over i's search window;  y_i = sum_j a_ij x_j
        out, _ = attend(q[a:a + step], k[a:a + step], v[a:a + step], score="gaussian", temperature=h**2, mask=mask)
        outs.append(out)
    out = torch.cat(outs)  # (n_tiles, b^2, 1)
    out = F.fold(out.permute(2, 1, 0).reshape(1, b * b, -1), (Hp, Wp), b, stride=b)  # (1, 1, Hp, Wp)
    return out[0, 0, :H, :W]


def nlm_weights(image: torch.Tensor, row: int, col: int, patch: int, search: int, h: float) -> torch.Tensor:
    """The attention weights of one query pixel ``(row, col)`` over its search window.

    Returns ``(2t+1, 2t+1)``: entry ``[t + dy, t + dx]`` is the weight of pixel
    ``(row + dy, col + dx)`` (0 outside the image); the map sums to 1. ``search`` may exceed
    the image (the extra entries are 0) up to 2047, a map of at most 2^24 entries; larger
    radii are refused.
    """
    _check_args(image, patch, search, h)
    H, W = image.shape
    # the map has (2t+1)^2 entries: refuse maps beyond 2^24 entries (t > 2047)
    check_size_fits("search", search, 2047, "the weight map is (2t+1, 2t+1), at most 2^24 entries")
    for name, value, size in (("row", row, H), ("col", col, W)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
            raise ValueError(f"{name} must be an int in [0, {size}); got {value!r}")
    patches = patch_vectors(image, patch)  # (D, H, W)
    # pixels beyond the image get weight 0: compute the window that covers the image, pad with zeros
    inner = min(search, max(H, W) - 1)
    _, w = _nlm_rows(image, patches, inner, h, row, row + 1)  # (W, K)
    pad = search - inner
    return torch.nn.functional.pad(w[col].view(2 * inner + 1, 2 * inner + 1), (pad, pad, pad, pad))


def nadaraya_watson(x_query: torch.Tensor, x_train: torch.Tensor, y_train: torch.Tensor,
                    bandwidth: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Nadaraya-Watson kernel regression with a Gaussian kernel: attention on scalars.

    Equivalent to::

        w = exp(-(x_query[:, None] - x_train[None, :])**2 / (2 * bandwidth**2))   # (Lq, Lk)
        w = w / w.sum(1, keepdim=True)
        y_query = w @ y_train                                                   # (Lq,)

    computed as ``attend(x_query[:, None], x_train[:, None], y_train[:, None],
    score="gaussian", temperature=2 * bandwidth**2)`` (softmax, so no underflow for small
    bandwidths).

    Args:
        x_query: query positions ``(Lq,)``.
        x_train: key positions ``(Lk,)``.
        y_train: values ``(Lk,)``.
        bandwidth: the kernel's standard deviation (> 0).

    Returns:
        ``y_query: (Lq,)`` and ``weights: (Lq, Lk)``. With no training points (``Lk = 0``)
        every prediction is 0 and the weights are empty, as attention over no keys.
    """
    for name, t in (("x_query", x_query), ("x_train", x_train), ("y_train", y_train)):
        check_tensor(name, t)
        if t.dim() != 1:
            raise ValueError(f"{name} must be 1-D; got shape {shape_str(t)}")
    if x_train.shape != y_train.shape:
        raise ValueError(f"x_train and y_train need one value per key; got {shape_str(x_train)} and "
                         f"{shape_str(y_train)}")
    check_positive("bandwidth", bandwidth)
    # a_ij = softmax_j(-(x_i - x_j)^2 / (2 b^2));  y_i = sum_j a_ij y_j
    with argument_names(q="x_query", k="x_train", v="y_train", temperature="bandwidth"):
        out, w = attend(x_query[:, None], x_train[:, None], y_train[:, None], score="gaussian",
                        temperature=2 * bandwidth**2)
    return out[:, 0], w


KERNELS = ("gaussian", "boxcar", "epanechnikov")
"""The kernels of :func:`kernel_regression`, as functions of $u = (x - x_j) / b$."""


def _check_1d(**tensors: torch.Tensor) -> None:
    for name, t in tensors.items():
        check_tensor(name, t)
        if t.dim() != 1:
            raise ValueError(f"{name} must be 1-D; got shape {shape_str(t)}")
    check_same_dtype_device(**tensors)
    if "x_train" in tensors and "y_train" in tensors and tensors["x_train"].shape != tensors["y_train"].shape:
        raise ValueError(f"x_train and y_train need one value per key; got {shape_str(tensors['x_train'])} and "
                         f"{shape_str(tensors['y_train'])}")


def log_kernel(u: torch.Tensor, kernel: str = "gaussian") -> torch.Tensor:
    r"""$\log K(u)$ of a kernel (``-inf`` where $K = 0$), up to an additive constant.

    - ``gaussian``: $K(u) = e^{-u^2/2}$, so $\log K = -u^2/2$;
    - ``boxcar``: $K(u) = [\lvert u \rvert \le 1]$, so $\log K = 0$ inside, $-\infty$ outside;
    - ``epanechnikov``: $K(u) = \tfrac34 (1 - u^2)_+$, so $\log K = \log(1 - u^2)$ inside.

    Constant factors ($\tfrac34$, $1/\sqrt{2\pi}$) cancel in the normalisation, so they are left out.
    A NaN ``u`` gives NaN.
    """
    check_tensor("u", u)
    if kernel == "gaussian":
        return -0.5 * u**2
    if kernel == "boxcar":
        out = torch.where(u.abs() <= 1, torch.zeros_like(u), torch.full_like(u, float("-inf")))
        return torch.where(torch.isnan(u), u, out)
    if kernel == "epanechnikov":
        inside = u.abs() < 1
        out = torch.where(inside, torch.log1p(-(u * inside) ** 2), torch.full_like(u, float("-inf")))
        return torch.where(torch.isnan(u), u, out)
    raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")


def kernel_regression(x_query: torch.Tensor, x_train: torch.Tensor, y_train: torch.Tensor, bandwidth: float = 1.0,
                      kernel: str = "gaussian", *, leave_one_out: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Nadaraya-Watson regression with any kernel of :data:`KERNELS`: attention with the score $\log K$.

    Equivalent to::

        K = kernel((x_query[:, None] - x_train[None, :]) / bandwidth)      # (Lq, Lk)
        y_query = (K / K.sum(1, keepdim=True)) @ y_train                  # (Lq,)

    computed as ``attend`` with the score $s_{ij} = \log K((x_i - x_j) / b)$ and softmax, since
    $\operatorname{softmax}_j(\log K_{ij}) = K_{ij} / \sum_{j'} K_{ij'}$. A query with no training
    point inside a compact kernel's support gets all-zero weights and the estimate 0 (attnkit's
    rule for a row with nothing to attend to), not NaN. ``leave_one_out=True`` (queries are the
    training points, ``x_query is x_train``) drops each point from its own estimate.

    ``x_query: (Lq,)``, ``x_train, y_train: (Lk,)`` -> ``(y_query (Lq,), weights (Lq, Lk))``.
    ``kernel="gaussian"`` equals :func:`nadaraya_watson` with the same bandwidth.
    """
    _check_1d(x_query=x_query, x_train=x_train, y_train=y_train)
    if x_train.shape != y_train.shape:
        raise ValueError(f"x_train and y_train need one value per key; got {shape_str(x_train)} and "
                         f"{shape_str(y_train)}")
    check_positive("bandwidth", bandwidth)
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    mask = None
    if leave_one_out:
        if x_query.shape != x_train.shape:
            raise ValueError("leave_one_out needs the training points as queries (x_query of x_train's shape)")
        mask = ~torch.eye(x_train.shape[0], dtype=torch.bool, device=x_train.device)  # (Lk, Lk): j != i

    def score(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return log_kernel((q - k.transpose(-2, -1)) / bandwidth, kernel)  # s_ij = log K((x_i - x_j) / b)

    out, w = attend(x_query[:, None], x_train[:, None], y_train[:, None], score=score, mask=mask)
    return out[:, 0], w


def fit_bandwidth(x_train: torch.Tensor, y_train: torch.Tensor, *, init: float = 1.0, steps: int = 200,
                  lr: float = 0.05) -> tuple[float, torch.Tensor]:
    r"""Learn the Gaussian kernel's bandwidth by gradient descent on the leave-one-out squared error.

    The parameter is $\log b$ (so $b$ stays positive); each training point is predicted from
    the others only, since with itself included the loss would drive $b$ to 0 (every point
    predicting its own noisy value). Adam, full batch. Returns ``(bandwidth, losses (steps,))``.
    """
    _check_1d(x_train=x_train, y_train=y_train)
    check_positive("init", init)
    check_int("steps", steps, minimum=1)
    check_positive("lr", lr)
    log_b = torch.tensor(math.log(init), dtype=x_train.dtype, requires_grad=True)
    opt = torch.optim.Adam([log_b], lr=lr)
    keep = ~torch.eye(x_train.shape[0], dtype=torch.bool)  # (n, n): leave one out
    losses = []
    for _ in range(steps):
        b = log_b.exp()

        def score(q: torch.Tensor, k: torch.Tensor, b: torch.Tensor = b) -> torch.Tensor:
            return -((q - k.transpose(-2, -1)) ** 2) / (2 * b**2)  # s_ij = -(x_i - x_j)^2 / (2 b^2)

        # softmax_j over j != i: each point predicted from the others
        out, _ = attend(x_train[:, None], x_train[:, None], y_train[:, None], score=score, mask=keep)
        loss = (out[:, 0] - y_train).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return float(log_b.detach().exp()), torch.tensor(losses)


def method_noise(image: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    r"""Buades, Coll and Morel's *method noise*: what a denoiser removed, ``image - denoised``.

    ``image``, ``denoised``: ``(H, W)`` of one shape -> ``(H, W)``. Applied to a noisy image, a
    good denoiser's method noise looks like the noise alone (no edges, no texture of the
    picture); structure in it is detail the method destroyed.
    """
    check_image("image", image)
    check_image("denoised", denoised)
    if image.shape != denoised.shape:
        raise ValueError(f"image and denoised must have one shape; got {shape_str(image)} and {shape_str(denoised)}")
    return image - denoised

