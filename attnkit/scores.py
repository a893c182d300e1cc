r"""Score functions: how much does query $i$ care about key $j$?

Every mechanism in the book computes a score matrix $S \in \mathbb{R}^{L_q \times L_k}$ and
then normalises its rows. This module holds the scores; :mod:`attnkit.normalize` holds the
normalisers; :func:`attnkit.attend` glues them together.

Shape legend (used across attnkit): ``...`` batch dims, ``Lq`` queries, ``Lk`` keys,
``d`` query/key width, ``dv`` value width, ``h`` hidden width of the additive score.

- ``dot``: $q_i^\top k_j$ (Luong et al., 2015)
- ``scaled_dot``: $q_i^\top k_j / \sqrt{d}$ (Vaswani et al., 2017)
- ``general``: $q_i^\top W k_j$ (Luong et al., 2015; one sigma-pi unit)
- ``additive``: $w^\top \tanh(W_q q_i + W_k k_j)$ (Bahdanau et al., 2014)
- ``cosine``: $\cos(q_i, k_j)$ (Graves et al., 2014, neural Turing machines)
- ``gaussian``: $-\lVert q_i - k_j \rVert^2$ (bilateral filter, non-local means)

Precision: float16/bfloat16 inputs are scored in float32 (the products are accumulated in
float32 and any scale is folded in before the product, as ``scaled_dot_product_attention``
does) and the result is cast back to the input dtype, so ``q = k = 40 * ones(64)`` gives the
scaled score 12800, which fits float16, although the raw product 102400 does not.
:func:`attnkit.attend` keeps these float32 scores through the softmax.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from attnkit._checks import (
    HALF_DTYPES,
    arg_name,
    broadcast_batch,
    check_dim_match,
    check_finite_float,
    check_same_dtype_device,
    check_tensor,
    shape_str,
)

ScoreFn = Callable[..., torch.Tensor]


def check_qk(q: object, k: object, *, same_width: bool, what: str) -> None:
    """``q: (..., Lq, d)`` and ``k: (..., Lk, d)`` float tensors of one dtype and device whose batch
    dims broadcast (and, for ``same_width``, of one width ``d``). Raises naming ``q``/``k``."""
    qn, kn = arg_name("q"), arg_name("k")
    check_tensor(qn, q, min_rank=2, shape="(..., Lq, d)")
    check_tensor(kn, k, min_rank=2, shape="(..., Lk, d)")
    check_same_dtype_device(**{qn: q, kn: k})
    broadcast_batch(**{qn: q, kn: k})
    if same_width:
        check_dim_match(qn, q, -1, kn, k, -1, f"{what} compares q and k entrywise")


def check_param(name: str, t: object, q: torch.Tensor, *, rank: int, shape: str, batched: bool = False) -> None:
    """A score parameter: a float tensor of ``rank`` dims (at least, if ``batched``), q's dtype and device."""
    check_tensor(name, t, min_rank=rank, shape=shape)
    if t.dim() != rank and not batched:
        raise ValueError(f"{name} must have shape {shape}; got shape {shape_str(t)}")
    check_same_dtype_device(**{arg_name("q"): q, name: t})


def float32_for_half(fn: ScoreFn) -> ScoreFn:
    """Run a score on float32 copies of float16/bfloat16 tensors and cast the result back."""

    @functools.wraps(fn)
    def wrapper(q: torch.Tensor, k: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if not (isinstance(q, torch.Tensor) and q.dtype in HALF_DTYPES):
            return fn(q, k, *args, **kwargs)
        half = q.dtype

        def up(t: object) -> object:
            return t.float() if isinstance(t, torch.Tensor) and t.dtype == half else t

        out = fn(up(q), up(k), *map(up, args), **{n: up(t) for n, t in kwargs.items()})
        return out.to(half)

    return wrapper


@float32_for_half
def dot_score(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""Dot-product score $s_{ij} = q_i^\top k_j$.

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)`` -> ``(..., Lq, Lk)``.
    """
    check_qk(q, k, same_width=True, what="score 'dot'")
    return q @ k.transpose(-2, -1)  # (..., Lq, d) @ (..., d, Lk) -> (..., Lq, Lk)


@float32_for_half
def scaled_dot_score(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    r"""Scaled dot product $s_{ij} = q_i^\top k_j / \sqrt{d}$ (or times ``scale`` if given).

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)`` -> ``(..., Lq, Lk)``. The scale multiplies ``q``
    before the product (as in ``scaled_dot_product_attention``), so large products do not
    overflow a half-precision intermediate.
    """
    check_qk(q, k, same_width=True, what="score 'scaled_dot'")
    scale = 1.0 / math.sqrt(max(q.shape[-1], 1)) if scale is None else check_finite_float("scale", scale)
    return (q * scale) @ k.transpose(-2, -1)  # (q_i / sqrt(d)) . k_j: (..., Lq, Lk)


@float32_for_half
def general_score(q: torch.Tensor, k: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    r"""Bilinear ("general", Luong) score $s_{ij} = q_i^\top W k_j$.

    ``q: (..., Lq, d)``, ``k: (..., Lk, dk)``, ``W: (d, dk)`` or ``(..., d, dk)`` (broadcast with
    the batch dims) -> ``(..., Lq, Lk)``. One sigma-pi unit computes exactly one such bilinear form.
    """
    check_qk(q, k, same_width=False, what="score 'general'")
    check_param("W", W, q, rank=2, shape="(..., d, dk)", batched=True)
    if W.shape[-2] != q.shape[-1] or W.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"general score needs W of shape (d, dk) = ({q.shape[-1]}, {k.shape[-1]}); "
            f"got W: {shape_str(W)} (q: {shape_str(q)}, k: {shape_str(k)})"
        )
    return q @ (W @ k.transpose(-2, -1))  # (..., Lq, d) @ (d, Lk) -> (..., Lq, Lk)


@float32_for_half
def additive_score(q: torch.Tensor, k: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor,
                   w: torch.Tensor) -> torch.Tensor:
    r"""Additive (Bahdanau, "concat") score $s_{ij} = w^\top \tanh(W_q q_i + W_k k_j)$.

    ``q: (..., Lq, d)``, ``k: (..., Lk, dk)``, ``W_q: (h, d)``, ``W_k: (h, dk)``, ``w: (h,)``
    -> ``(..., Lq, Lk)``. Memory is ``O(Lq * Lk * h)``: fine for the book's sizes.
    """
    check_qk(q, k, same_width=False, what="score 'additive'")
    for name, t, rank, shape in (("W_q", W_q, 2, "(h, d)"), ("W_k", W_k, 2, "(h, dk)"), ("w", w, 1, "(h,)")):
        check_param(name, t, q, rank=rank, shape=shape)
    h = w.shape[-1]
    if W_q.shape != (h, q.shape[-1]) or W_k.shape != (h, k.shape[-1]):
        raise ValueError(
            f"additive score needs W_q: (h, d) = ({h}, {q.shape[-1]}), W_k: (h, dk) = "
            f"({h}, {k.shape[-1]}), w: (h,); got W_q: {shape_str(W_q)}, W_k: {shape_str(W_k)}, "
            f"w: {shape_str(w)} (q: {shape_str(q)}, k: {shape_str(k)})"
        )
    qh = q @ W_q.T  # (..., Lq, h)
    kh = k @ W_k.T  # (..., Lk, h)
    # tanh(W_q q_i + W_k k_j) for every pair: (..., Lq, 1, h) + (..., 1, Lk, h) -> (..., Lq, Lk, h)
    hidden = torch.tanh(qh.unsqueeze(-2) + kh.unsqueeze(-3))
    return hidden @ w  # (..., Lq, Lk)


@float32_for_half
def cosine_score(q: torch.Tensor, k: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    r"""Cosine similarity $s_{ij} = q_i^\top k_j / (\lVert q_i\rVert \lVert k_j\rVert)$.

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)`` -> ``(..., Lq, Lk)``, values in ``[-1, 1]``
    (a zero vector scores 0 against everything: norms are clamped at ``eps``).
    """
    check_qk(q, k, same_width=True, what="score 'cosine'")
    qn = q / q.norm(dim=-1, keepdim=True).clamp_min(eps)
    kn = k / k.norm(dim=-1, keepdim=True).clamp_min(eps)
    return qn @ kn.transpose(-2, -1)  # (..., Lq, Lk)


@float32_for_half
def gaussian_score(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""Negative squared distance $s_{ij} = -\lVert q_i - k_j \rVert^2$.

    With softmax and temperature $h^2$ this gives the Gaussian-kernel weights
    $\exp(-\lVert q_i - k_j\rVert^2 / h^2) / Z_i$ of Nadaraya-Watson regression, the bilateral
    filter and non-local means. ``q: (..., Lq, d)``, ``k: (..., Lk, d)`` -> ``(..., Lq, Lk)``.
    """
    check_qk(q, k, same_width=True, what="score 'gaussian'")
    # ||q||^2 - 2 q.k + ||k||^2, clamped at 0 against rounding
    sq = (q * q).sum(-1, keepdim=True) - 2 * (q @ k.transpose(-2, -1)) + (k * k).sum(-1).unsqueeze(-2)
    return -sq.clamp_min(0)


SCORES: dict[str, ScoreFn] = {
    "dot": dot_score,
    "scaled_dot": scaled_dot_score,
    "general": general_score,
    "additive": additive_score,
    "cosine": cosine_score,
    "gaussian": gaussian_score,
}
"""Score functions by name, as accepted by :func:`attnkit.attend`'s ``score`` argument."""

#: Scores that compare q and k coordinate by coordinate, so both need the same width ``d``.
SAME_WIDTH_SCORES = frozenset({"dot", "scaled_dot", "cosine", "gaussian"})
