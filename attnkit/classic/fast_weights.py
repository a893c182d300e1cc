r"""Fast weights (1990s): a slow network programs a fast one, which is causal linear attention.

Hinton and Plaut (1987) gave each connection a slowly learned weight and a quickly changing
*fast* weight that holds recent memories. Schmidhuber (1992) let a *slow* network program the
fast weights of another network: at every step it emits a key $k_t$ and a value $v_t$, adds
their outer product to the fast weight matrix, and the fast network maps a query $q_t$
through it:

$$
W_t = W_{t-1} + v_t k_t^\top, \qquad y_t = W_t\, q_t .
$$

Unrolling the sum, $y_t = \sum_{j \le t} v_j (k_j^\top q_t)$: a weighted sum of the values
with unnormalised dot-product scores over the past, i.e. causal linear attention
(Katharopoulos et al., 2020; Schlag, Irie and Schmidhuber, 2021):

``attend(q, k, v, score="dot", normalize="none", mask=causal_mask(L))``.

The recurrent form needs ``O(d * dv)`` memory per step, the attention form ``O(L^2)`` scores;
both give the same numbers. As an associative memory the fast weights store ``N`` pairs in a
``dv x d`` matrix; recall of $v_i$ with the query $k_i$ suffers crosstalk
$\sum_{j \ne i} (k_j^\top k_i) v_j$, which for random unit keys has relative size about
$\sqrt{(N - 1) / d}$.

Shapes: ``...`` batch, ``L`` sequence length, ``d`` key/query width, ``dv`` value width,
``N`` stored pairs, ``E`` input width of the slow network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnkit._checks import (
    argument_names,
    broadcast_batch,
    check_dim_match,
    check_int,
    check_same_dtype_device,
    check_tensor,
    shape_str,
)
from attnkit.core import attend
from attnkit.masks import causal_mask


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, min_rank=2)
    check_same_dtype_device(q=q, k=k, v=v)
    check_dim_match("q", q, -1, "k", k, -1, "queries and keys need the same width d")
    check_dim_match("q", q, -2, "k", k, -2, "one query, key and value per step (L)")
    check_dim_match("k", k, -2, "v", v, -2, "one query, key and value per step (L)")
    broadcast_batch(q=q, k=k, v=v)


def fast_weight_programmer(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                           W0: torch.Tensor | None = None,
                           return_state: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""The fast-weight recurrence, step by step: write $v_t k_t^\top$, then read with $q_t$.

    Equivalent to::

        W = zeros(dv, d)
        for t in range(L):
            W = W + outer(v[t], k[t])   # write: W_t = W_{t-1} + v_t k_t^T
            y[t] = W @ q[t]             # read:  y_t = W_t q_t

    Args:
        q: queries ``(..., L, d)``. k: keys ``(..., L, d)``. v: values ``(..., L, dv)``.
        W0: initial fast weights ``(..., dv, d)`` (default zeros).
        return_state: also return the final fast weights ``W_L: (..., dv, d)``.

    Returns:
        ``y: (..., L, dv)`` (and ``W_L`` if asked). Equal to :func:`causal_linear_attention`
        when ``W0`` is zero.
    """
    _check_qkv(q, k, v)
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    L, d, dv = q.shape[-2], q.shape[-1], v.shape[-1]
    W = torch.zeros(*batch, dv, d, dtype=q.dtype, device=q.device)
    if W0 is not None:
        check_tensor("W0", W0, min_rank=2)
        if W0.shape[-2:] != (dv, d):
            raise ValueError(f"W0 must be (..., dv, d) = (..., {dv}, {d}) (dv from v: {shape_str(v)}, d from "
                             f"q: {shape_str(q)}); got shape {shape_str(W0)}")
        check_same_dtype_device(q=q, W0=W0)
        try:
            batch = torch.broadcast_shapes(batch, W0.shape[:-2])
        except RuntimeError:
            raise ValueError(f"W0's batch dims {tuple(W0.shape[:-2])} do not broadcast with those of q, k, v: "
                             f"{tuple(batch)}") from None
        W = W.expand(*batch, dv, d)
        W = W + W0
    ys = []
    for t in range(L):
        # W_t = W_{t-1} + v_t k_t^T: (..., dv, 1) * (..., 1, d) -> (..., dv, d)
        W = W + v[..., t, :, None] * k[..., t, None, :]
        # y_t = W_t q_t: (..., dv, d) @ (..., d, 1) -> (..., dv)
        ys.append((W @ q[..., t, :, None])[..., 0])
    y = torch.stack(ys, dim=-2) if ys else torch.zeros(*batch, 0, dv, dtype=q.dtype, device=q.device)  # (..., L, dv)
    return (y, W) if return_state else y


def causal_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""$y_t = \sum_{j \le t} (q_t^\top k_j)\, v_j$, through :func:`attnkit.attend`.

    ``attend(q, k, v, score="dot", normalize="none", mask=causal_mask(L))``;
    ``q: (..., L, d)``, ``k: (..., L, d)``, ``v: (..., L, dv)`` -> ``(..., L, dv)``.
    """
    _check_qkv(q, k, v)
    L = q.shape[-2]
    out, _ = attend(q, k, v, score="dot", normalize="none", mask=causal_mask(L, device=q.device))
    return out


class FastWeightProgrammer(nn.Module):
    """Schmidhuber's (1992) system: a slow net maps each input to ``(k_t, v_t, q_t)``; a fast net reads.

    The slow net is one linear layer ``E -> 2 d + dv`` (its weights are learned by gradient
    descent); the fast weights ``W_t`` are written by the slow net's outputs, never trained.
    ``forward(x: (B, L, E)) -> (B, L, dv)``; ``recurrent=True`` runs the step-by-step
    :func:`fast_weight_programmer`, else the (identical) :func:`causal_linear_attention`.
    """

    def __init__(self, in_dim: int, key_dim: int, value_dim: int) -> None:
        super().__init__()
        for name, n in (("in_dim", in_dim), ("key_dim", key_dim), ("value_dim", value_dim)):
            check_int(name, n, minimum=1)
        self.key_dim, self.value_dim = key_dim, value_dim
        self.slow = nn.Linear(in_dim, 2 * key_dim + value_dim)

    def forward(self, x: torch.Tensor, *, recurrent: bool = False) -> torch.Tensor:
        """``x: (B, L, E)`` -> ``(B, L, dv)``, by the recurrence or by causal linear attention."""
        check_tensor("x", x, min_rank=2)
        weight = self.slow.weight
        if x.shape[-1] != weight.shape[1] or x.dtype != weight.dtype or x.device != weight.device:
            raise ValueError(f"x must be (B, L, {weight.shape[1]}) of the module's dtype and device ({weight.dtype} "
                             f"on {weight.device}); got shape {shape_str(x)}, {x.dtype} on {x.device}")
        k, v, q = self.slow(x).split([self.key_dim, self.value_dim, self.key_dim], dim=-1)  # (B, L, d|dv|d)
        return fast_weight_programmer(q, k, v) if recurrent else causal_linear_attention(q, k, v)


def random_pairs(n_pairs: int, key_dim: int, value_dim: int, *, n_trials: int = 1, orthogonal: bool = False,
                 seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_trials`` sets of ``n_pairs`` unit-norm random keys ``(T, N, d)`` and Gaussian values ``(T, N, dv)``.

    ``orthogonal=True`` draws orthonormal keys (needs ``n_pairs <= key_dim``).
    """
    for name, n in (("n_pairs", n_pairs), ("key_dim", key_dim), ("value_dim", value_dim), ("n_trials", n_trials)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive int; got {n!r}")
    if orthogonal and n_pairs > key_dim:
        raise ValueError(f"only key_dim={key_dim} orthogonal keys exist; asked for n_pairs={n_pairs}")
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(n_trials, n_pairs, key_dim, generator=g, dtype=dtype)  # (T, N, d)
    if orthogonal:
        k = torch.linalg.qr(k.transpose(-2, -1)).Q.transpose(-2, -1)  # (T, d, N) -> Q (T, d, N) -> (T, N, d)
    k = k / k.norm(dim=-1, keepdim=True)
    v = torch.randn(n_trials, n_pairs, value_dim, generator=g, dtype=dtype)  # (T, N, dv)
    return k, v


def retrieval_error(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    r"""Store every pair, then recall each value with its own key: mean relative error per trial.

    $W = \sum_j v_j k_j^\top$, $\hat v_i = W k_i$ (the attention form
    ``attend(k, k, v, score="dot", normalize="none")``), error $\lVert \hat v_i - v_i \rVert / \lVert v_i \rVert$
    averaged over $i$. ``keys: (..., N, d)``, ``values: (..., N, dv)`` -> ``(...)``.
    """
    check_tensor("keys", keys, min_rank=2)
    check_tensor("values", values, min_rank=2)
    check_dim_match("keys", keys, -2, "values", values, -2, "one value per key (N)")
    with argument_names(q="keys", k="keys", v="values"):
        recalled, _ = attend(keys, keys, values, score="dot", normalize="none")  # (..., N, dv)
    return ((recalled - values).norm(dim=-1) / values.norm(dim=-1).clamp_min(1e-12)).mean(-1)


def capacity_curve(key_dims: Sequence[int], n_pairs: Sequence[int], *, value_dim: int = 32, n_trials: int = 20,
                   orthogonal: bool = False, seed: int = 0) -> torch.Tensor:
    """Mean retrieval error for every ``(key_dim, n_pairs)``: ``(len(key_dims), len(n_pairs))``.

    Orthogonal keys only exist up to ``n_pairs = key_dim``; beyond that the entry is NaN.
    """
    out = torch.full((len(key_dims), len(n_pairs)), float("nan"), dtype=torch.float64)
    for a, d in enumerate(key_dims):
        for b, n in enumerate(n_pairs):
            if orthogonal and n > d:
                continue
            k, v = random_pairs(n, d, value_dim, n_trials=n_trials, orthogonal=orthogonal, seed=seed + 1000 * a + b)
            out[a, b] = retrieval_error(k, v).mean()
    return out
