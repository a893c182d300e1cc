r"""Position information for the Transformer: sinusoidal, learned and rotary.

- ``sinusoidal_positions`` (Vaswani et al., 2017): a fixed table of sines and cosines;
- ``LearnedPositions`` (Gehring et al., 2017): a trained table;
- ``apply_rotary`` / ``rotary_score`` (Su et al., 2021): rotate queries and keys so that their
  dot product depends on the offset only; the score plugs into :func:`attnkit.attend`.

Shapes: ``L`` length, ``E`` model width (``d_model``), ``d`` query/key width.
"""

from __future__ import annotations

import torch
from torch import nn

from attnkit._checks import check_int, check_positive, check_tensor, shape_str
from attnkit.scores import check_qk, scaled_dot_score

POSITIONS = ("sinusoidal", "learned", "rotary", "none")
"""The kinds of position information ``TinyTransformer`` accepts."""


# ---- positions --------------------------------------------------------------------------------

def sinusoidal_positions(length: int, d_model: int, *, base: float = 10000.0,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""The sinusoidal position table of Vaswani et al. (2017): ``(length, d_model)``.

    Equivalent to::

        pe[pos, 2i]     = sin(pos / base ** (2i / d_model))
        pe[pos, 2i + 1] = cos(pos / base ** (2i / d_model))

    Each pair of columns is a clock of its own frequency; ``pe[pos + k]`` is a rotation of
    ``pe[pos]`` by an angle that depends only on ``k``. An odd ``d_model`` drops the last cosine.
    """
    check_int("length", length, minimum=0)
    check_int("d_model", d_model, minimum=1)
    check_positive("base", base)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype (a table of sines); got {dtype!r}")
    pos = torch.arange(length, dtype=torch.float64)[:, None]  # (L, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(E/2),)
    # omega_i = base^(-2i/d)
    angle = pos * base ** (-two_i / d_model)  # (L, ceil(E/2))
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)[:, : d_model // 2]
    return pe.to(dtype)


class LearnedPositions(nn.Module):
    """A learned position table (Gehring et al., 2017): ``forward(L) -> (L, E)``, ``L <= max_len``."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = check_int("max_len", max_len, minimum=1)
        check_int("d_model", d_model, minimum=1)
        self.table = nn.Parameter(torch.randn(max_len, d_model) * 0.1)  # (max_len, E)

    def forward(self, length: int) -> torch.Tensor:
        check_int("length", length, minimum=0)
        if length > self.max_len:
            raise ValueError(f"length {length} exceeds the learned table's max_len={self.max_len}")
        return self.table[:length]


def apply_rotary(x: torch.Tensor, positions: torch.Tensor | None = None, *, base: float = 10000.0) -> torch.Tensor:
    r"""Rotary position embedding (RoPE, Su et al., 2021) of ``x: (..., L, d)``, ``d`` even.

    Equivalent to rotating each pair of coordinates of the vector at position ``m``::

        theta_i = base ** (-2i / d)                           # i = 0 .. d/2 - 1
        (x[2i], x[2i+1]) <- (x[2i] cos(m theta_i) - x[2i+1] sin(m theta_i),
                             x[2i] sin(m theta_i) + x[2i+1] cos(m theta_i))

    so that ``apply_rotary(q)[m] . apply_rotary(k)[n]`` depends on ``m - n`` only.
    ``positions: (L,)`` defaults to ``0 .. L-1``. Returns a tensor of ``x``'s shape.

    Convention: neighbouring pairs ``(x[2i], x[2i+1])``, as in the RoFormer paper and GPT-J.
    GPT-NeoX and LLaMA-style code pair ``(x[i], x[i + d/2])`` with a ``rotate_half`` helper
    (``attnkit.exercises.transformer.rotate_half_rotary``); the two agree after permuting
    the coordinates (evens first, then odds), so weights trained under one need that
    permutation of the query/key projections to work under the other.
    Exactly: with ``P = cat([arange(0, d, 2), arange(1, d, 2)])``, ``apply_rotary(x)[..., P] ==
    rotate_half_rope(x[..., P])``, and every score is unchanged (``tests/test_conventions.py``).
    """
    check_tensor("x", x, min_rank=2, shape="(..., L, d)")
    check_positive("base", base)
    L, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"rotary embeddings rotate pairs of coordinates, so d must be even; got x: {shape_str(x)}")
    if positions is None:
        positions = torch.arange(L, device=x.device)
    elif not isinstance(positions, torch.Tensor) or positions.dtype == torch.bool or positions.is_complex():
        got = positions.dtype if isinstance(positions, torch.Tensor) else type(positions).__name__
        raise TypeError(f"positions must be a real tensor (L,) of positions; got {got}")
    elif positions.device != x.device:
        raise ValueError(f"positions must be on x's device ({x.device}); got {positions.device}")
    elif positions.shape != (L,):
        raise ValueError(f"positions must be (L,) = ({L},) for x: {shape_str(x)}; got shape {tuple(positions.shape)}")
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)  # (d/2,)
    angle = positions.to(torch.float64)[:, None] * theta  # m * theta_i: (L, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (..., L, d/2) each
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (..., L, d/2, 2)
    return out.flatten(-2)  # (..., L, d)


def rotary_score(q: torch.Tensor, k: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    r"""Scaled dot score of rotated queries and keys, a score function for :func:`attnkit.attend`.

    Equivalent to ``scaled_dot_score(apply_rotary(q), apply_rotary(k))``: query ``m`` and key
    ``n`` sit at positions ``0 .. Lq-1`` and ``0 .. Lk-1``. ``q: (..., Lq, d)``,
    ``k: (..., Lk, d)`` -> ``(..., Lq, Lk)``. Pass it as ``attend(q, k, v, score=rotary_score)``
    or ``MultiHeadAttention(E, H, score=rotary_score)``.
    """
    check_qk(q, k, same_width=True, what="rotary_score")
    return scaled_dot_score(apply_rotary(q, base=base), apply_rotary(k, base=base))


__all__ = ["POSITIONS", "LearnedPositions", "apply_rotary", "rotary_score", "sinusoidal_positions"]
