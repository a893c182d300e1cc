r"""Sequence layouts: which tokens of a length-$N$ sequence each of $P$ ranks holds.

==============  ======================================================  ==================
layout          rank $r$ holds (in this order)                          $N$ must divide by
==============  ======================================================  ==================
``contiguous``  tokens $rN/P, \dots, (r+1)N/P - 1$ (Liu et al. 2023)    $P$
``zigzag``      chunks $r$ and $2P-1-r$ of $2P$ equal chunks            $2P$
``striped``     tokens $r, r+P, r+2P, \dots$ (Brandon et al. 2023)      $P$
==============  ======================================================  ==================

Under a causal mask, the contiguous layout gives rank $P-1$ all of the last block's work and
rank 0 almost none; zig-zag pairs an early chunk with a late one and striped spreads every rank
over the whole sequence, so each rank's share of the causal triangle is (nearly) the same.
The position of every local token, :func:`shard_positions`, is all ring attention needs to
build the causal mask of any layout.

Shapes: the sequence is dimension ``dim`` (default ``-2``: ``(B, H, N, d)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attnkit._checks import check_dim, check_int, shape_str

__all__ = ["LAYOUTS", "chunk_count", "check_layout", "shard_positions", "shard", "unshard"]

LAYOUTS = ("contiguous", "zigzag", "striped")
"""The layouts :func:`shard` and ring attention understand."""


def check_layout(layout: object) -> str:
    """``layout`` if it is one of :data:`LAYOUTS`, else a ValueError naming the choices."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}")
    return layout


def chunk_count(layout: str, world_size: int) -> int:
    """How many equal pieces the sequence length must split into: ``2P`` for zig-zag, ``P`` otherwise."""
    check_layout(layout)
    check_int("world_size", world_size, minimum=1)
    return 2 * world_size if layout == "zigzag" else world_size


def shard_positions(n: int, world_size: int, rank: int, layout: str = "contiguous") -> torch.Tensor:
    """Global positions ``(n / P,)`` (int64) of the tokens rank ``rank`` holds, in local order.

    Equivalent to (``c = n // P``, ``h = n // (2 P)``)::

        contiguous: torch.arange(rank * c, (rank + 1) * c)
        zigzag:     torch.cat([torch.arange(rank * h, (rank + 1) * h),
                               torch.arange((2 * P - 1 - rank) * h, (2 * P - rank) * h)])
        striped:    torch.arange(rank, n, P)

    Raises:
        ValueError: ``n`` not divisible by :func:`chunk_count`, ``rank`` outside ``[0, P)``,
            an unknown layout.
    """
    check_int("n", n, minimum=0)
    pieces = chunk_count(layout, world_size)
    check_int("rank", rank, minimum=0)
    if rank >= world_size:
        raise ValueError(f"rank must be in [0, world_size) = [0, {world_size}); got {rank}")
    if n % pieces:
        raise ValueError(
            f"sequence length {n} is not divisible by {pieces}, the number of chunks of the {layout!r} "
            f"layout for world_size={world_size}; pad the sequence to a multiple of {pieces}"
        )
    P = world_size
    if layout == "contiguous":
        c = n // P
        return torch.arange(rank * c, (rank + 1) * c)
    if layout == "zigzag":
        h = n // (2 * P)
        first, second = rank, 2 * P - 1 - rank  # an early chunk and its mirror image
        return torch.cat([torch.arange(first * h, (first + 1) * h), torch.arange(second * h, (second + 1) * h)])
    return torch.arange(rank, n, P)  # striped: every P-th token


def shard(x: torch.Tensor, world_size: int, rank: int, layout: str = "contiguous", *, dim: int = -2) -> torch.Tensor:
    """The part of the full sequence ``x`` that rank ``rank`` holds under ``layout``.

    ``x: (..., N, ...)`` with the sequence on ``dim`` -> ``(..., N / P, ...)``. Equivalent to
    ``x.index_select(dim, shard_positions(N, world_size, rank, layout))``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() == 0:
        raise ValueError("x must have a sequence dimension; got a 0-d tensor")
    dim = check_dim("dim", dim, x.dim()) % x.dim()
    idx = shard_positions(x.shape[dim], world_size, rank, layout).to(x.device)
    return x.index_select(dim, idx)


def unshard(shards: Sequence[torch.Tensor], layout: str = "contiguous", *, dim: int = -2) -> torch.Tensor:
    """Reassemble the full sequence from every rank's shard (``shards[r]`` from rank ``r``).

    The inverse of :func:`shard`: ``unshard([shard(x, P, r, layout) for r in range(P)], layout)``
    equals ``x``. Shards ``(..., N / P, ...)`` -> ``(..., N, ...)``.
    """
    check_layout(layout)
    if isinstance(shards, (torch.Tensor, str, bytes)) or not hasattr(shards, "__iter__"):
        raise TypeError(f"shards must be a non-empty sequence of tensors, one per rank; got {type(shards).__name__}")
    shards = list(shards)
    if not shards or not all(isinstance(s, torch.Tensor) for s in shards):
        got = ", ".join(type(s).__name__ for s in shards) or "nothing"
        raise TypeError(f"shards must be a non-empty sequence of tensors, one per rank; got {got}")
    first = shards[0]
    for r, s in enumerate(shards):
        if s.shape != first.shape:
            raise ValueError(f"shards must all have the same shape; shard 0 is {shape_str(first)}, "
                             f"shard {r} is {shape_str(s)}")
        if s.dtype != first.dtype:
            raise TypeError(f"shards must share one dtype; shard 0 is {first.dtype}, shard {r} is {s.dtype}")
        if s.device != first.device:
            raise ValueError(f"shards must be on one device; shard 0 is on {first.device}, shard {r} on {s.device}")
    if first.dim() == 0:
        raise ValueError("shards must have a sequence dimension; got 0-d tensors")
    P = len(shards)
    dim = check_dim("dim", dim, first.dim()) % first.dim()
    n = first.shape[dim] * P
    out = first.new_empty((*first.shape[:dim], n, *first.shape[dim + 1:]))
    for r, s in enumerate(shards):
        out.index_copy_(dim, shard_positions(n, P, r, layout).to(first.device), s)
    return out
