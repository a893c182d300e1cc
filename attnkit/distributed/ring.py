r"""Ring attention (Liu, Zaharia, Abbeel 2023): exact attention over a sequence split across $P$ ranks.

Every rank keeps its queries and passes its key/value block to the next rank of a ring, $P - 1$
times; at step $t$ rank $r$ holds the block of rank $(r - t) \bmod P$ and merges the partial
attention over it into its running output through the log-sum-exps
(:func:`attnkit.distributed.merge.merge_partials`). The send of the block for step $t + 1$ is
posted (``batch_isend_irecv``) *before* the block of step $t$ is computed, so the transfer runs
while the rank computes. The backward pass sends the blocks round again, each with the
gradient $dK, dV$ accumulated so far; after $P$ hops the gradient is back at its owner.

Work is counted in **tiles** of ``block_size`` queries by ``block_size`` keys: a tile that the
causal mask removes entirely is skipped (no FLOPs), one that it cuts is computed in full with a
mask. :class:`RingStats` records, per step, the tiles and FLOPs actually computed, the bytes
handed to the communicator, and the seconds spent computing and waiting.

Shapes: each rank holds ``q, k: (B, H, n, d)``, ``v: (B, H, n, dv)`` with ``n = N / P`` tokens
of the full sequence of length ``N``, placed by ``layout`` (:mod:`attnkit.distributed.layouts`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from attnkit._checks import check_int, check_same_dtype_device, check_tensor, shape_str
from attnkit.core import attention_scores
from attnkit.distributed.layouts import check_layout, shard_positions
from attnkit.distributed.merge import _block_attention, accumulation_dtype, merge_partials

__all__ = ["RingStats", "StepRecord", "RingAttentionFunction", "ring_attention", "require_group", "agree_on_inputs"]


@dataclass
class StepRecord:
    """What one rank did in one step of the ring."""

    phase: str  # "forward" or "backward"
    step: int
    source: int  # group rank that owns the key/value block used in this step
    tiles: int  # score tiles computed
    tiles_skipped: int  # tiles the causal mask removed entirely
    flops: int  # matmul FLOPs of the computed tiles (2 per multiply-add)
    bytes_sent: int  # bytes handed to isend in this step
    compute_s: float  # seconds computing (block attention and merge, or the block's gradients)
    wait_s: float  # seconds waiting for the transfers after the compute


@dataclass
class RingStats:
    """Per-step records of one rank; pass one to :func:`ring_attention` as ``stats=`` to fill it."""

    records: list[StepRecord] = field(default_factory=list)

    def total(self, name: str, phase: str | None = None) -> float:
        """Sum of the field ``name`` over the records (of one ``phase`` if given)."""
        return sum(getattr(r, name) for r in self.records if phase is None or r.phase == phase)

    def summary(self) -> dict[str, float]:
        """Totals per phase: tiles, skipped tiles, FLOPs, bytes sent, compute and wait seconds."""
        out: dict[str, float] = {}
        for phase in ("forward", "backward"):
            for name in ("tiles", "tiles_skipped", "flops", "bytes_sent", "compute_s", "wait_s"):
                out[f"{phase}_{name}"] = self.total(name, phase)
        return out

    def clear(self) -> None:
        self.records.clear()


# ---- process group ---------------------------------------------------------------------------

def require_group(group: object = None) -> tuple[int, int]:
    """``(rank, world_size)`` of this process in ``group`` (default: the world); clear errors otherwise.

    Raises:
        RuntimeError: ``torch.distributed`` is unavailable or no process group is initialised.
        ValueError: this process is not a member of ``group``.
    """
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this build of PyTorch")
    if not dist.is_initialized():
        raise RuntimeError(
            "no process group is initialised: call torch.distributed.init_process_group(...) in every "
            "process first (or run the function with attnkit.distributed.launch.spawn / WorkerGroup)"
        )
    if group is not None and not isinstance(group, dist.ProcessGroup):
        raise TypeError(f"group must be a torch.distributed process group (from new_group) or None for the "
                        f"world; got {type(group).__name__}")
    rank = dist.get_rank(group)
    if rank < 0:
        raise ValueError(f"this process (global rank {dist.get_rank()}) is not a member of the given group")
    return rank, dist.get_world_size(group)


def _global(group: object, group_rank: int) -> int:
    return group_rank if group is None else dist.get_global_rank(group, group_rank)


def agree_on_inputs(group: object, info: dict, problem: str | None, *, what: str) -> list[dict]:
    """All-gather every rank's ``info`` (shapes, options) and its local ``problem``; raise on every rank.

    Each rank checks its own inputs first and, instead of raising at once (which would leave
    the other ranks waiting in the ring), reports the problem here; after the all-gather every
    rank raises the same error, naming the ranks at fault. Inputs that are fine locally but
    differ across ranks (shard shapes, dtypes, options) are reported the same way. The
    all-gather obeys the process group's timeout, so a rank that never arrives gives a
    timeout error instead of a hang.
    """
    rank, world = require_group(group)
    gathered: list = [None] * world
    dist.all_gather_object(gathered, {"rank": rank, "problem": problem, **info}, group=group)
    bad = [g for g in gathered if g["problem"]]
    if bad:
        kinds = {g["problem"].split(":", 1)[0] for g in bad}
        by_problem: dict[str, list[int]] = {}
        for g in bad:
            by_problem.setdefault(g["problem"], []).append(g["rank"])
        lines = "; ".join(f"rank{'s' if len(r) > 1 else ''} {', '.join(map(str, r))}: {p}"
                          for p, r in by_problem.items())
        err = TypeError if kinds == {"TypeError"} else ValueError
        raise err(f"{what}: bad input on {len(bad)} of {world} ranks ({lines})")
    for key in info:
        values = [g[key] for g in gathered]
        if any(v != values[0] for v in values):
            listing = ", ".join(f"rank {g['rank']}: {g[key]}" for g in gathered)
            noun = "shards of different shapes across ranks" if key.endswith("shape") else "ranks disagree"
            raise ValueError(f"{what}: {noun}: {key} differs ({listing})")
    return gathered


def _check_stats(stats: object) -> None:
    if stats is not None and not isinstance(stats, RingStats):
        raise TypeError(f"stats must be a RingStats or None; got {type(stats).__name__}")


def _local_problem(q: object, k: object, v: object, causal: object, layout: object,
                   block_size: object, stats: object = None, return_lse: object = False) -> str | None:
    """This rank's first problem with its inputs, as ``"TypeError: ..."``, or ``None``: checked before any
    collective, reported to every rank by :func:`agree_on_inputs`."""
    try:
        for name, t in (("q", q), ("k", k), ("v", v)):
            check_tensor(name, t, min_rank=4, shape="(B, H, n, d)")
            if t.dim() != 4:
                raise ValueError(f"{name} must have shape (B, H, n, d); got shape {shape_str(t)}")
        check_same_dtype_device(q=q, k=k, v=v)
        if q.device.type == "meta":
            raise ValueError(f"q, k and v are on the meta device, which holds no values to send; got q on "
                             f"{q.device}")
        if q.shape[2] == 0:
            raise ValueError(f"every rank needs at least one token; got q {shape_str(q)}")
        if q.shape != k.shape:
            raise ValueError(f"q and k must have the same shape (B, H, n, d) (self-attention over the same "
                             f"tokens); got q {shape_str(q)}, k {shape_str(k)}")
        if v.shape[:3] != k.shape[:3]:
            raise ValueError(f"v must be (B, H, n, dv) with the B, H, n of k; got k {shape_str(k)}, v {shape_str(v)}")
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be a Python bool; got {causal!r} of type "
                            f"{type(causal).__module__}.{type(causal).__name__}")
        check_layout(layout)
        if layout == "zigzag" and q.shape[2] % 2:
            raise ValueError(f"the zigzag layout holds two equal chunks per rank, so the local length must be "
                             f"even; got n = {q.shape[2]} (q {shape_str(q)})")
        if block_size is not None:
            check_int("block_size", block_size, minimum=1)
        _check_stats(stats)
        if not isinstance(return_lse, bool):
            raise TypeError(f"return_lse must be a bool; got {type(return_lse).__name__}")
    except (TypeError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    return None


def _describe(t: object) -> object:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def _inputs_info(q: object, k: object, v: object, **options: object) -> dict:
    """What every rank must agree on: shapes, dtype, device type, whether gradients flow, the options."""
    tensors = [t for t in (q, k, v) if isinstance(t, torch.Tensor)]
    return {"q shape": _describe(q), "k shape": _describe(k), "v shape": _describe(v),
            "dtype": str(getattr(q, "dtype", None)), "device type": getattr(getattr(q, "device", None), "type", None),
            # a rank whose inputs need no gradient would skip the backward ring the others wait in
            "requires grad": torch.is_grad_enabled() and any(t.requires_grad for t in tensors), **options}


# ---- the local work: tiles of one (query block, key block) pair --------------------------------

@dataclass
class _Tile:
    rows: slice  # local query rows
    keys: torch.Tensor  # local key indices (int64) of the tiles kept for these rows
    mask: torch.Tensor | None  # (rows, keys) bool, None when every kept pair takes part
    tiles: int
    skipped: int


def _tile_bounds(pos: torch.Tensor, tile: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest and largest position in each run of ``tile`` consecutive local tokens."""
    T = -(-len(pos) // tile)
    padded = torch.cat([pos, pos[-1:].expand(T * tile - len(pos))])  # repeat the last: same min, max
    padded = padded.view(T, tile)  # (tiles, tile)
    return padded.amin(1), padded.amax(1)


def _plan(q_pos: torch.Tensor, k_pos: torch.Tensor, causal: bool, tile: int,
          device: torch.device | str | None = None) -> list[_Tile]:
    """Which score tiles of the block (queries at ``q_pos``, keys at ``k_pos``) must be computed."""
    n_q, n_k = len(q_pos), len(k_pos)
    if not causal:
        return [_Tile(slice(0, n_q), torch.arange(n_k, device=device), None, -(-n_q // tile) * -(-n_k // tile), 0)]
    q_min, q_max = _tile_bounds(q_pos, tile)  # (Tq,)
    k_min, k_max = _tile_bounds(k_pos, tile)  # (Tk,)
    keep = k_min[None, :] <= q_max[:, None]  # some key of the tile is not in the future: (Tq, Tk)
    cut = keep & (k_max[None, :] > q_min[:, None])  # ... and some is: the tile needs the mask
    columns = torch.arange(len(k_min) * tile).view(-1, tile)  # local key indices per tile: (Tk, tile)
    plan = []
    for a in range(len(q_min)):
        rows = slice(a * tile, min((a + 1) * tile, n_q))
        keys = columns[keep[a]].flatten()
        keys = keys[keys < n_k]  # the last tile may be short
        mask = (k_pos[keys][None, :] <= q_pos[rows, None]).to(device) if cut[a].any() else None  # (rows, keys)
        n_kept = int(keep[a].sum())
        plan.append(_Tile(rows, keys.to(device), mask, n_kept, len(k_min) - n_kept))
    return plan


def _forward_block(q, k, v, plan):
    """Partial attention of all local queries over one key block: ``(o, lse, tiles, skipped, flops)``."""
    B, H, n, d = q.shape
    dv = v.shape[-1]
    acc = accumulation_dtype(q.dtype)
    o = q.new_zeros((B, H, n, dv), dtype=acc)
    lse = q.new_full((B, H, n), float("-inf"), dtype=acc)
    tiles = skipped = flops = 0
    for t in plan:
        tiles, skipped = tiles + t.tiles, skipped + t.skipped
        if len(t.keys) == 0:
            continue
        o_t, lse_t = _block_attention(q[:, :, t.rows], k[:, :, t.keys], v[:, :, t.keys], t.mask)
        o[:, :, t.rows], lse[:, :, t.rows] = o_t, lse_t
        flops += B * H * (t.rows.stop - t.rows.start) * len(t.keys) * (2 * d + 2 * dv)  # QK^T and PV
    return o, lse, tiles, skipped, flops


def _backward_block(q, k, v, dout, lse, delta, plan):
    """Gradients of the loss w.r.t. the local queries and one key/value block, from the global lse."""
    B, H, _, d = q.shape
    dv_ = v.shape[-1]
    scale = d ** -0.5
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    tiles = skipped = flops = 0
    for t in plan:
        tiles, skipped = tiles + t.tiles, skipped + t.skipped
        if len(t.keys) == 0:
            continue
        qs, ks, vs, dos = q[:, :, t.rows], k[:, :, t.keys], v[:, :, t.keys], dout[:, :, t.rows]
        s = attention_scores(qs, ks)  # s_ij = q_i . k_j / sqrt(d): (B, H, rows, keys)
        if t.mask is not None:
            s = s.masked_fill(~t.mask, float("-inf"))
        p = torch.exp(s - safe[:, :, t.rows, None])  # a_ij = e^{s_ij - l_i} with the *global* l_i
        dv.index_add_(2, t.keys, p.transpose(-2, -1) @ dos)  # dV_j += sum_i a_ij dO_i
        dp = dos @ vs.transpose(-2, -1)  # dA_ij = dO_i . v_j
        ds = p * (dp - delta[:, :, t.rows, None])  # dS_ij = a_ij (dA_ij - sum_j' a_ij' dA_ij')
        dq[:, :, t.rows] += (ds @ ks) * scale  # dQ_i += sum_j dS_ij k_j / sqrt(d)
        dk.index_add_(2, t.keys, (ds.transpose(-2, -1) @ qs) * scale)  # dK_j += sum_i dS_ij q_i / sqrt(d)
        flops += B * H * (t.rows.stop - t.rows.start) * len(t.keys) * (6 * d + 4 * dv_)
    return dq, dk, dv, tiles, skipped, flops


def _exchange(send: torch.Tensor, recv: torch.Tensor, to: int, frm: int, group: object, tag: int) -> list:
    """Post ``send -> to`` and ``recv <- frm`` together; returns the requests to wait on."""
    ops = [dist.P2POp(dist.isend, send, to, group, tag), dist.P2POp(dist.irecv, recv, frm, group, tag)]
    return dist.batch_isend_irecv(ops)


def _wait(reqs: list | None) -> float:
    t0 = time.perf_counter()
    for r in reqs or ():
        r.wait()
    return time.perf_counter() - t0


# ---- the ring ---------------------------------------------------------------------------------

class RingAttentionFunction(torch.autograd.Function):
    """Forward: K/V blocks travel the ring; backward: K/V travel again with their dK/dV accumulators."""

    @staticmethod
    def forward(ctx, q, k, v, causal, group, layout, block_size, stats):
        """``P`` steps: post the next K/V transfer, attend to the block held, merge, wait."""
        rank, P = require_group(group)
        n, d = q.shape[2], q.shape[3]
        to, frm = _global(group, (rank + 1) % P), _global(group, (rank - 1) % P)
        # a tile longer than the block is the block (block_size = 10**9 must not allocate a 10**9 plan)
        tile = min(block_size, n) if block_size else (n // 2 if layout == "zigzag" else n)
        positions = [shard_positions(n * P, P, r, layout) for r in range(P)]
        # the tiles of every step are known in advance: they depend on the positions only
        plans = [_plan(positions[rank], positions[(rank - t) % P], causal, tile, q.device) for t in range(P)]
        kv = torch.cat([k, v], dim=-1).contiguous()  # K and V travel as one message: (B, H, n, d + dv)
        o = lse = None
        for step in range(P):
            source = (rank - step) % P
            reqs, sent = None, 0
            if step < P - 1:  # post the transfer of the next block before computing this one
                nxt = torch.empty_like(kv)
                reqs, sent = _exchange(kv, nxt, to, frm, group, tag=step), kv.numel() * kv.element_size()
            t0 = time.perf_counter()
            o_b, lse_b, tiles, skipped, flops = _forward_block(q, kv[..., :d], kv[..., d:], plans[step])
            o, lse = (o_b, lse_b) if o is None else merge_partials(o, lse, o_b, lse_b)
            compute = time.perf_counter() - t0
            wait = _wait(reqs)
            if stats is not None:
                stats.records.append(StepRecord("forward", step, source, tiles, skipped, flops, sent, compute, wait))
            if reqs:
                kv = nxt
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.options = (causal, group, layout, tile, stats)
        ctx.mark_non_differentiable(lse)
        return o.to(q.dtype), lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        """``P`` steps again; each block's dK/dV accumulator travels with it and ends at its owner."""
        q, k, v, o, lse = ctx.saved_tensors
        causal, group, layout, tile, stats = ctx.options
        rank, P = require_group(group)
        n, d = q.shape[2], q.shape[3]
        to, frm = _global(group, (rank + 1) % P), _global(group, (rank - 1) % P)
        positions = [shard_positions(n * P, P, r, layout) for r in range(P)]
        plans = [_plan(positions[rank], positions[(rank - t) % P], causal, tile, q.device) for t in range(P)]
        acc = o.dtype
        qa, dout = q.to(acc), dout.to(acc)
        delta = (dout * o).sum(-1)  # D_i = dO_i . O_i: (B, H, n)
        kv = torch.cat([k, v], dim=-1).contiguous()  # (B, H, n, d + dv): travels in the input dtype
        dq = torch.zeros_like(qa)
        dkv = dkv_reqs = dkv_next = None
        for step in range(P):
            source = (rank - step) % P
            reqs, sent = None, 0
            if step < P - 1:  # the next K/V block, in flight during this step's compute
                nxt = torch.empty_like(kv)
                reqs, sent = _exchange(kv, nxt, to, frm, group, tag=2 * step), kv.numel() * kv.element_size()
            t0 = time.perf_counter()
            kva = kv.to(acc)
            dq_b, dk_b, dv_b, tiles, skipped, flops = _backward_block(qa, kva[..., :d], kva[..., d:], dout, lse,
                                                                      delta, plans[step])
            dq += dq_b
            compute = time.perf_counter() - t0
            wait = _wait(dkv_reqs)  # the dK/dV accumulated by the previous ranks for this block
            mine = torch.cat([dk_b, dv_b], dim=-1)
            dkv = mine if dkv_next is None else dkv_next + mine
            # pass the accumulator on with its block; after P hops it is back at the block's owner
            if P > 1:
                dkv_next = torch.empty_like(dkv)
                dkv_reqs = _exchange(dkv, dkv_next, to, frm, group, tag=2 * step + 1)
                sent += dkv.numel() * dkv.element_size()
            else:  # one rank: the block never leaves
                dkv_next = dkv
            wait += _wait(reqs)
            if stats is not None:
                stats.records.append(StepRecord("backward", step, source, tiles, skipped, flops, sent, compute, wait))
            if reqs:
                kv = nxt
        t0 = time.perf_counter()
        _wait(dkv_reqs)
        if stats is not None:
            stats.records[-1].wait_s += time.perf_counter() - t0
        dk, dv = dkv_next[..., :d], dkv_next[..., d:]
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None, None, None


def ring_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, group: object = None,
                   layout: str = "contiguous", *, block_size: int | None = None, stats: RingStats | None = None,
                   return_lse: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Exact (causal) self-attention of a sequence sharded across the ranks of ``group``.

    Call it on every rank of an initialised process group, each with its shard. Equivalent to,
    on one process holding the whole sequence ``Q, K, V: (B, H, N, d)``::

        full = F.scaled_dot_product_attention(Q, K, V, is_causal=causal)  # (B, H, N, dv)
        out = shard(full, P, rank, layout)                                # this rank's rows

    computed without any rank ever holding more than two key/value blocks. Differentiable
    (the backward pass is a second trip round the ring, see :class:`RingAttentionFunction`).

    Args:
        q, k: this rank's queries and keys ``(B, H, n, d)``, ``n = N / P``.
        v: this rank's values ``(B, H, n, dv)``.
        causal: mask out keys later in the *global* sequence than the query.
        group: the process group (default: the world).
        layout: ``"contiguous"``, ``"zigzag"`` or ``"striped"``: which tokens each rank holds
            (:func:`attnkit.distributed.layouts.shard`); all ranks must pass the same.
        block_size: the side of a score tile for the causal skip (default: the layout's chunk,
            ``n`` or ``n / 2`` for zig-zag); smaller tiles skip more of the masked work.
        stats: a :class:`RingStats` to record the work, bytes and seconds of every step.
        return_lse: also return the log-sum-exp ``(B, H, n)`` of every query row (fp32 or fp64).

    Returns:
        ``out: (B, H, n, dv)`` in the dtype of ``q`` (and ``lse`` if asked).

    Raises:
        RuntimeError: no initialised process group.
        ValueError, TypeError: bad input on any rank (wrong rank of a tensor, mismatched shapes,
            an odd local length for zig-zag, shards of different shapes across ranks, options
            that differ across ranks), raised on **every** rank after an all-gather of the
            shapes, so that no rank is left waiting in the ring.
    """
    require_group(group)  # a clear error before anything else when there is no process group
    problem = _local_problem(q, k, v, causal, layout, block_size, stats, return_lse)
    info = _inputs_info(q, k, v, causal=causal, layout=layout, block_size=block_size)
    agree_on_inputs(group, info, problem, what="ring_attention")
    out, lse = RingAttentionFunction.apply(q, k, v, causal, group, layout, block_size, stats)
    return (out, lse) if return_lse else out
