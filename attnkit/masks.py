"""Mask helpers. A mask is bool with ``True`` = "this (query, key) pair takes part".

Shapes: ``causal_mask`` -> ``(Lq, Lk)``; ``padding_mask`` -> ``(B, L)``, which becomes a
key mask ``(B, 1, Lk)`` (or ``(B, 1, 1, Lk)`` with heads) via :func:`key_mask`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attnkit._checks import broadcast_shape, check_int, check_tensor, shape_str


def causal_mask(Lq: int, Lk: int | None = None, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``(Lq, Lk)``, ``True`` where key ``j <= i`` (query ``i`` sees the past and itself).

    Aligned top-left, like ``scaled_dot_product_attention(is_causal=True)``: with ``Lq < Lk``
    the last keys are seen by nobody, with ``Lq > Lk`` the last queries see every key. (The
    FlashAttention-2 library aligns bottom-right, ``j <= i + Lk - Lq``; so does
    ``attnkit.flash``, see the book's *Conventions* page.) ``Lk = 0`` gives an empty
    ``(Lq, 0)`` mask, on which :func:`attnkit.attend` returns zeros.
    """
    Lk = Lq if Lk is None else Lk
    for name, n in (("Lq", Lq), ("Lk", Lk)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{name} must be a non-negative int; got {n!r}")
    return torch.ones(Lq, Lk, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: Sequence[int] | torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Bool ``(B, L)``: ``True`` for the first ``lengths[b]`` positions of sequence ``b``.

    ``lengths``: a 1-D sequence or tensor of non-negative ints; ``L = max_len`` (at least the
    longest length) or the longest length. Hugging Face's ``attention_mask`` of a right-padded
    batch is the same matrix (1 = real token).
    """
    if max_len is not None:
        check_int("max_len", max_len, minimum=0)
    if isinstance(lengths, torch.Tensor):
        if lengths.device.type == "meta":
            raise ValueError("lengths must hold real values (not on the meta device)")
    else:
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"lengths must be a 1-D sequence of ints; got {type(lengths).__name__} ({err})") from None
    if lengths.dim() != 1 or lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise ValueError(
            f"lengths must be a 1-D sequence of ints; got shape {tuple(lengths.shape)}, dtype {lengths.dtype}"
        )
    if (lengths < 0).any():
        raise ValueError(f"lengths must be non-negative; got {lengths.tolist()}")
    longest = int(lengths.max()) if len(lengths) else 0
    L = longest if max_len is None else max_len
    if longest > L:
        raise ValueError(f"max_len={L} is shorter than the longest of lengths, {longest}")
    return torch.arange(L, device=lengths.device) < lengths[:, None]  # (B, L)


def key_mask(pad: torch.Tensor, *, heads: bool = False) -> torch.Tensor:
    """Turn a ``(B, Lk)`` padding mask into a key mask ``(B, 1, Lk)`` or ``(B, 1, 1, Lk)``.

    ``pad`` is bool, ``True`` for real tokens (the opposite of ``nn.MultiheadAttention``'s
    ``key_padding_mask``, where ``True`` marks padding: pass ``~key_padding_mask``).
    """
    check_tensor("pad", pad, floating=False)
    if pad.dtype != torch.bool:
        raise TypeError(f"pad must be a bool tensor (True = real token); got dtype {pad.dtype}")
    if pad.dim() != 2:
        raise ValueError(f"pad must be (B, Lk); got shape {tuple(pad.shape)}")
    return pad[:, None, None, :] if heads else pad[:, None, :]


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Logical AND of bool masks that broadcast together (``None`` entries are skipped; all ``None`` -> ``None``)."""
    out = None
    for i, m in enumerate(masks):
        if m is None:
            continue
        name = f"combine_masks argument {i}"
        check_tensor(name, m, floating=False)
        if m.dtype != torch.bool:
            raise TypeError(f"combine_masks takes bool masks; got dtype {m.dtype} for argument {i}")
        if out is not None:
            if m.device != out.device:
                raise ValueError(f"combine_masks takes masks on one device; got {out.device} and {m.device} "
                                 f"(argument {i})")
            if broadcast_shape(out.shape, m.shape) is None:
                raise ValueError(f"combine_masks takes masks that broadcast together; got {shape_str(out)} and "
                                 f"{shape_str(m)} (argument {i})")
        out = m if out is None else out & m
    return out
