r"""Attention on sets: the Set Transformer (Lee et al., 2019) and a Deep Sets baseline.

A function of a *set* must not depend on the order of its elements. Deep Sets
(Zaheer et al., 2017) get this with a sum: $f(X) = \rho(\sum_i \phi(x_i))$. The Set
Transformer replaces the sum by attention, which lets the elements interact:

- ``MAB(X, Y) = LN(H + rFF(H))`` with ``H = LN(X + MHA(X, Y, Y))``, the multihead attention
  block: queries from ``X``, keys and values from ``Y`` (:class:`attnkit.MultiHeadAttention`,
  i.e. :func:`attnkit.attend` per head);
- ``SAB(X) = MAB(X, X)``: self-attention, permutation-equivariant, ``O(N^2)``;
- ``ISAB(X) = MAB(X, MAB(I, X))``: ``m`` learned *inducing points* ``I`` summarise the set
  first, so the cost is ``O(N m)``;
- ``PMA(Z) = MAB(S, rFF(Z))``: ``k`` learned *seed* queries ``S`` pool the set into ``k``
  vectors, permutation-invariant.

Shapes: ``B`` batch, ``N`` set size (padded), ``E`` width, ``m`` inducing points,
``k`` seeds. ``key_padding (B, N)`` bool marks the real elements (``True``).
"""

from __future__ import annotations

import torch
from torch import nn

from attnkit._checks import argument_names, check_module_input, check_sizes, check_tensor, shape_str
from attnkit.datasets.sequences import set_max_task
from attnkit.masks import padding_mask
from attnkit.mha import MultiHeadAttention
from attnkit.transformers.blocks import train_steps


def _rff(d: int, hidden: int | None = None) -> nn.Sequential:
    hidden = hidden or 2 * d
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d))


def _check_set(name: str, x: object, d: int, key_padding: torch.Tensor | None,
               weight: torch.Tensor | None = None) -> None:
    check_tensor(name, x, min_rank=3, shape=f"(B, N, {d})")
    if x.dim() != 3 or x.shape[-1] != d:
        raise ValueError(f"{name} must be (B, N, {d}); got shape {shape_str(x)}")
    if weight is not None:
        check_module_input(name, x, weight, rank=3, shape=f"(B, N, {d})")
    if key_padding is not None:
        if not isinstance(key_padding, torch.Tensor) or key_padding.dtype != torch.bool:
            raise TypeError(f"key_padding must be a bool tensor (True = real element); got {key_padding!r:.60}")
        if key_padding.shape != x.shape[:2] or key_padding.device != x.device:
            raise ValueError(f"key_padding must be (B, N) = {tuple(x.shape[:2])} on {x.device} ({name}: "
                             f"{shape_str(x)}); got {tuple(key_padding.shape)} on {key_padding.device}")


class MAB(nn.Module):
    """Multihead attention block ``MAB(X, Y) = LN(H + rFF(H))``, ``H = LN(X + MHA(X, Y, Y))``.

    ``forward(x (B, Nx, E), y (B, Ny, E), key_padding (B, Ny) or None) -> (B, Nx, E)``; the
    weights ``(B, H, Nx, Ny)`` of the last call are kept in ``self.weights``.
    """

    def __init__(self, d_model: int, n_heads: int, *, layer_norm: bool = True) -> None:
        super().__init__()
        check_sizes(d_model=d_model, n_heads=n_heads)
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.rff = _rff(d_model)
        self.ln1 = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.ln2 = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, y: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        with argument_names(query="x", key="y", value="y"):
            out, w = self.attn(x, y, y, key_padding=key_padding)
        self.weights = w.detach()
        h = self.ln1(x + out)  # H = LN(X + MHA(X, Y, Y))
        return self.ln2(h + self.rff(h))  # LN(H + rFF(H))


class SAB(nn.Module):
    """Set attention block ``SAB(X) = MAB(X, X)``: ``(B, N, E) -> (B, N, E)``, equivariant."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        check_sizes(d_model=d_model, n_heads=n_heads)
        self.d_model = d_model
        self.mab = MAB(d_model, n_heads)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        _check_set("x", x, self.d_model, key_padding, self.mab.attn.q_proj.weight)
        return self.mab(x, x, key_padding)


class ISAB(nn.Module):
    """Induced set attention block ``ISAB(X) = MAB(X, MAB(I, X))`` with ``m`` inducing points.

    ``(B, N, E) -> (B, N, E)``, permutation-equivariant, cost ``O(N m)`` instead of ``O(N^2)``.
    """

    def __init__(self, d_model: int, n_heads: int, n_inducing: int) -> None:
        super().__init__()
        if isinstance(n_inducing, bool) or not isinstance(n_inducing, int) or n_inducing < 1:
            raise ValueError(f"n_inducing must be an int >= 1; got {n_inducing!r}")
        check_sizes(d_model=d_model, n_heads=n_heads)
        self.d_model = d_model
        self.inducing = nn.Parameter(torch.randn(1, n_inducing, d_model) / d_model**0.5)  # (1, m, E)
        self.mab1, self.mab2 = MAB(d_model, n_heads), MAB(d_model, n_heads)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        _check_set("x", x, self.d_model, key_padding, self.inducing)
        inducing = self.inducing.expand(x.shape[0], -1, -1)  # (B, m, E)
        h = self.mab1(inducing, x, key_padding)  # H = MAB(I, X): (B, m, E), sees real elements only
        return self.mab2(x, h)  # MAB(X, H): (B, N, E)


class PMA(nn.Module):
    """Pooling by multihead attention ``PMA(Z) = MAB(S, rFF(Z))``: ``(B, N, E) -> (B, k, E)``.

    ``k`` learned seed vectors ``S`` attend over the (real) elements: permutation-invariant.
    """

    def __init__(self, d_model: int, n_heads: int, n_seeds: int = 1) -> None:
        super().__init__()
        if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
            raise ValueError(f"n_seeds must be an int >= 1; got {n_seeds!r}")
        check_sizes(d_model=d_model, n_heads=n_heads)
        self.d_model = d_model
        self.seeds = nn.Parameter(torch.randn(1, n_seeds, d_model) / d_model**0.5)  # (1, k, E)
        self.rff = _rff(d_model)
        self.mab = MAB(d_model, n_heads)

    def forward(self, z: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        _check_set("z", z, self.d_model, key_padding, self.seeds)
        seeds = self.seeds.expand(z.shape[0], -1, -1)  # (B, k, E)
        return self.mab(seeds, self.rff(z), key_padding)  # (B, k, E)


class SetTransformer(nn.Module):
    """Encoder (``n_layers`` ISABs or SABs) + decoder (PMA with one seed) + a linear read-out.

    ``forward(x (B, N, d_in), key_padding (B, N) bool or None) -> (B, n_outputs)``: invariant
    to permutations of the set's elements. Padding positions (``False``) are ignored.
    """

    def __init__(self, d_in: int, n_outputs: int, *, d_model: int = 32, n_heads: int = 4, n_layers: int = 2,
                 encoder: str = "isab", n_inducing: int = 8) -> None:
        super().__init__()
        if encoder not in ("isab", "sab"):
            raise ValueError(f"encoder must be 'isab' or 'sab'; got {encoder!r}")
        check_sizes(d_in=d_in, n_outputs=n_outputs, d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        self.d_in = d_in
        self.embed = nn.Linear(d_in, d_model)
        self.blocks = nn.ModuleList(ISAB(d_model, n_heads, n_inducing) if encoder == "isab" else SAB(d_model, n_heads)
                                    for _ in range(n_layers))
        self.pool = PMA(d_model, n_heads, 1)
        self.out = nn.Linear(d_model, n_outputs)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        _check_set("x", x, self.d_in, key_padding, self.embed.weight)
        h = self.embed(x)  # (B, N, E)
        for block in self.blocks:
            h = block(h, key_padding)  # (B, N, E)
        return self.out(self.pool(h, key_padding)[:, 0])  # (B, k=1, E) -> (B, n_outputs)


POOLS = ("sum", "mean", "max", "attention")
"""The poolings of ``DeepSets``: a sum (Zaheer et al.), a mean, a maximum, or PMA's attention."""


class DeepSets(nn.Module):
    r"""Deep Sets (Zaheer et al., 2017): $\rho(\operatorname{pool}_i \phi(x_i))$ over the real elements.

    ``forward(x (B, N, d_in), key_padding (B, N) bool or None) -> (B, n_outputs)``.
    ``pool="sum"`` is the paper's $\rho(\sum_i \phi(x_i))$; ``"mean"`` and ``"max"`` are the
    other symmetric poolings the paper mentions; ``"attention"`` pools with one learned seed
    query (a ``PMA``, Lee et al., 2019), i.e. a Set Transformer without its encoder. The
    elements never interact before the pooling.
    """

    def __init__(self, d_in: int, n_outputs: int, *, d_hidden: int = 64, pool: str = "sum",
                 n_heads: int = 4) -> None:
        super().__init__()
        check_sizes(d_in=d_in, n_outputs=n_outputs, d_hidden=d_hidden)
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}; got {pool!r}")
        self.d_in, self.pool_kind = d_in, pool
        self.phi = nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_hidden), nn.ReLU())
        self.pma = PMA(d_hidden, n_heads, 1) if pool == "attention" else None
        self.rho = nn.Sequential(nn.Linear(d_hidden, d_hidden), nn.ReLU(), nn.Linear(d_hidden, n_outputs))

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        _check_set("x", x, self.d_in, key_padding, self.phi[0].weight)
        h = self.phi(x)  # (B, N, D)
        real = key_padding[..., None] if key_padding is not None else torch.ones_like(h[..., :1], dtype=torch.bool)
        if self.pool_kind == "sum":
            pooled = (h * real).sum(1)  # padding contributes nothing to the sum
        elif self.pool_kind == "mean":
            pooled = (h * real).sum(1) / real.sum(1).clamp_min(1)
        elif self.pool_kind == "max":
            # phi ends in a ReLU (h >= 0), so padding set to 0 never exceeds a real element
            pooled = h.masked_fill(~real, 0.0).amax(1)
        else:
            pooled = self.pma(h, key_padding)[:, 0]  # (B, k=1, D) -> (B, D)
        return self.rho(pooled)  # (B, n_outputs)


# ---- the set-maximum experiment of the Transformer chapter ------------------------------------

SET_MODELS = {
    "Set Transformer (ISAB + PMA)": ("set_transformer", {}),
    "Deep Sets, sum pooling": ("deep_sets", {"pool": "sum"}),
    "Deep Sets, mean pooling": ("deep_sets", {"pool": "mean"}),
    "Deep Sets, max pooling": ("deep_sets", {"pool": "max"}),
    "Deep Sets, attention pooling (PMA)": ("deep_sets", {"pool": "attention"}),
}
"""The set models of the Transformer chapter: name -> (kind, keyword arguments)."""


def make_set_model(name: str) -> nn.Module:
    """A fresh model of ``SET_MODELS`` (the chapter's sizes)."""
    if name not in SET_MODELS:
        raise ValueError(f"name must be one of {list(SET_MODELS)}; got {name!r}")
    kind, kw = SET_MODELS[name]
    if kind == "set_transformer":
        return SetTransformer(1, 1, d_model=32, n_heads=4, n_layers=1, n_inducing=4)
    return DeepSets(1, 1, d_hidden=64, **kw)


def set_max_run(name: str, *, steps: int = 150, seed: int = 0) -> dict[str, object]:
    """Train ``SET_MODELS[name]`` on the set maximum; returns losses, test MAE and the model.

    Batches ``set_max_task(64, seed=1000 (seed + 1) + step)``, Adam lr 3e-3, clip 1.0, MSE; the
    test set is ``set_max_task(1000, seed=99)``.
    """

    def loss(model: nn.Module, batch: tuple) -> torch.Tensor:
        x, lengths, y = batch
        return nn.functional.mse_loss(model(x, padding_mask(lengths, x.shape[1]))[:, 0], y)

    torch.manual_seed(seed)
    model = make_set_model(name)
    losses = train_steps(model, lambda step: set_max_task(64, seed=1000 * (seed + 1) + step), loss, steps=steps,
                         lr=3e-3, seed=seed, desc=name)
    x, lengths, y = set_max_task(1000, seed=99)
    with torch.no_grad():
        mae = float((model(x, padding_mask(lengths, x.shape[1]))[:, 0] - y).abs().mean())
    return {"losses": losses, "mae": mae, "model": model}


__all__ = ["ISAB", "MAB", "PMA", "POOLS", "SAB", "SET_MODELS", "DeepSets", "SetTransformer", "make_set_model",
           "set_max_run"]
