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
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from attnkit._checks import check_tensor, shape_str

ScoreFn = Callable[..., torch.Tensor]


def dot_score(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""Dot-product score $s_{ij} = q_i^\top k_j$.

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)`` -> ``(..., Lq, Lk)``.
    """
    return q @ k.transpose(-2, -1)  # (..., Lq, d) @ (..., d, Lk) -> (..., Lq, Lk)


def scaled_dot_score(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    r"""Scaled dot product $s_{ij} = q_i^\top k_j / \sqrt{d}$ (or times ``scale`` if given).

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)`` -> ``(..., Lq, Lk)``.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return dot_score(q, k) * scale


def general_score(q: torch.Tensor, k: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    r"""Bilinear ("general", Luong) score $s_{ij} = q_i^\top W k_j$.

    ``q: (..., Lq, d)``, ``k: (..., Lk, dk)``, ``W: (d, dk)`` -> ``(..., Lq, Lk)``.
    One sigma-pi unit computes exactly one such bilinear form.
    """
    check_tensor("W", W, min_rank=2)
    if W.shape[-2] != q.shape[-1] or W.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"general score needs W of shape (d, dk) = ({q.shape[-1]}, {k.shape[-1]}); "
            f"got W: {shape_str(W)} (q: {shape_str(q)}, k: {shape_str(k)})"
        )
    return q @ (W @ k.transpose(-2, -1))  # (..., Lq, d) @ (d, Lk) -> (..., Lq, Lk)


def additive_score(q: torch.Tensor, k: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor,
                   w: torch.Tensor) -> torch.Tensor:
    r"""Additive (Bahdanau, "concat") score $s_{ij} = w^\top \tanh(W_q q_i + W_k k_j)$.

    ``q: (..., Lq, d)``, ``k: (..., Lk, dk)``, ``W_q: (h, d)``, ``W_k: (h, dk)``, ``w: (h,)``
    -> ``(..., Lq, Lk)``. Memory is ``O(Lq * Lk * h)``: fine for the book's sizes.
    """
    for name, t, rank in (("W_q", W_q, 2), ("W_k", W_k, 2), ("w", w, 1)):
        check_tensor(name, t, min_rank=rank)
    h = w.shape[-1]
    if W_q.shape != (h, q.shape[-1]) or W_k.shape != (h, k.shape[-1]):
        raise ValueError(
            f"additive score needs W_q: (h, d) = ({h}, {q.shape[-1]}), W_k: (h, dk) = "
            f"({h}, {k.shape[-1]}), w: (h,); got W_q: {shape_str(W_q)}, W_k: {shape_str(W_k)}, "
            f"w: {shape_str(w)}"
        )
    qh = q @ W_q.T  # (..., Lq, h)
    kh = k @ W_k.T  # (..., Lk, h)
    # tanh(W_q q_i + W_k k_j) for every pair: (..., Lq, 1, h) + (..., 1, Lk, h) -> (..., Lq, Lk, h)
    hidden = torch.tanh(qh.unsqueeze(-2) + kh.unsqueeze(-3))
    return hidden @ w  # (..., Lq, Lk)


def cosine_score(q: torch.Tensor, k: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    r"""Cosine similarity $s_{ij} = q_i^\top k_j / (\lVert q_i\rVert \lVert k_j\rVert)$.

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)`` -> ``(..., Lq, Lk)``, values in ``[-1, 1]``.
    """
    qn = q / q.norm(dim=-1, keepdim=True).clamp_min(eps)
    kn = k / k.norm(dim=-1, keepdim=True).clamp_min(eps)
    return dot_score(qn, kn)


def gaussian_score(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""Negative squared distance $s_{ij} = -\lVert q_i - k_j \rVert^2$.

    With softmax and temperature $h^2$ this gives the Gaussian-kernel weights
    $\exp(-\lVert q_i - k_j\rVert^2 / h^2) / Z_i$ of Nadaraya-Watson regression, the bilateral
    filter and non-local means. ``q: (..., Lq, d)``, ``k: (..., Lk, d)`` -> ``(..., Lq, Lk)``.
    """
    # ||q||^2 - 2 q.k + ||k||^2, clamped at 0 against rounding
    sq = (q * q).sum(-1, keepdim=True) - 2 * dot_score(q, k) + (k * k).sum(-1).unsqueeze(-2)
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
