r"""Ulysses-style attention (Jacobs et al. 2023): re-shard from sequence to heads, attend, re-shard back.

Each rank holds ``n = N / P`` tokens of every head. One **all-to-all** per tensor sends head
group $j$ (``H / P`` heads) of the local tokens to rank $j$, so that afterwards rank $j$ holds
*all* $N$ tokens of its ``H / P`` heads; attention is then ordinary single-device attention
(``attend``) over the whole sequence, and a last all-to-all brings the output back to the
sequence layout. Four all-to-alls per layer (Q, K, V, O), each moving ``(P - 1) / P`` of a
local tensor, against ring attention's ``P - 1`` hops of the K/V block. The price: ``P`` must
divide the head count, so the heads cap the degree of parallelism (a model with 8 K/V heads
cannot use more than 8 ranks this way).

Shapes: each rank holds ``q, k: (B, H, n, d)``, ``v: (B, H, n, dv)``; inside, ``(B, H / P, N, d)``.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from attnkit._checks import check_tensor, shape_str
from attnkit.core import attend
from attnkit.distributed.layouts import shard_positions
from attnkit.distributed.ring import (
    RingStats,
    StepRecord,
    _check_stats,
    _describe,
    _inputs_info,
    _local_problem,
    agree_on_inputs,
    require_group,
)

__all__ = ["AllToAll", "heads_to_sequence", "sequence_to_heads", "ulysses_attention"]


class AllToAll(torch.autograd.Function):
    """``all_to_all_single`` on dimension 0 (``P`` equal slots); its gradient is the same exchange.

    Slot ``j`` of the input goes to rank ``j``; slot ``j`` of the output comes from rank ``j``.
    The map is a permutation of slots between ranks, so its adjoint is the inverse
    permutation, which is the same call on the gradient.
    """

    @staticmethod
    def forward(ctx, x, group, stats):
        """Slot ``j`` of ``x: (P, ...)`` to rank ``j``; slot ``j`` of the result from rank ``j``."""
        ctx.group, ctx.stats = group, stats
        return _all_to_all(x.contiguous(), group, stats, "forward")

    @staticmethod
    def backward(ctx, grad):
        """The same exchange, applied to the gradient."""
        return _all_to_all(grad.contiguous(), ctx.group, ctx.stats, "backward"), None, None


def _all_to_all(x: torch.Tensor, group: object, stats: RingStats | None, phase: str) -> torch.Tensor:
    if x.shape[0] == 1:  # one rank: nothing to exchange (gloo has no pair to itself)
        return x.clone()
    out = torch.empty_like(x)
    t0 = time.perf_counter()
    dist.all_to_all_single(out, x, group=group)
    if stats is not None:
        sent = x.numel() * x.element_size() * (x.shape[0] - 1) // x.shape[0]  # the slot kept locally stays
        stats.records.append(StepRecord(phase, -1, -1, 0, 0, 0, sent, 0.0, time.perf_counter() - t0))
    return out


def _reshard_problem(name: str, x: object, shape: str, stats: object, P: int, divides: int | None) -> str | None:
    """This rank's problem with the input of a re-sharding (checked before the all-to-all), or ``None``."""
    try:
        check_tensor(name, x, min_rank=4, floating=False, shape=shape)
        if x.dim() != 4:
            raise ValueError(f"{name} must have shape {shape}; got shape {shape_str(x)}")
        if x.device.type == "meta":
            raise ValueError(f"{name} is on the meta device, which holds no values to send")
        if divides is not None and x.shape[divides] % P:
            what = "heads H" if divides == 1 else "positions N"
            raise ValueError(f"{name}: the world size P = {P} must divide its {what}; got shape {shape_str(x)}")
        _check_stats(stats)
    except (TypeError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    return None


def _agree_on_reshard(name: str, x: object, shape: str, group: object, stats: object, divides: int,
                      what: str) -> int:
    """Check ``x`` on every rank and agree before the all-to-all: a bad rank fails every rank. Returns ``P``."""
    _, P = require_group(group)
    info = {f"{name} shape": _describe(x), "dtype": str(getattr(x, "dtype", None)),
            "requires grad": isinstance(x, torch.Tensor) and torch.is_grad_enabled() and x.requires_grad}
    agree_on_inputs(group, info, _reshard_problem(name, x, shape, stats, P, divides), what=what)
    return P


def sequence_to_heads(x: torch.Tensor, group: object = None, stats: RingStats | None = None) -> torch.Tensor:
    """``(B, H, n, d)`` sequence-sharded -> ``(B, H / P, N, d)`` head-sharded, tokens in rank order.

    Token ``t`` of the result is token ``t % n`` of rank ``t // n``: rank-major order, which is
    the global order for the contiguous layout (the causal mask of the other layouts is built
    from their positions). Call it on every rank; bad input on any rank (not 4-D, ``P`` not
    dividing ``H``, shapes that differ across ranks) raises the same error on every rank.
    """
    P = _agree_on_reshard("x", x, "(B, H, n, d)", group, stats, 1, "sequence_to_heads")
    return _sequence_to_heads(x, group, stats, P)


def _sequence_to_heads(x: torch.Tensor, group: object, stats: RingStats | None, P: int) -> torch.Tensor:
    B, H, n, d = x.shape
    x = x.reshape(B, P, H // P, n, d).transpose(0, 1)  # slot j = head group j: (P, B, H/P, n, d)
    y = AllToAll.apply(x, group, stats)  # slot j = rank j's tokens of my heads: (P, B, H/P, n, d)
    return y.permute(1, 2, 0, 3, 4).reshape(B, H // P, P * n, d)  # (B, H/P, N, d)


def heads_to_sequence(y: torch.Tensor, group: object = None, stats: RingStats | None = None) -> torch.Tensor:
    """The inverse of :func:`sequence_to_heads`: ``(B, H / P, N, d)`` -> ``(B, H, n, d)``.

    Checked on every rank as :func:`sequence_to_heads` (``P`` must divide ``N``)."""
    P = _agree_on_reshard("y", y, "(B, H / P, N, d)", group, stats, 2, "heads_to_sequence")
    return _heads_to_sequence(y, group, stats, P)


def _heads_to_sequence(y: torch.Tensor, group: object, stats: RingStats | None, P: int) -> torch.Tensor:
    B, Hp, N, d = y.shape
    n = N // P
    y = y.reshape(B, Hp, P, n, d).permute(2, 0, 1, 3, 4)  # slot j = rank j's tokens: (P, B, H/P, n, d)
    z = AllToAll.apply(y, group, stats)  # slot j = head group j of my tokens: (P, B, H/P, n, d)
    return z.transpose(0, 1).reshape(B, P * Hp, n, d)  # (B, H, n, d)


def ulysses_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, group: object = None,
                      layout: str = "contiguous", *, stats: RingStats | None = None) -> torch.Tensor:
    r"""Exact (causal) self-attention of a sequence sharded across ranks, by all-to-all re-sharding.

    The same contract as :func:`attnkit.distributed.ring.ring_attention`; equivalent to::

        qh, kh, vh = (sequence_to_heads(t) for t in (q, k, v))   # (B, H/P, N, d)
        out = attend(qh, kh, vh, mask=causal_mask_by_position)[0] # all N tokens, H/P heads
        return heads_to_sequence(out)                             # (B, H, n, dv)

    Differentiable through autograd (each all-to-all's gradient is an all-to-all).

    Args:
        q, k: ``(B, H, n, d)``; v: ``(B, H, n, dv)``; ``H`` must be divisible by ``P``.
        causal, group, layout: as for ring attention.
        stats: a :class:`~attnkit.distributed.ring.RingStats` to record bytes, FLOPs and seconds.

    Raises:
        RuntimeError: no initialised process group.
        ValueError, TypeError: bad input on any rank, including a head count ``H`` that ``P``
            does not divide, raised on every rank.
    """
    rank, P = require_group(group)
    problem = _local_problem(q, k, v, causal, layout, None, stats)
    if problem is None and q.shape[1] % P:
        problem = (f"ValueError: Ulysses splits the heads across ranks, so the world size must divide the "
                   f"head count; got H = {q.shape[1]} heads for P = {P} ranks (use at most H ranks, or ring "
                   f"attention)")
    info = _inputs_info(q, k, v, causal=causal, layout=layout)
    agree_on_inputs(group, info, problem, what="ulysses_attention")
    n = q.shape[2]
    qh, kh, vh = (_sequence_to_heads(t, group, stats, P) for t in (q, k, v))  # (B, H/P, N, d)
    t0 = time.perf_counter()
    mask = None
    if causal:  # key j is visible to query i when its global position is not later
        pos = torch.cat([shard_positions(n * P, P, r, layout) for r in range(P)]).to(q.device)  # (N,)
        mask = pos[None, :] <= pos[:, None]  # (N, N)
    out, _ = attend(qh, kh, vh, mask=mask)  # (B, H/P, N, dv)
    if stats is not None:
        B, Hp, N, d = qh.shape
        flops = B * Hp * N * N * (2 * d + 2 * vh.shape[-1])  # attend computes every pair, masked or not
        stats.records.append(StepRecord("forward", 0, rank, 1, 0, flops, 0, time.perf_counter() - t0, 0.0))
    return _heads_to_sequence(out, group, stats, P)
