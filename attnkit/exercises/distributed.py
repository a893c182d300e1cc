"""Checkers for the chapter "Beyond one device": merge two partial attentions, shard a sequence zig-zag."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from attnkit.distributed.layouts import shard_positions
from attnkit.distributed.merge import block_attention
from attnkit.exercises._harness import Case, CheckResult, run_cases

__all__ = ["check_lse_merge", "check_zigzag_shard", "lse_merge_cases", "zigzag_shard_cases"]


def _partials(lq: int, lk_a: int, lk_b: int, dv: int, *, batch: tuple[int, ...] = (), scale: float = 1.0,
              seed: int = 0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, lq, 4, generator=g, dtype=dtype) * scale
    k = torch.randn(*batch, lk_a + lk_b, 4, generator=g, dtype=dtype)
    v = torch.randn(*batch, lk_a + lk_b, dv, generator=g, dtype=dtype)
    a = block_attention(q, k[..., :lk_a, :], v[..., :lk_a, :])
    b = block_attention(q, k[..., lk_a:, :], v[..., lk_a:, :])
    whole = block_attention(q, k, v)
    return (*a, *b), whole


def _merge_checker(expected: tuple[torch.Tensor, torch.Tensor]) -> Callable[[object], str | None]:
    o_ref, lse_ref = (t.double() for t in expected)
    dtype = expected[0].dtype

    def check(got: object) -> str | None:
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            return f"return a tuple (o, lse) of two tensors; got {type(got).__name__}"
        for name, g, e in (("o", got[0], o_ref), ("lse", got[1], lse_ref)):
            if g.shape != e.shape:
                return f"{name} has shape {tuple(g.shape)}, expected {tuple(e.shape)}"
            if g.dtype != dtype:
                return (f"{name} has dtype {g.dtype}, expected {dtype} (the inputs' precision: computing in "
                        f"float64 hides an overflow that float32 inputs must survive)")
            g = g.detach().double()
            if torch.isnan(g).any():
                return f"{name} contains NaN at {torch.isnan(g).nonzero()[0].tolist()}"
            if not torch.equal(torch.isinf(g) & (g < 0), torch.isinf(e) & (e < 0)) or torch.isinf(g[g > 0]).any():
                return f"{name} is infinite where the answer is not, or the other way round (got {g.flatten()[:4]})"
            fin = torch.isfinite(e)
            if not torch.allclose(g[fin], e[fin], rtol=1e-5, atol=1e-6):
                err = (g - e).abs().masked_fill(~fin, 0)
                idx = [int(i) for i in torch.unravel_index(err.argmax(), err.shape)]
                return f"{name}{idx} = {g[tuple(idx)].item():.6g}, expected {e[tuple(idx)].item():.6g}"
        return None
    return check


def lse_merge_cases() -> list[Case]:
    """The hidden cases of :func:`check_lse_merge`."""
    cases = []
    specs = [
        ("two halves of the keys", dict(lq=3, lk_a=4, lk_b=4, dv=2),
         "o = exp(lse_a - lse) o_a + exp(lse_b - lse) o_b with lse = logaddexp(lse_a, lse_b)"),
        ("one key against seven", dict(lq=3, lk_a=1, lk_b=7, dv=2, seed=1),
         "the blocks are not equal partners: weight each by its share exp(lse_x - lse) of the whole"),
        ("heads and a batch, Lq = dv", dict(lq=4, lk_a=3, lk_b=5, dv=4, batch=(2, 3), seed=2),
         "the weights are per query row: shape (..., Lq, 1), not (..., Lq) against o's last axis"),
        ("scores of about 200", dict(lq=2, lk_a=3, lk_b=3, dv=2, scale=300.0, seed=3, dtype=torch.float32),
         "exp(lse) overflows float32 here: only exponentiate differences such as lse_a - lse"),
    ]
    for name, spec, hint in specs:
        args, whole = _partials(**spec)
        cases.append(Case(name, args, check=_merge_checker(whole), hint=hint))
    args, _ = _partials(lq=3, lk_a=4, lk_b=4, dv=2, seed=4)
    o_a, lse_a, _, _ = args
    empty_o, empty_lse = torch.zeros_like(o_a), torch.full_like(lse_a, -math.inf)
    cases.append(Case("an empty second block (lse = -inf)", (o_a, lse_a, empty_o, empty_lse),
                      check=_merge_checker((o_a, lse_a)),
                      hint="a block with no keys has lse = -inf and must leave (o_a, lse_a) unchanged"))
    cases.append(Case("two empty blocks", (empty_o, empty_lse, empty_o, empty_lse),
                      check=_merge_checker((empty_o, empty_lse)),
                      hint="logaddexp(-inf, -inf) = -inf, and then exp(-inf - (-inf)) is NaN: use 0 in its place"))
    mixed = empty_lse.clone()
    mixed[1] = lse_a[1]
    mixed_o = torch.zeros_like(o_a)
    mixed_o[1] = o_a[1]
    cases.append(Case("a row empty in both blocks, others not", (mixed_o, mixed, empty_o, empty_lse),
                      check=_merge_checker((mixed_o, mixed)), hint="rows are independent: each row's own lse"))
    return cases


def check_lse_merge(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(o_a, lse_a, o_b, lse_b) -> (o, lse)``: two partial attentions merged.

    ``o_x: (..., Lq, dv)`` is attention over key set ``x`` alone and ``lse_x: (..., Lq)`` its
    log-sum-exp; the answer is attention over both sets and its log-sum-exp. Empty sets have
    ``lse = -inf`` and ``o = 0``; no NaN is allowed.
    """
    return run_cases(fn, lse_merge_cases(), checker="check_lse_merge", quiet=quiet)


def _zigzag_expected(x: torch.Tensor, P: int, rank: int) -> torch.Tensor:
    return x.index_select(-2, shard_positions(x.shape[-2], P, rank, "zigzag"))


def zigzag_shard_cases() -> list[Case]:
    """The hidden cases of :func:`check_zigzag_shard`."""
    specs = [  # (N, P, rank, batch shape, hint)
        (8, 2, 0, (1,), "rank 0 of 2 holds chunks 0 and 3 of the 4 chunks"),
        (8, 2, 1, (1,), "rank 1 of 2 holds chunks 1 and 2"),
        (16, 4, 0, (2, 3), "rank r holds chunk r and its mirror chunk 2P - 1 - r, in that order"),
        (16, 4, 3, (2, 3), "the two middle chunks of 8 (3 and 4) go to the last rank"),
        (24, 3, 1, (2,), "24 tokens, 3 ranks: 6 chunks of 4 tokens; rank 1 holds chunks 1 and 4"),
        (12, 1, 0, (1,), "one rank holds everything, in order"),
    ]
    cases = []
    for n, P, rank, batch, hint in specs:
        x = torch.arange(math.prod(batch) * n * 2, dtype=torch.float64).reshape(*batch, n, 2)  # (..., N, 2)
        cases.append(Case(f"N = {n}, P = {P}, rank {rank}", (x, P, rank), expected=_zigzag_expected(x, P, rank),
                          hint=hint + "; the sequence is dimension -2", atol=0, rtol=0))
    return cases


def check_zigzag_shard(fn: Callable[[torch.Tensor, int, int], torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(x, world_size, rank)``: rank ``rank``'s zig-zag shard of ``x: (..., N, d)``.

    The answer is ``(..., N / P, d)``: chunk ``rank`` then chunk ``2P - 1 - rank`` of the ``2P``
    equal chunks of the sequence (dimension ``-2``).
    """
    return run_cases(fn, zigzag_shard_cases(), checker="check_zigzag_shard", quiet=quiet)
