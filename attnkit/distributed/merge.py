r"""Partial attentions and their merge through log-sum-exps: the online softmax, between devices.

Attention of one query row over a set of keys $J$ can be summarised by two numbers per row:
the output $o_J = \sum_{j \in J} e^{s_j - \ell_J} v_j$ and the **log-sum-exp**
$\ell_J = \log \sum_{j \in J} e^{s_j}$. Two disjoint key sets $A, B$ merge exactly:

$$
\ell = \log\left(e^{\ell_A} + e^{\ell_B}\right), \qquad
o = e^{\ell_A - \ell}\, o_A + e^{\ell_B - \ell}\, o_B,
$$

the online softmax's rescaling step written with $\ell$ in place of the running pair
$(m, \text{sum})$. An empty (or fully masked) key set has $\ell = -\infty$ and $o = 0$ and
drops out of the merge. The merge is associative and commutative, so key blocks can arrive in
any order: this is what lets ring attention pass key/value blocks between devices.

Shapes: ``o: (..., Lq, dv)``, ``lse: (..., Lq)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from attnkit._checks import (
    broadcast_batch,
    check_mask,
    check_same_device,
    check_same_dtype_device,
    check_tensor,
    shape_str,
)
from attnkit.core import attention_scores
from attnkit.normalize import masked_softmax

__all__ = ["accumulation_dtype", "block_attention", "merge_partials", "merge_all"]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype partial results are merged in: float32 for 16-bit inputs, else the input's (fp32, fp64)."""
    return torch.promote_types(dtype, torch.float32)


def block_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                    mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention of ``q`` over one block of keys, with its log-sum-exp.

    Equivalent to::

        s = attention_scores(q, k)            # q @ k^T / sqrt(d): (..., Lq, Lk)
        s = s.masked_fill(~mask, -inf)        # bool mask, True = takes part
        lse = torch.logsumexp(s, -1)          # (..., Lq); -inf on empty rows
        out = attend(q, k, v, mask=mask)[0]   # (..., Lq, dv); 0 on empty rows

    computed once (the scores are not recomputed for ``attend``), in
    :func:`accumulation_dtype` of the inputs.

    Args:
        q: ``(..., Lq, d)``; k: ``(..., Lk, d)``; v: ``(..., Lk, dv)``.
        mask: bool, ``True`` = takes part, broadcastable to ``(..., Lq, Lk)``.

    Returns:
        ``out: (..., Lq, dv)`` and ``lse: (..., Lq)`` (``-inf`` and zeros for rows with no key).
    """
    check_tensor("q", q, min_rank=2, shape="(..., Lq, d)")
    check_tensor("k", k, min_rank=2, shape="(..., Lk, d)")
    check_tensor("v", v, min_rank=2, shape="(..., Lk, dv)")
    check_same_dtype_device(q=q, k=k, v=v)
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v need one value per key: k {shape_str(k)}, v {shape_str(v)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same width d: q {shape_str(q)}, k {shape_str(k)}")
    batch = broadcast_batch(q=q, k=k, v=v)
    if mask is not None:
        check_mask(mask, (*batch, q.shape[-2], k.shape[-2]), device=q.device,
                   source=f"batch and Lq of q: {shape_str(q)}, Lk of k: {shape_str(k)}")
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be bool (True = takes part); got dtype {mask.dtype}")
    return _block_attention(q, k, v, mask)


def _block_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`block_attention` without the input checks (the ring's inner loop builds its own masks)."""
    acc = accumulation_dtype(q.dtype)
    q, k, v = q.to(acc), k.to(acc), v.to(acc)
    if k.shape[-2] == 0:  # an empty block: nothing to attend to
        batch = broadcast_batch(q=q, k=k, v=v)
        return q.new_zeros((*batch, q.shape[-2], v.shape[-1])), q.new_full((*batch, q.shape[-2]), float("-inf"))
    s = attention_scores(q, k)  # s_ij = q_i . k_j / sqrt(d): (..., Lq, Lk)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # l_i = log sum_j e^{s_ij}: (..., Lq)
    w = masked_softmax(s)  # a_ij = e^{s_ij - l_i}; rows with no key give 0
    return w @ v, lse  # o_i = sum_j a_ij v_j: (..., Lq, dv)


def _check_partial(name: str, o: object, lse: object) -> None:
    check_tensor(f"o_{name}", o, min_rank=2, shape="(..., Lq, dv)")
    check_tensor(f"lse_{name}", lse, min_rank=1, shape="(..., Lq)")
    if lse.shape != o.shape[:-1]:
        raise ValueError(f"lse_{name} must have the shape of o_{name} without its last dimension: "
                         f"o_{name} {shape_str(o)}, lse_{name} {shape_str(lse)}")


def merge_partials(o_a: torch.Tensor, lse_a: torch.Tensor, o_b: torch.Tensor,
                   lse_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Merge two partial attentions over disjoint key sets into the attention over their union.

    Equivalent to::

        lse = torch.logaddexp(lse_a, lse_b)                        # (..., Lq)
        o = exp(lse_a - lse)[..., None] * o_a + exp(lse_b - lse)[..., None] * o_b

    with rows where both sets are empty (``lse_a = lse_b = -inf``) giving ``lse = -inf`` and
    ``o = 0`` instead of NaN. Computed in float32 (float64 for float64 inputs).

    Args:
        o_a, o_b: partial outputs ``(..., Lq, dv)``, each normalised over its own keys.
        lse_a, lse_b: their log-sum-exps ``(..., Lq)`` (``-inf`` for an empty or fully masked set).

    Returns:
        ``(o, lse)``: ``(..., Lq, dv)`` and ``(..., Lq)``.
    """
    _check_partial("a", o_a, lse_a)
    _check_partial("b", o_b, lse_b)
    if o_a.shape != o_b.shape:
        raise ValueError(f"o_a and o_b must have the same shape; got {shape_str(o_a)} and {shape_str(o_b)}")
    check_same_device(o_a=o_a, lse_a=lse_a, o_b=o_b, lse_b=lse_b)
    check_same_dtype_device(o_a=o_a, o_b=o_b)
    check_same_dtype_device(lse_a=lse_a, lse_b=lse_b)
    acc = accumulation_dtype(torch.promote_types(o_a.dtype, o_b.dtype))
    lse_a, lse_b = lse_a.to(acc), lse_b.to(acc)
    lse = torch.logaddexp(lse_a, lse_b)  # l = log(e^{l_a} + e^{l_b})
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))  # -inf - (-inf) would be NaN
    w_a = torch.exp(lse_a - safe)[..., None]  # e^{l_a - l}: the share of set A in the union
    w_b = torch.exp(lse_b - safe)[..., None]
    return w_a * o_a.to(acc) + w_b * o_b.to(acc), lse


def merge_all(partials: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold :func:`merge_partials` over ``(o, lse)`` pairs, in the order given (any order gives the same)."""
    if isinstance(partials, (torch.Tensor, str, bytes)) or not hasattr(partials, "__iter__"):
        raise TypeError(f"partials must be an iterable of (o, lse) pairs; got {type(partials).__name__}")
    out = None
    for i, pair in enumerate(partials):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"partials must hold (o, lse) pairs; entry {i} is {type(pair).__name__}"
                            + (f" of length {len(pair)}" if isinstance(pair, (tuple, list)) else ""))
        o, lse = pair
        if out is None:
            _check_partial("a", o, lse)  # a single pair is returned as is: check it too
            out = (o, lse)
        else:
            out = merge_partials(*out, o, lse)
    if out is None:
        raise ValueError("merge_all needs at least one (o, lse) pair; got none")
    o, lse = out
    acc = accumulation_dtype(o.dtype)
    return o.to(acc), lse.to(acc)
