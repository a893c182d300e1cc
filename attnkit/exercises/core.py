"""Checkers for the core exercises (chapter "What is attention?")."""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.core import attend
from attnkit.exercises._harness import Case, CheckResult, run_cases
from attnkit.exercises._typed import typed_case
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
        typed_case("random scores, nothing masked", (s, torch.ones(4, 6, dtype=torch.bool)), masked_softmax(s),
                   hint="with an all-True mask your function should equal torch.softmax(scores, dim=-1)"),
        typed_case("random scores and mask", (s, m), masked_softmax(s, m),
                   hint="masked entries must get weight exactly 0 and the rest must sum to 1"),
        typed_case("a fully masked row", (s, full), masked_softmax(s, full),
                   hint="a row with no key to attend to should be all zeros, not NaN: "
                        "guard the division by the row sum"),
        typed_case("large logits (1e4) in float32", (big.float(), torch.ones(1, 4, dtype=torch.bool)),
                   masked_softmax(big.float(), torch.ones(1, 4, dtype=torch.bool)), atol=1e-6,
                   hint="exp(1e4) overflows: subtract the row maximum before exponentiating; "
                        "return float32 for float32 scores"),
        typed_case("large logits (1e4) in float16", (big.half(), torch.ones(1, 4, dtype=torch.bool)),
                   masked_softmax(big.half(), torch.ones(1, 4, dtype=torch.bool)), atol=2e-3, rtol=1e-2,
                   hint="in float16 exp overflows above ~11: subtract the row maximum first, "
                        "and return float16 for float16 scores"),
        typed_case("a mask that broadcasts over batch and queries", (b3, bm), masked_softmax(b3, bm),
                   hint="the mask may have fewer dimensions than the scores: rely on broadcasting"),
        typed_case("a single key", (s[:, :1], torch.ones(4, 1, dtype=torch.bool)),
                   torch.ones(4, 1, dtype=torch.float64)),
        typed_case("square scores (which axis?)", (s[:, :4], m[:, :4]), masked_softmax(s[:, :4], m[:, :4]),
                   hint="normalise over the keys, the last axis (dim=-1): each row sums to 1, not each column"),
    ]
    return cases


def check_masked_softmax(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                         quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(scores, mask) -> weights``.

    ``scores: (..., Lq, Lk)`` float; ``mask``: bool broadcastable to ``scores``, ``True`` = takes
    part. The weights must sum to 1 over the last axis, be 0 where masked, be all zeros on a
    fully masked row, and stay finite for logits of 1e4 in float32 and float16.
    """
    return run_cases(fn, masked_softmax_cases(), checker="check_masked_softmax", quiet=quiet)


def scaled_dot_attention_cases(seed: int = 1) -> list[Case]:
    """The hidden cases of :func:`check_scaled_dot_attention`."""
    g = _gen(seed)
    q, k, v = (torch.randn(2, n, 8, generator=g, dtype=torch.float64) for n in (3, 5, 5))
    v6 = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    pad = torch.tensor([[True] * 5, [True, True, False, False, False]])[:, None, :]  # (B, 1, Lk)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    # Lq = 3 queries after a 2-token prefix: query i sees keys j <= i + 2 (aligned bottom-right, as when
    # decoding with a cache); a top-left causal mask (tril of (3, 5)) would hide the last keys
    late = torch.ones(3, 5, dtype=torch.bool).tril(diagonal=2)
    empty = torch.ones(2, 3, 5, dtype=torch.bool)
    empty[1, 1] = False  # query 1 of batch entry 1 may see nothing

    def case(name: str, args: tuple, hint: str, dtype: torch.dtype = torch.float64, **tol: float) -> Case:
        qq, kk, vv, m = args
        qq, kk, vv = (t.to(dtype) for t in (qq, kk, vv))
        expected = attend(qq.double(), kk.double(), vv.double(), mask=m)[0].to(dtype)
        return typed_case(name, (qq, kk, vv, m), expected, hint=hint, **tol)

    return [
        case("no mask", (q, k, v, None), "divide the scores by sqrt(d) where d = q.shape[-1]"),
        case("values of another width", (q, k, v6, None), "the output width is v's last dimension"),
        case("padding mask", (q, k, v, pad), "padded keys (mask False) must get zero weight"),
        case("causal self-attention", (k, k, v, causal), "query i may only look at keys j <= i"),
        case("Lq = 3 queries, Lk = 5 keys, a causal mask aligned bottom-right", (q, k, v, late),
             "use the mask you are given, (Lq, Lk) = (3, 5): normalise over the keys (the last axis), "
             "and do not build your own square causal mask"),
        case("a query with every key masked", (q, k, v, empty),
             "a fully masked row has no key to attend to: its weights, and so its output, must be zeros, "
             "not NaN (torch.softmax of a row of -inf is NaN)"),
        case("float32 inputs", (q, k, v, pad), "return the dtype you were given (float32 in, float32 out)",
             dtype=torch.float32, atol=1e-5, rtol=1e-4),
        case("float16 inputs", (q, k, v, pad), "return the dtype you were given (float16 in, float16 out)",
             dtype=torch.float16, atol=1e-2, rtol=1e-2),
    ]


def check_scaled_dot_attention(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(q, k, v, mask) -> output`` against :func:`attnkit.attend`.

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)``, ``v: (..., Lk, dv)``, ``mask`` bool broadcastable to
    ``(..., Lq, Lk)`` (``True`` = takes part) or ``None``; output ``(..., Lq, dv)`` in the inputs'
    dtype, zeros for a query whose keys are all masked.
    """
    return run_cases(fn, scaled_dot_attention_cases(), checker="check_scaled_dot_attention", quiet=quiet)
