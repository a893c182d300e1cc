r"""Fast weights (1990s): a slow network programs a fast one, which is causal linear attention.

Hinton and Plaut (1987) gave each connection a slowly learned weight and a quickly changing
*fast* weight that holds recent memories. Schmidhuber (1992) let a *slow* network program the
fast weights of another network: at every step it emits a key $k_t$ and a value $v_t$, adds
their outer product to the fast weight matrix, and the fast network maps its input through
it. With a query $q_t$ in place of the input (a learned projection of it, as in linear
Transformers; the input itself in Schmidhuber's programmer, see
:class:`FastWeightProgrammer`):

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

Two relatives are here too. With a **decay** $\lambda$ of the fast weights (Hinton and Plaut,
1987; Ba et al., 2016), $W_t = \lambda W_{t-1} + v_t k_t^\top$, the read is attention with an
exponentially decaying causal mask, $y_t = \sum_{j \le t} \lambda^{t-j} (q_t^\top k_j)\, v_j$
(:func:`decayed_linear_attention`). And the **linear attention** of Katharopoulos et al. (2020)
keeps a feature map $\phi$ and softmax's denominator,
$y_t = S_t \phi(q_t) / (z_t^\top \phi(q_t))$ with $S_t = \sum_{j \le t} v_j \phi(k_j)^\top$ and
$z_t = \sum_{j \le t} \phi(k_j)$ (:func:`linear_attention`); only without $\phi$ and without
the denominator is it the fast-weight programmer.

Shapes: ``...`` batch, ``L`` sequence length, ``d`` key/query width, ``dv`` value width,
``N`` stored pairs, ``E`` input width of the slow network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from attnkit._checks import (
    argument_names,
    broadcast_batch,
    broadcast_shape,
    check_dim_match,
    check_int,
    check_same_dtype_device,
    check_tensor,
    shape_str,
)
from attnkit.core import attend
from attnkit.masks import causal_mask
from attnkit.normalize import no_normalize


def _check_decay(decay: float) -> None:
    if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 < decay <= 1:
        raise ValueError(f"decay must be a number in (0, 1]; got {decay!r}")


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, min_rank=2)
    check_same_dtype_device(q=q, k=k, v=v)
    check_dim_match("q", q, -1, "k", k, -1, "queries and keys need the same width d")
    check_dim_match("q", q, -2, "k", k, -2, "one query, key and value per step (L)")
    check_dim_match("k", k, -2, "v", v, -2, "one query, key and value per step (L)")
    broadcast_batch(q=q, k=k, v=v)


def fast_weight_programmer(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                           W0: torch.Tensor | None = None, decay: float = 1.0,
                           return_state: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""The fast-weight recurrence, step by step: write $v_t k_t^\top$, then read with $q_t$.

    Equivalent to::

        W = zeros(dv, d)
        for t in range(L):
            W = decay * W + outer(v[t], k[t])   # write: W_t = lambda W_{t-1} + v_t k_t^T
            y[t] = W @ q[t]                     # read:  y_t = W_t q_t

    Args:
        q: queries ``(..., L, d)``. k: keys ``(..., L, d)``. v: values ``(..., L, dv)``.
        W0: initial fast weights ``(..., dv, d)`` (default zeros).
        decay: $\lambda \in (0, 1]$, how much of the fast weights survives a step (1: no decay,
            Schmidhuber's additive programmer; below 1: fast weights that fade, as in Hinton
            and Plaut 1987 and Ba et al. 2016).
        return_state: also return the final fast weights ``W_L: (..., dv, d)``.

    Returns:
        ``y: (..., L, dv)`` (and ``W_L`` if asked). Equal to :func:`causal_linear_attention`
        (to :func:`decayed_linear_attention` for ``decay < 1``) when ``W0`` is zero.
    """
    _check_qkv(q, k, v)
    _check_decay(decay)
    batch = broadcast_batch(q=q, k=k, v=v)
    L, d, dv = q.shape[-2], q.shape[-1], v.shape[-1]
    W = torch.zeros(*batch, dv, d, dtype=q.dtype, device=q.device)
    if W0 is not None:
        check_tensor("W0", W0, min_rank=2)
        if W0.shape[-2:] != (dv, d):
            raise ValueError(f"W0 must be (..., dv, d) = (..., {dv}, {d}) (dv from v: {shape_str(v)}, d from "
                             f"q: {shape_str(q)}); got shape {shape_str(W0)}")
        check_same_dtype_device(q=q, W0=W0)
        both = broadcast_shape(batch, W0.shape[:-2])
        if both is None:
            raise ValueError(f"W0's batch dims {tuple(W0.shape[:-2])} do not broadcast with those of q, k, v: "
                             f"{tuple(batch)}")
        batch = both
        W = W.expand(*batch, dv, d)
        W = W + W0
    ys = []
    for t in range(L):
        # W_t = lambda W_{t-1} + v_t k_t^T: (..., dv, 1) * (..., 1, d) -> (..., dv, d)
        W = decay * W + v[..., t, :, None] * k[..., t, None, :]
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


def decay_mask(L: int, decay: float, *, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> torch.Tensor:
    r"""The exponentially decaying causal mask $D_{tj} = \lambda^{t-j}$ for $j \le t$, else 0: ``(L, L)``.

    It multiplies the scores (it is not an additive float mask): fast weights that fade by
    $\lambda$ per step read the past with these factors.
    """
    _check_decay(decay)
    check_int("L", L, minimum=0)
    t = torch.arange(L, device=device)
    lag = (t[:, None] - t[None, :]).to(dtype)  # (L, L): t - j
    return torch.where(lag >= 0, decay ** lag.clamp_min(0), torch.zeros((), dtype=dtype, device=device))


def decayed_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: float) -> torch.Tensor:
    r"""$y_t = \sum_{j \le t} \lambda^{t-j} (q_t^\top k_j)\, v_j$: fast weights with decay, through ``attend``.

    Equivalent to ``(q @ k.transpose(-2, -1) * decay_mask(L, decay)) @ v``: the dot score times
    the decaying causal mask, no normalisation. ``q, k: (..., L, d)``, ``v: (..., L, dv)`` ->
    ``(..., L, dv)``; equal to ``fast_weight_programmer(q, k, v, decay=decay)``.
    """
    _check_qkv(q, k, v)
    D = decay_mask(q.shape[-2], decay, dtype=q.dtype, device=q.device)  # (L, L)

    def decayed_dot(q_: torch.Tensor, k_: torch.Tensor) -> torch.Tensor:
        return (q_ @ k_.transpose(-2, -1)) * D  # s_tj = lambda^(t-j) q_t . k_j, 0 for j > t

    out, _ = attend(q, k, v, score=decayed_dot, normalize="none")
    return out


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    r"""$\phi(x) = \operatorname{elu}(x) + 1 > 0$, the feature map of Katharopoulos et al. (2020)."""
    check_tensor("x", x)
    return F.elu(x) + 1


def _sum_normalize(s: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    # a_tj = s_tj / sum_j' s_tj' over the kept keys (s >= 0 for a positive feature map); empty rows -> 0
    w = no_normalize(s, mask, dim)
    z = w.sum(dim, keepdim=True)
    return w / torch.where(z > 0, z, torch.ones_like(z))


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                     feature_map: Callable[[torch.Tensor], torch.Tensor] = elu_feature_map,
                     causal: bool = True) -> torch.Tensor:
    r"""Linear attention (Katharopoulos et al., 2020): a feature map and softmax's denominator.

    Equivalent to::

        fq, fk = phi(q), phi(k)                          # (..., L, d') each
        s = fq @ fk.transpose(-2, -1)                    # s_tj = phi(q_t) . phi(k_j) >= 0
        s = s * causal_mask(L)                           # j <= t (if causal)
        y = (s / s.sum(-1, keepdim=True)) @ v            # weights sum to 1, like softmax's

    computed by ``attend`` with the dot score on the features and a sum normaliser. The
    recurrent form with its two states is :func:`linear_attention_recurrent`. ``q: (..., Lq, d)``,
    ``k: (..., Lk, d)``, ``v: (..., Lk, dv)`` -> ``(..., Lq, dv)`` (``causal`` needs ``Lq == Lk``).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, min_rank=2)
    if causal:
        _check_qkv(q, k, v)
    mask = causal_mask(q.shape[-2], k.shape[-2], device=q.device) if causal else None
    out, _ = attend(feature_map(q), feature_map(k), v, score="dot", normalize=_sum_normalize, mask=mask)
    return out


def linear_attention_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                               feature_map: Callable[[torch.Tensor], torch.Tensor] = elu_feature_map,
                               return_state: bool = False):
    r"""Causal linear attention as a recurrence with a matrix state $S_t$ and a normaliser state $z_t$.

    Equivalent to::

        S, z = zeros(dv, d'), zeros(d')
        for t in range(L):
            S = S + outer(v[t], phi(k[t]))  # S_t = S_{t-1} + v_t phi(k_t)^T (fast weights)
            z = z + phi(k[t])               # z_t = z_{t-1} + phi(k_t)       (normaliser)
            y[t] = S @ phi(q[t]) / (z @ phi(q[t]))

    ``q, k: (..., L, d)``, ``v: (..., L, dv)`` -> ``y: (..., L, dv)`` (and ``(S_L, z_L)`` if
    ``return_state``). Equal to :func:`linear_attention`; without the division (and with
    ``phi`` the identity) it is :func:`fast_weight_programmer`.
    """
    _check_qkv(q, k, v)
    fq, fk = feature_map(q), feature_map(k)  # (..., L, d')
    batch = broadcast_batch(q=q, k=k, v=v)
    L, dv = q.shape[-2], v.shape[-1]
    S = torch.zeros(*batch, dv, fk.shape[-1], dtype=q.dtype, device=q.device)  # (..., dv, d')
    z = torch.zeros(*batch, fk.shape[-1], dtype=q.dtype, device=q.device)  # (..., d')
    ys = []
    for t in range(L):
        S = S + v[..., t, :, None] * fk[..., t, None, :]  # S_t = S_{t-1} + v_t phi(k_t)^T: (..., dv, d')
        z = z + fk[..., t, :]  # z_t = z_{t-1} + phi(k_t): (..., d')
        num = (S @ fq[..., t, :, None])[..., 0]  # S_t phi(q_t): (..., dv)
        den = (z * fq[..., t, :]).sum(-1, keepdim=True)  # z_t . phi(q_t): (..., 1)
        ys.append(num / torch.where(den > 0, den, torch.ones_like(den)))
    y = torch.stack(ys, dim=-2) if ys else torch.zeros(*batch, 0, dv, dtype=q.dtype, device=q.device)
    return (y, (S, z)) if return_state else y


class FastWeightProgrammer(nn.Module):
    """A slow net writes the fast weights from each input; the fast net reads them.

    The slow net is one linear layer (its weights are learned by gradient descent); the fast
    weights ``W_t`` are written by the slow net's outputs, never trained. Two readings:

    - ``query="input"``: Schmidhuber's (1991/92) programmer as Schlag et al. (2021) write it:
      the slow net emits ``(k_t, v_t)`` and the fast net maps the *input itself*,
      ``y_t = W_t x_t`` (so ``key_dim`` must equal ``in_dim``);
    - ``query="learned"`` (default): the linear-Transformer form, with a third projection
      ``q_t = W_q x_t`` as the fast net's input.

    ``forward(x: (B, L, E)) -> (B, L, dv)``; ``recurrent=True`` runs the step-by-step
    :func:`fast_weight_programmer`, else the (identical) :func:`causal_linear_attention`.
    """

    def __init__(self, in_dim: int, key_dim: int, value_dim: int, *, query: str = "learned") -> None:
        super().__init__()
        for name, n in (("in_dim", in_dim), ("key_dim", key_dim), ("value_dim", value_dim)):
            check_int(name, n, minimum=1)
        if query not in ("learned", "input"):
            raise ValueError(f"query must be 'learned' or 'input'; got {query!r}")
        if query == "input" and key_dim != in_dim:
            raise ValueError(f"query='input' reads the fast weights with x itself: key_dim must equal in_dim "
                             f"({in_dim}); got key_dim={key_dim}")
        self.key_dim, self.value_dim, self.query = key_dim, value_dim, query
        n_out = key_dim + value_dim + (key_dim if query == "learned" else 0)
        self.slow = nn.Linear(in_dim, n_out)

    def forward(self, x: torch.Tensor, *, recurrent: bool = False) -> torch.Tensor:
        """``x: (B, L, E)`` -> ``(B, L, dv)``, by the recurrence or by causal linear attention."""
        check_tensor("x", x, min_rank=2)
        weight = self.slow.weight
        if x.shape[-1] != weight.shape[1] or x.dtype != weight.dtype or x.device != weight.device:
            raise ValueError(f"x must be (B, L, {weight.shape[1]}) of the module's dtype and device ({weight.dtype} "
                             f"on {weight.device}); got shape {shape_str(x)}, {x.dtype} on {x.device}")
        if self.query == "learned":
            k, v, q = self.slow(x).split([self.key_dim, self.value_dim, self.key_dim], dim=-1)  # (B, L, d|dv|d)
        else:
            k, v = self.slow(x).split([self.key_dim, self.value_dim], dim=-1)  # (B, L, d|dv)
            q = x  # the fast net's input is the raw input x_t
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
