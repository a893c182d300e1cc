r"""Non-local neural networks (Wang, Girshick, Gupta & He, 2018): attention over pixels.

A non-local block computes, for every position $i$ of a feature map $x$,

.. math::

    y_i = \frac{1}{C(x)} \sum_j f(x_i, x_j)\, g(x_j), \qquad z_i = W_z y_i + x_i ,

a weighted average over **all** positions $j$, followed by a 1x1 convolution and a residual
connection. With the *embedded Gaussian* $f(x_i, x_j) = e^{\theta(x_i)^\top \phi(x_j)}$ and
$C(x) = \sum_j f(x_i, x_j)$, $y$ is exactly ``attend(theta(x), phi(x), g(x), score="dot")``
over the $N = HW$ flattened positions: $\theta$ makes the queries, $\phi$ the keys and $g$ the
values, each a 1x1 convolution. The *Gaussian* version uses $x$ itself as query and key (the
learned-free form of non-local means, Buades et al. 2005); the *dot-product* version divides by
$N$ instead of normalising, i.e. ``normalize`` is $s_{ij} / N$.

Shapes: ``B`` batch, ``C`` channels, ``Ci`` inner channels, ``H x W`` the map, ``N = H W``.
"""

from __future__ import annotations

import torch
from torch import nn

from attnkit._checks import (
    arg_name,
    argument_names,
    check_finite_float,
    check_int,
    check_module_input,
    check_positive,
    check_same_device,
    check_same_dtype_device,
    check_sizes,
    check_tensor,
    shape_str,
)
from attnkit.core import attend

MODES = ("embedded_gaussian", "gaussian", "dot_product")
"""The pairwise functions of Wang et al. (2018) implemented here."""


def _divide_by_n(scores: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    # the dot-product variant's normaliser C(x) = N: a_ij = s_ij / N
    return scores / scores.shape[dim]


def flatten_positions(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, N, C)``: one token per position, row-major (``N = H W``); any dtype."""
    name = arg_name("x")
    check_tensor(name, x, min_rank=4, floating=False, shape="(B, C, H, W)")
    if x.dim() != 4:
        raise ValueError(f"{name} must be a feature map (B, C, H, W); got shape {shape_str(x)}")
    B, C, H, W = x.shape
    return x.reshape(B, C, H * W).transpose(1, 2)  # (B, N, C)


def nonlocal_attention(theta: torch.Tensor, phi: torch.Tensor, g: torch.Tensor, *,
                       mode: str = "embedded_gaussian") -> tuple[torch.Tensor, torch.Tensor]:
    """The non-local operation $y$ on feature maps; returns ``(y (B, Cv, H, W), weights (B, N, N))``.

    Equivalent to (embedded Gaussian)::

        q = theta.flatten(2).transpose(1, 2)           # (B, N, Ci): one query per pixel
        k = phi.flatten(2).transpose(1, 2)             # (B, N, Ci)
        v = g.flatten(2).transpose(1, 2)               # (B, N, Cv)
        w = torch.softmax(q @ k.transpose(1, 2), -1)   # (B, N, N): no 1/sqrt(d)
        y = (w @ v).transpose(1, 2).reshape(B, Cv, H, W)

    Args:
        theta, phi: ``(B, Ci, H, W)`` query and key maps (for ``mode="gaussian"`` pass the
            input itself for both).
        g: ``(B, Cv, H, W)`` value map.
        mode: ``"embedded_gaussian"`` / ``"gaussian"`` (dot score, softmax) or
            ``"dot_product"`` (dot score divided by ``N``).
    """
    for name, t in (("theta", theta), ("phi", phi), ("g", g)):
        check_tensor(name, t, min_rank=4, shape="(B, C, H, W)")
        if t.dim() != 4:
            raise ValueError(f"{name} must be a feature map (B, C, H, W); got shape {shape_str(t)}")
    if theta.shape != phi.shape:
        raise ValueError(f"theta and phi must have the same shape; got theta: {shape_str(theta)}, "
                         f"phi: {shape_str(phi)}")
    if g.shape[0] != theta.shape[0] or g.shape[2:] != theta.shape[2:]:
        raise ValueError(f"g must share theta's batch and H x W; got theta: {shape_str(theta)}, g: {shape_str(g)}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    check_same_dtype_device(theta=theta, phi=phi, g=g)
    B, Cv, H, W = g.shape
    q, k, v = flatten_positions(theta), flatten_positions(phi), flatten_positions(g)  # (B, N, C*)
    normalize = _divide_by_n if mode == "dot_product" else "softmax"
    with argument_names(q="theta", k="phi", v="g"):
        y, w = attend(q, k, v, score="dot", normalize=normalize)  # (B, N, Cv), (B, N, N)
    return y.transpose(1, 2).reshape(B, Cv, H, W), w  # (B, Cv, H, W)


class NonLocalBlock(nn.Module):
    """A non-local block ``z = W_z y + x`` with 1x1 convolutions ``theta``, ``phi``, ``g``.

    ``forward(x: (B, C, H, W)) -> (B, C, H, W)``; the last attention weights ``(B, N, N)`` are
    kept in ``self.last_weights`` for plotting. ``W_z`` starts at zero, so a fresh block is the
    identity (the paper zero-initialises the batch norm after ``W_z`` for the same reason).
    """

    def __init__(self, channels: int, inner: int | None = None, *, mode: str = "embedded_gaussian") -> None:
        super().__init__()
        check_sizes(channels=channels)
        if inner is not None:
            check_sizes(inner=inner)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        inner = inner or max(channels // 2, 1)
        self.channels, self.inner, self.mode = channels, inner, mode
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.W_z = nn.Conv2d(inner, channels, 1)
        nn.init.zeros_(self.W_z.weight)
        nn.init.zeros_(self.W_z.bias)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = arg_name("x")
        check_module_input(name, x, self.g.weight, rank=4, shape=f"(B, {self.channels}, H, W)")
        if x.shape[1] != self.channels or min(x.shape[2:]) < 1:
            raise ValueError(f"{name} must be (B, {self.channels}, H, W) with H, W >= 1; got shape {shape_str(x)}")
        if self.mode == "gaussian":
            theta = phi = x  # f(x_i, x_j) = exp(x_i . x_j): no embedding
        else:
            theta, phi = self.theta(x), self.phi(x)
        y, w = nonlocal_attention(theta, phi, self.g(x), mode=self.mode)
        self.last_weights = w.detach()
        return self.W_z(y) + x  # z_i = W_z y_i + x_i


class TokenNorm(nn.Module):
    """Layer normalisation over the channels at every position: ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        check_sizes(channels=channels)
        self.ln = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C = self.ln.normalized_shape[0]
        check_module_input(arg_name("x"), x, self.ln.weight, rank=4, shape=f"(B, {C}, H, W)")
        if x.shape[1] != C:
            raise ValueError(f"{arg_name('x')} must be (B, {C}, H, W); got shape {shape_str(x)}")
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


class Denoiser(nn.Module):
    """A small CNN denoiser with one token per ``patch x patch`` cell, with or without a non-local block.

    ``conv3x3 -> ReLU -> conv PxP stride P`` makes one token per cell (a coarse ``(C, G, G)``
    map), ``TokenNorm`` normalises each token, then the optional ``NonLocalBlock`` lets every
    cell attend to every other, and ``ConvTranspose PxP stride P -> ReLU -> conv3x3`` draws the
    clean image back. Without the block each output cell sees only its own cell and a
    one-pixel rim: the block is the only way to reach the far-away copies of a cell.
    ``(B, 1, G P, G P)`` in and out.

    Differences from Wang et al.'s blocks (in ResNets, after batch-normalised features): the
    tokens here are layer-normalised right before the block, so that the dot product
    $\theta(x_i)^\top \\phi(x_j)$ compares patterns rather than brightness; no batch norm after
    ``W_z`` (it starts at zero instead); no sub-sampling of ``phi`` and ``g``.
    """

    def __init__(self, channels: int = 32, *, patch: int = 4, nonlocal_block: bool = True,
                 inner: int | None = None) -> None:
        super().__init__()
        check_sizes(channels=channels, patch=patch)
        if inner is not None:
            check_sizes(inner=inner)
        self.patch = patch
        self.head = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, patch, stride=patch), TokenNorm(channels))
        self.block = NonLocalBlock(channels, inner) if nonlocal_block else nn.Identity()
        self.tail = nn.Sequential(nn.ConvTranspose2d(channels, channels, patch, stride=patch), nn.ReLU(),
                                  nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        check_module_input("noisy", noisy, self.head[0].weight, rank=4, shape="(B, 1, H, W)")
        if noisy.dim() != 4 or noisy.shape[1] != 1 or noisy.shape[-1] % self.patch or noisy.shape[-2] % self.patch:
            raise ValueError(f"noisy must be (B, 1, H, W) with H and W multiples of patch={self.patch}; "
                             f"got shape {shape_str(noisy)}")
        if min(noisy.shape[2:]) < 1:
            raise ValueError(f"noisy must have H, W >= 1; got shape {shape_str(noisy)}")
        with argument_names(x="noisy (features)"):
            return self.tail(self.block(self.head(noisy)))  # (B, 1, H, W)


# ---- baselines for the repeated-patches task --------------------------------------------------

def _check_noisy(x: object, name: str = "noisy") -> None:
    check_tensor(name, x, min_rank=4, shape="(n, 1, H, W)")
    if x.dim() != 4 or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty batch of images (n, 1, H, W); got shape {shape_str(x)}")


def _check_groups(groups: object, x: torch.Tensor) -> None:
    check_tensor("groups", groups, min_rank=2, floating=False, shape="(n, G*G)")
    if groups.dtype == torch.bool or groups.is_floating_point() or groups.is_complex():
        raise TypeError(f"groups must be integer copy ids (n, G*G); got dtype {groups.dtype}")
    if groups.shape != x.shape[:2] or groups.device != x.device:
        raise ValueError(f"groups must be (n, G*G) = {tuple(x.shape[:2])} on {x.device} (the device of the noisy "
                         f"cells or weights: {shape_str(x)}); got shape {shape_str(groups)} on {groups.device}")


def fit_shrinkage(noisy: torch.Tensor, clean: torch.Tensor) -> float:
    r"""The best $\lambda$ of ``shrink`` on training images (least squares, closed form).

    $\lambda = \sum (x - \bar x)(c - \bar x) / \sum (x - \bar x)^2$ with $\bar x$ each noisy
    image's mean: one number learned from the data, no attention and no convolution.
    """
    _check_noisy(noisy)
    _check_noisy(clean, "clean")
    if clean.shape != noisy.shape:
        raise ValueError(f"noisy and clean must have one shape; got {shape_str(noisy)} and {shape_str(clean)}")
    check_same_device(noisy=noisy, clean=clean)
    m = noisy.mean(dim=(-2, -1), keepdim=True)  # (n, 1, 1, 1)
    return float(((noisy - m) * (clean - m)).sum() / ((noisy - m) ** 2).sum())


def shrink(noisy: torch.Tensor, lam: float) -> torch.Tensor:
    r"""Shrink every pixel towards its image's mean: $\bar x + \lambda (x - \bar x)$."""
    _check_noisy(noisy)
    check_finite_float("lam", lam)
    m = noisy.mean(dim=(-2, -1), keepdim=True)
    return m + lam * (noisy - m)


def oracle_copy_average(noisy: torch.Tensor, groups: torch.Tensor, patch: int) -> torch.Tensor:
    """Average every cell with its true copies (``groups`` from ``repeated_patches``): the oracle.

    ``attend`` with the known copy pattern as a bool mask and a constant score: the weights
    ``1 / #copies`` a perfect content matcher would find. ``(n, 1, H, W)`` -> ``(n, 1, H, W)``.
    """
    from attnkit.datasets.patterns import cells, uncells

    _check_noisy(noisy)
    x = cells(noisy, patch)  # (n, G*G, P*P)
    _check_groups(groups, x)
    same = groups[:, :, None] == groups[:, None, :]  # (n, G*G, G*G): the true copies
    out, _ = attend(x, x, x, score=lambda q, k: q.new_zeros(*q.shape[:-1], k.shape[-2]), mask=same)
    return uncells(out, patch)


def cell_nonlocal_means(noisy: torch.Tensor, patch: int, h2: float) -> torch.Tensor:
    r"""Non-local means over whole cells, no training: $w_{ij} \propto e^{-\lVert P_i - P_j \rVert^2 / h^2}$.

    ``attend(P, P, P, score="gaussian", temperature=h2)`` with ``P`` the flattened noisy cells:
    the hand-made content matcher that the trained block is compared with.
    """
    from attnkit.datasets.patterns import cells, uncells

    _check_noisy(noisy)
    check_positive("h2", h2)
    x = cells(noisy, patch)  # (n, G*G, P*P)
    out, _ = attend(x, x, x, score="gaussian", temperature=h2)
    return uncells(out, patch)


def weight_on_copies(weights: torch.Tensor, groups: torch.Tensor) -> tuple[float, float]:
    """``(mean weight a query cell puts on its copies (itself included), their share of the cells)``.

    ``weights: (n, G*G, G*G)`` from a ``NonLocalBlock`` on the cell tokens; uniform weights put
    exactly the share on the copies, a perfect matcher puts 1.
    """
    check_tensor("weights", weights, min_rank=3, shape="(n, G*G, G*G)")
    if weights.dim() != 3 or weights.shape[-1] != weights.shape[-2] or weights.numel() == 0:
        raise ValueError(f"weights must be a non-empty (n, G*G, G*G); got shape {shape_str(weights)}")
    _check_groups(groups, weights)
    same = (groups[:, :, None] == groups[:, None, :]).to(weights.dtype)  # (n, G*G, G*G)
    return float((weights * same).sum(-1).mean()), float(same.mean())


def train_denoiser(model: nn.Module, noisy: torch.Tensor, clean: torch.Tensor, *, steps: int = 300,
                   batch_size: int = 32, lr: float = 3e-3, seed: int = 0, progress: bool = True) -> list[float]:
    """Train ``model`` to map ``noisy`` to ``clean`` (both ``(n, 1, H, W)``) with Adam on the MSE.

    The learning rate decays linearly from ``lr`` to 0, so the final model does not depend on
    the noise of the last few steps. Returns the training loss of every step. Mini-batches are
    drawn with a fixed ``seed``.
    """
    from tqdm.auto import trange

    check_tensor("noisy", noisy, min_rank=4, shape="(n, 1, H, W)")
    check_tensor("clean", clean, min_rank=4, shape="(n, 1, H, W)")
    if noisy.shape != clean.shape:
        raise ValueError(f"noisy and clean must have the same shape; got {shape_str(noisy)} and {shape_str(clean)}")
    check_same_device(noisy=noisy, clean=clean)
    check_int("steps", steps, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    if len(noisy) == 0:
        raise ValueError("noisy is empty: no image to train on")
    batch_size = min(batch_size, len(noisy))  # a batch larger than the set draws every image (with repeats) anyway
    weight = next(model.parameters(), None)
    if weight is not None and (noisy.dtype != weight.dtype or noisy.device != weight.device):
        raise TypeError(f"noisy must have the model's dtype and device ({weight.dtype} on {weight.device}); got "
                        f"{noisy.dtype} on {noisy.device}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / steps)
    losses = []
    model.train()
    for _ in trange(steps, desc=type(model).__name__, disable=not progress):
        idx = torch.randint(len(noisy), (batch_size,), generator=g)
        loss = torch.mean((model(noisy[idx]) - clean[idx]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
        losses.append(loss.item())
    model.eval()
    return losses


def denoising_run(nonlocal_block: bool, *, steps: int = 600, seed: int = 0, n_train: int = 2048,
                  noise: float = 0.2, lr: float = 5e-3, batch_size: int = 32,
                  progress: bool = True) -> dict[str, object]:
    """Train a ``Denoiser`` (32 channels) on ``repeated_patches``; returns the model, losses and test results.

    Training images ``repeated_patches(n_train, noise=noise, seed=0)``, test images
    ``repeated_patches(256, noise=noise, seed=1)`` (4 x 4 cells of 4 x 4 pixels, 4 motifs);
    ``seed`` sets the initialisation and the batches. Returns ``{"model", "losses", "mse"`` (test),
    ``"on_copies"``, ``"share"`` (``weight_on_copies`` of the block, ``None`` without one)``}``.
    """
    from attnkit.datasets.patterns import repeated_patches

    train_noisy, train_clean, _ = repeated_patches(n_train, noise=noise, seed=0)
    test_noisy, test_clean, test_groups = repeated_patches(256, noise=noise, seed=1)
    torch.manual_seed(seed)
    model = Denoiser(32, nonlocal_block=nonlocal_block)
    losses = train_denoiser(model, train_noisy, train_clean, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                            progress=progress)
    with torch.no_grad():
        out = model(test_noisy)
    on, share = weight_on_copies(model.block.last_weights, test_groups) if nonlocal_block else (None, None)
    return {"model": model, "losses": losses, "mse": float(((out - test_clean) ** 2).mean()), "on_copies": on,
            "share": share, "output": out}

