"""Checkers for the core exercises (chapter "What is attention?")."""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.core import attend
from attnkit.exercises._harness import Case, CheckResult, run_cases
from attnkit.normalize import masked_softmax


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def masked_softmax_cases(seed: int = 0) -> list[Case]:
    """The hidden cases of :func:`check_masked_softmax` (random, edge and broadcasting)."""
    g = _gen(seed)
    s = torch.randn(4, 6, generator=g, dtype=torch.float64)
    m = torch.rand(4, 6, generator=g) > 0.3
    m[:, 0] = True
    full = m.clone()
    full[2] = False
    big = torch.tensor([[1e4, 0.0, -1e4, 9999.0]])
    b3 = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    bm = torch.tensor([[True, True, False, True, False]])  # (1, Lk): broadcasts over batch and rows
    cases = [
        Case("random scores, nothing masked", (s, torch.ones(4, 6, dtype=torch.bool)), masked_softmax(s),
             hint="with an all-True mask your function should equal torch.softmax(scores, dim=-1)"),
        Case("random scores and mask", (s, m), masked_softmax(s, m),
             hint="masked entries must get weight exactly 0 and the rest must sum to 1"),
        Case("a fully masked row", (s, full), masked_softmax(s, full),
             hint="a row with no key to attend to should be all zeros, not NaN: "
                  "guard the division by the row sum"),
        Case("large logits (1e4) in float32", (big.float(), torch.ones(1, 4, dtype=torch.bool)),
             masked_softmax(big.float(), torch.ones(1, 4, dtype=torch.bool)), atol=1e-6,
             hint="exp(1e4) overflows: subtract the row maximum before exponentiating"),
        Case("large logits (1e4) in float16", (big.half(), torch.ones(1, 4, dtype=torch.bool)),
             masked_softmax(big.half(), torch.ones(1, 4, dtype=torch.bool)), atol=2e-3, rtol=1e-2,
             hint="in float16 exp overflows above ~11: subtract the row maximum first"),
        Case("a mask that broadcasts over batch and queries", (b3, bm), masked_softmax(b3, bm),
             hint="the mask may have fewer dimensions than the scores: rely on broadcasting"),
        Case("a single key", (s[:, :1], torch.ones(4, 1, dtype=torch.bool)), torch.ones(4, 1, dtype=torch.float64)),
        Case("square scores (which axis?)", (s[:, :4], m[:, :4]), masked_softmax(s[:, :4], m[:, :4]),
             hint="normalise over the keys, the last axis (dim=-1): each row sums to 1, not each column"),
        Case("float16 scores keep their dtype", (s.half(), m), masked_softmax(s.half(), m), atol=2e-3, rtol=1e-2,
             hint="return the weights in the scores' dtype: compute in float32 if you like, then .to(scores.dtype)"),
    ]
    return cases


def check_masked_softmax(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                         quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(scores, mask) -> weights``.

    ``scores: (..., Lq, Lk)`` float; ``mask``: bool broadcastable to ``scores``, ``True`` = takes
    part. The weights must sum to 1 over the last axis, be 0 where masked, be all zeros on a
    fully masked row, stay finite for logits of 1e4 in float32 and float16, and have the
    scores' dtype.
    """
    return run_cases(fn, masked_softmax_cases(), checker="check_masked_softmax", quiet=quiet)


def check_scaled_dot_attention(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(q, k, v, mask) -> output`` against :func:`attnkit.attend`.

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)``, ``v: (..., Lk, dv)``, ``mask`` bool broadcastable to
    ``(..., Lq, Lk)`` or ``None``; output ``(..., Lq, dv)`` in the inputs' dtype.
    """
    g = _gen(1)
    q, k, v = (torch.randn(2, n, 8, generator=g, dtype=torch.float64) for n in (3, 5, 5))
    v6 = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    pad = torch.tensor([[True] * 5, [True, True, False, False, False]])[:, None, :]  # (B, 1, Lk)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    qq = torch.randn(2, 7, 8, generator=g, dtype=torch.float64)
    pad_q = torch.rand(2, 7, 5, generator=g) > 0.4  # (B, Lq, Lk)
    pad_q[..., 0] = True
    cases = [
        Case("no mask", (q, k, v, None), attend(q, k, v)[0],
             hint="divide the scores by sqrt(d) where d = q.shape[-1]"),
        Case("values of another width", (q, k, v6, None), attend(q, k, v6)[0],
             hint="the output width is v's last dimension"),
        Case("padding mask", (q, k, v, pad), attend(q, k, v, mask=pad)[0],
             hint="padded keys (mask False) must get zero weight"),
        Case("causal self-attention", (k, k, v, causal), attend(k, k, v, mask=causal)[0],
             hint="query i may only look at keys j <= i"),
        Case("more queries than keys, one mask per batch", (qq, k, v, pad_q), attend(qq, k, v, mask=pad_q)[0],
             hint="normalise over the keys (the last axis of the scores), not over the queries"),
        Case("float16 inputs keep their dtype", (q.half(), k.half(), v.half(), pad),
             attend(q.half(), k.half(), v.half(), mask=pad)[0], atol=5e-3, rtol=5e-3,
             hint="the output should be float16 for float16 inputs (compute in float32, then .to(q.dtype))"),
    ]
    return run_cases(fn, cases, checker="check_scaled_dot_attention", quiet=quiet)
