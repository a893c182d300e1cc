"""The rank functions the chapter, the tests and the demo run, and the demo itself.

    python -m attnkit.distributed.demo --world-size 4            # 4 gloo processes on this machine
    torchrun --nproc-per-node 4 -m attnkit.distributed.demo      # the same, launched by torchrun

Under ``torchrun`` (the environment has ``RANK`` and ``WORLD_SIZE``) the demo joins the process
group torchrun set up, with NCCL and one GPU per rank when CUDA is available (gloo otherwise);
that path is documented, not tested here (no GPU). On its own it spawns a
:class:`~attnkit.distributed.launch.WorkerGroup`.

Every function below runs **on a rank** (inside an initialised process group) and is called
through ``WorkerGroup.run`` or ``spawn``; it must live in a module so the workers can import it.
The full inputs are passed to every rank and each rank takes its shard, so that the caller can
compare the unsharded results with single-process attention.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from collections.abc import Sequence

import torch
import torch.distributed as dist

from attnkit.distributed.layouts import shard, unshard
from attnkit.distributed.ring import RingStats, _exchange, _wait, require_group, ring_attention
from attnkit.distributed.ulysses import heads_to_sequence, sequence_to_heads, ulysses_attention

__all__ = ["subgroup", "attention_case", "attention_cases", "attention_on_shards", "call_on_ranks", "gather_results",
           "reference_attention", "transfer_seconds", "block_seconds", "rank_info", "main"]

VARIANTS = ("ring", "ulysses")


_SUBGROUPS: dict[tuple[int, ...], object] = {}


def subgroup(ranks: Sequence[int]) -> object:
    """On every rank of the world: the process group of ``ranks`` (created once, then reused).

    ``torch.distributed.new_group`` is collective over the whole world, so every rank must
    call this with the same ``ranks``, members or not.
    """
    key = tuple(ranks)
    if key not in _SUBGROUPS:
        _SUBGROUPS[key] = dist.new_group(list(key))
    return _SUBGROUPS[key]


def attention_case(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dout: torch.Tensor | None = None, *,
                   variant: str = "ring", causal: bool = False, layout: str = "contiguous",
                   block_size: int | None = None, ranks: Sequence[int] | None = None) -> dict | None:
    """On a rank: shard the full ``q, k, v, dout: (B, H, N, d)``, run ``variant``, return this rank's part.

    Returns a dict with ``out`` (and ``dq, dk, dv`` when ``dout`` is given; the gradients of
    ``(out * dout).sum()``), all ``(B, H, N / P, .)`` under ``layout``, and ``stats``: the
    :class:`~attnkit.distributed.ring.RingStats` records of the call. With ``ranks``, only those
    ranks of the world take part (a :func:`subgroup`); the others return ``None``.
    """
    group = None
    if ranks is not None:
        group = subgroup(ranks)
        if dist.get_rank() not in ranks:
            return None
    rank, P = require_group(group)
    fn = {"ring": ring_attention, "ulysses": ulysses_attention}[variant]
    q_r, k_r, v_r = (shard(t, P, rank, layout).detach().requires_grad_(dout is not None) for t in (q, k, v))
    stats = RingStats()
    kwargs = {"block_size": block_size} if variant == "ring" else {}
    t0 = time.perf_counter()
    out = fn(q_r, k_r, v_r, causal=causal, group=group, layout=layout, stats=stats, **kwargs)
    result = {"out": out.detach(), "forward_s": time.perf_counter() - t0}
    if dout is not None:
        t0 = time.perf_counter()
        (out * shard(dout, P, rank, layout)).sum().backward()
        result.update(dq=q_r.grad, dk=k_r.grad, dv=v_r.grad, backward_s=time.perf_counter() - t0)
    result["stats"] = stats.records
    return result


def attention_cases(cases: Sequence[dict]) -> list[dict]:
    """On a rank: :func:`attention_case` for each dict of keyword arguments, one after the other.

    A case whose ``expect_error`` is true records the error instead of raising it
    (``{"error": (type name, message)}``); any other error propagates.
    """
    out = []
    for case in cases:
        case = dict(case)
        expect_error = case.pop("expect_error", False)
        try:
            out.append(attention_case(**case))
        except (TypeError, ValueError) as err:
            if not expect_error:
                raise
            out.append({"error": (type(err).__name__, str(err))})
    return out


def attention_on_shards(per_rank: Sequence[dict | None], *, variant: str = "ring") -> tuple:
    """On a rank: run ``variant`` on this rank's own entry of ``per_rank`` (its inputs and options).

    ``per_rank[r]`` holds ``q, k, v`` and keyword arguments for rank ``r``, so ranks can be
    given different (even inconsistent) inputs; ``None`` means that rank does not call the
    attention at all. Returns ``("ok", out)``, ``("error", type name, message)`` for a
    ``TypeError``/``ValueError``, or ``("skipped",)``.
    """
    rank, _ = require_group()
    mine = per_rank[rank]
    if mine is None:
        return ("skipped",)
    mine = dict(mine)
    fn = {"ring": ring_attention, "ulysses": ulysses_attention}[variant]
    try:
        return ("ok", fn(mine.pop("q"), mine.pop("k"), mine.pop("v"), **mine))
    except (TypeError, ValueError) as err:
        return ("error", type(err).__name__, str(err))


RANK_FUNCTIONS = {"ring_attention": ring_attention, "ulysses_attention": ulysses_attention,
                  "sequence_to_heads": sequence_to_heads, "heads_to_sequence": heads_to_sequence}
"""The collective functions :func:`call_on_ranks` can call, by name."""


def call_on_ranks(fn: str, per_rank: Sequence[tuple[tuple, dict] | None]) -> tuple:
    """On a rank: ``RANK_FUNCTIONS[fn](*args, **kwargs)`` with this rank's ``per_rank[rank] = (args, kwargs)``.

    Each rank can be given its own (even broken) input, to check that one rank's bad input
    fails every rank with the same error instead of leaving the others waiting in a collective.
    ``None`` means that rank does not call ``fn``. Returns ``("ok", result)`` (tensors detached),
    ``("error", type name, message)`` for a ``TypeError``/``ValueError``, or ``("skipped",)``.
    """
    if fn not in RANK_FUNCTIONS:
        raise ValueError(f"fn must be one of {tuple(RANK_FUNCTIONS)}; got {fn!r}")
    rank, _ = require_group()
    mine = per_rank[rank]
    if mine is None:
        return ("skipped",)
    args, kwargs = mine
    try:
        out = RANK_FUNCTIONS[fn](*args, **kwargs)
    except (TypeError, ValueError) as err:
        return ("error", type(err).__name__, str(err))
    if isinstance(out, torch.Tensor):
        out = out.detach()
    elif isinstance(out, tuple):
        out = tuple(t.detach() if isinstance(t, torch.Tensor) else t for t in out)
    return ("ok", out)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dout: torch.Tensor | None = None, *,
                        causal: bool = False) -> dict:
    """Single-process exact attention (``scaled_dot_product_attention`` in float64) and its gradients."""
    q, k, v = (t.detach().double().requires_grad_(dout is not None) for t in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    result = {"out": out.detach()}
    if dout is not None:
        (out * dout.double()).sum().backward()
        result.update(dq=q.grad, dk=k.grad, dv=v.grad)
    return result


def gather_results(per_rank: Sequence[dict], layout: str) -> dict:
    """Unshard ``out`` (and ``dq, dk, dv``) from every rank's :func:`attention_case` result."""
    keys = [key for key in ("out", "dq", "dk", "dv") if key in per_rank[0]]
    return {key: unshard([r[key] for r in per_rank], layout) for key in keys}


def rank_info() -> dict:
    """On a rank: its rank, the world size, the backend and the process id."""
    rank, world = require_group()
    return {"rank": rank, "world_size": world, "backend": dist.get_backend(), "pid": os.getpid()}


def block_seconds(n: int, *, heads: int = 4, dim: int = 64, repeats: int = 5, dtype: str = "float32") -> float:
    """On a rank: seconds of one ring step's compute (block attention of ``n`` by ``n``), fastest of ``repeats``."""
    from attnkit.distributed.merge import block_attention, merge_partials

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, n, dim, generator=g, dtype=getattr(torch, dtype)) for _ in range(3))
    o, lse = block_attention(q, k, v)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        o_b, lse_b = block_attention(q, k, v)
        merge_partials(o, lse, o_b, lse_b)
        times.append(time.perf_counter() - t0)
    return min(times)


def transfer_seconds(n: int, *, heads: int = 4, dim: int = 64, repeats: int = 5, dtype: str = "float32",
                     overlap: bool = False) -> dict:
    """On a rank: seconds to pass one K/V block of ``n`` tokens to the next rank (fastest of ``repeats``).

    With ``overlap=True`` the step's block attention runs between posting the transfer and
    waiting for it, as in :func:`~attnkit.distributed.ring.ring_attention`; the result then has ``step_s`` (the whole
    step) next to ``compute_s`` and ``wait_s``. Every rank must call it with the same arguments.
    """
    from attnkit.distributed.merge import block_attention

    rank, P = require_group()
    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(rank)
    q = torch.randn(1, heads, n, dim, generator=g, dtype=dt)
    kv = torch.randn(1, heads, n, 2 * dim, generator=g, dtype=dt)
    steps, computes, waits = [], [], []
    for i in range(repeats + 1):
        dist.barrier()
        t0 = time.perf_counter()
        nxt = torch.empty_like(kv)
        reqs = _exchange(kv, nxt, (rank + 1) % P, (rank - 1) % P, None, tag=i)
        compute = 0.0
        if overlap:
            t1 = time.perf_counter()
            block_attention(q, kv[..., :dim], kv[..., dim:])
            compute = time.perf_counter() - t1
        wait = _wait(reqs)
        if i:  # the first round warms up the connections
            steps.append(time.perf_counter() - t0)
            computes.append(compute)
            waits.append(wait)

    best = min(range(repeats), key=steps.__getitem__)  # the fastest step, and its parts
    return {"step_s": steps[best], "compute_s": computes[best], "wait_s": waits[best],
            "bytes": kv.numel() * kv.element_size()}


def _report(world: int, seq_len: int, heads: int, dim: int, dtype: torch.dtype, run) -> None:
    """Compare ring and Ulysses attention with single-process attention; print errors, work and bytes."""
    g = torch.Generator().manual_seed(0)
    q, k, v, dout = (torch.randn(1, heads, seq_len, dim, generator=g, dtype=dtype) for _ in range(4))
    print(f"world size {world}, sequence {seq_len}, {heads} heads of {dim}, {dtype}")
    print(f"{'variant':>8} {'layout':>10} {'causal':>6} {'max |err| out':>14} {'dq':>9} {'dk':>9} {'dv':>9}"
          f"  {'FLOPs per rank (forward, 1e6)':>30}  {'bytes sent per rank':>20}")
    for variant in VARIANTS:
        if variant == "ulysses" and heads % world:
            print(f"{variant:>8}: skipped ({heads} heads do not split over {world} ranks)")
            continue
        for layout in ("contiguous", "zigzag"):
            for causal in (False, True):
                per_rank = run(q, k, v, dout, variant=variant, causal=causal, layout=layout)
                got = gather_results(per_rank, layout)
                ref = reference_attention(q, k, v, dout, causal=causal)
                errs = [(got[key].double() - ref[key]).abs().max().item() for key in ("out", "dq", "dk", "dv")]
                stats = [RingStats(r["stats"]) for r in per_rank]
                flops = " ".join(f"{s.total('flops', 'forward') / 1e6:.2f}" for s in stats)
                sent = " ".join(f"{s.total('bytes_sent') / 1e3:.0f}k" for s in stats)
                print(f"{variant:>8} {layout:>10} {causal!s:>6} {errs[0]:14.2e} {errs[1]:9.2e} {errs[2]:9.2e} "
                      f"{errs[3]:9.2e}  {flops:>30}  {sent:>20}")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=4, help="ranks to spawn (ignored under torchrun)")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for every collective")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # launched by torchrun: one process per rank
        cuda = torch.cuda.is_available()
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=args.timeout))
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        rank, world = dist.get_rank(), dist.get_world_size()

        def run(q, k, v, dout, **kw):  # every rank computes; rank 0 gathers the results and prints
            mine = attention_case(*(t.to(device) for t in (q, k, v, dout)), **kw)
            mine = {key: (val.cpu() if isinstance(val, torch.Tensor) else val) for key, val in mine.items()}
            everyone = [None] * world
            dist.all_gather_object(everyone, mine)
            return everyone

        if rank == 0:
            _report(world, args.seq_len, args.heads, args.dim, dtype, run)
        else:
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):  # the other ranks compute but print nothing
                _report(world, args.seq_len, args.heads, args.dim, dtype, run)
        dist.destroy_process_group()
        return 0
    from attnkit.distributed.launch import WorkerGroup

    with WorkerGroup(args.world_size, timeout=args.timeout) as group:
        info = group.run(rank_info)
        print(f"spawned {len(info)} ranks ({info[0]['backend']}), pids {[i['pid'] for i in info]}")
        _report(args.world_size, args.seq_len, args.heads, args.dim, dtype,
                lambda *tensors, **kw: group.run(attention_case, *tensors, **kw))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
