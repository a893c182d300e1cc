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
    check_int,
    check_module_input,
    check_positive,
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
        w = torch.softmax(q @ k.transpose(1, 2), -1)   # (B, N, N): no 1/sqrt(d) in the paper
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


class Denoiser(nn.Module):
    """A small residual CNN denoiser, with or without a non-local block in the middle.

    ``conv3x3 -> ReLU -> conv3x3 -> ReLU -> [NonLocalBlock] -> conv3x3 -> ReLU -> conv3x3``
    predicts the noise, and the output is ``noisy - noise`` (``(B, 1, H, W)`` in and out). The
    four 3x3 convolutions see a 9 x 9 window: the non-local block is the only way to use the
    rest of the image.
    """

    def __init__(self, channels: int = 16, *, nonlocal_block: bool = True, inner: int | None = None) -> None:
        super().__init__()
        check_sizes(channels=channels)
        if inner is not None:
            check_sizes(inner=inner)
        self.head = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.block = NonLocalBlock(channels, inner) if nonlocal_block else nn.Identity()
        self.tail = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        name = arg_name("noisy")
        check_module_input(name, noisy, self.head[0].weight, rank=4, shape="(B, 1, H, W)")
        if noisy.shape[1] != 1 or min(noisy.shape[2:]) < 1:
            raise ValueError(f"{name} must be (B, 1, H, W) with H, W >= 1; got shape {shape_str(noisy)}")
        with argument_names(x=f"{name} (features)"):
            return noisy - self.tail(self.block(self.head(noisy)))


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
    check_same_dtype_device(noisy=noisy, clean=clean)
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
    opt = torch.optim.Adam(model.parameters(), lr=lr)
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
