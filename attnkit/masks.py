"""Mask helpers. A mask is bool with ``True`` = "this (query, key) pair takes part".

Shapes: ``causal_mask`` -> ``(Lq, Lk)``; ``padding_mask`` -> ``(B, L)``, which becomes a
key mask ``(B, 1, Lk)`` (or ``(B, 1, 1, Lk)`` with heads) via :func:`key_mask`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def causal_mask(Lq: int, Lk: int | None = None, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``(Lq, Lk)``, ``True`` where key ``j <= i`` (query ``i`` sees the past and itself).

    Aligned top-left, like ``scaled_dot_product_attention(is_causal=True)``.
    """
    Lk = Lq if Lk is None else Lk
    for name, n in (("Lq", Lq), ("Lk", Lk)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{name} must be a non-negative int; got {n!r}")
    return torch.ones(Lq, Lk, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: Sequence[int] | torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Bool ``(B, L)``: ``True`` for the first ``lengths[b]`` positions of sequence ``b``."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.is_floating_point():
        raise ValueError(
            f"lengths must be a 1-D sequence of ints; got shape {tuple(lengths.shape)}, dtype {lengths.dtype}"
        )
    if (lengths < 0).any():
        raise ValueError(f"lengths must be non-negative; got {lengths.tolist()}")
    L = int(lengths.max()) if max_len is None and len(lengths) else (max_len or 0)
    if len(lengths) and int(lengths.max()) > L:
        raise ValueError(f"max_len={L} is shorter than the longest length {int(lengths.max())}")
    return torch.arange(L, device=lengths.device) < lengths[:, None]  # (B, L)


def key_mask(pad: torch.Tensor, *, heads: bool = False) -> torch.Tensor:
    """Turn a ``(B, Lk)`` padding mask into a key mask ``(B, 1, Lk)`` or ``(B, 1, 1, Lk)``."""
    if pad.dim() != 2:
        raise ValueError(f"pad must be (B, Lk); got shape {tuple(pad.shape)}")
    return pad[:, None, None, :] if heads else pad[:, None, :]


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Logical AND of bool masks (``None`` entries are skipped; all ``None`` -> ``None``)."""
    out = None
    for m in masks:
        if m is None:
            continue
        if m.dtype != torch.bool:
            raise TypeError(f"combine_masks takes bool masks; got dtype {m.dtype}")
        out = m if out is None else out & m
    return out
