"""Checkers for the Part I exercises: the cocktail party, sigma-pi units and fast weights.

Every case also checks the dtype of the answer (``attnkit.exercises._typed.typed_case``):
float64, float32 and float16 inputs must come back in their own dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.classic.cocktail import select_channel
from attnkit.classic.fast_weights import causal_linear_attention
from attnkit.classic.sigma_pi import sigma_pi_score
from attnkit.exercises._harness import CheckResult, run_cases
from attnkit.exercises._typed import typed_case

HALF = {"atol": 1e-2, "rtol": 1e-2}
"""Tolerances for float16 answers (about three significant digits)."""


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _as(dtype: torch.dtype, *ts: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(dtype) for t in ts)


def attenuator_cases(seed: int = 3) -> list:
    """The hidden cases of :func:`check_attenuator`."""
    g = _gen(seed)
    keys = torch.randn(4, 6, generator=g, dtype=torch.float64)
    keys = keys / keys.norm(dim=-1, keepdim=True)
    chans = torch.randn(4, 50, generator=g, dtype=torch.float64)
    q = keys[2].clone()
    big = 30 * keys[1]
    loud = keys * torch.tensor([[1.0], [2.0], [0.5], [3.0]], dtype=torch.float64)  # keys of different norms

    def case(name: str, query: torch.Tensor, ks: torch.Tensor, T: float, hint: str,
             dtype: torch.dtype = torch.float64, tol: dict | None = None):
        query, ks, cs = _as(dtype, query, ks, chans)
        expected = select_channel(query.double(), ks.double(), cs.double(), temperature=T)[0].to(dtype)
        return typed_case(name, (query, ks, cs, T), expected, hint=hint, **(tol or {}))

    return [
        case("temperature 1", q, keys, 1.0, "a = softmax of the dot scores keys @ query, output = a @ channels"),
        case("low temperature 0.1", q, keys, 0.1, "divide the scores by the temperature (do not multiply)"),
        case("high temperature 10", q, keys, 10.0, "divide the scores by the temperature: high T flattens the weights"),
        case("a query that is not unit-norm (3 * keys[2]) at temperature 1", 3 * q, keys, 1.0,
             "the score is the plain dot product keys @ query: do not normalise the query (no cosine)"),
        case("keys of different norms", q, loud, 1.0,
             "the score is the plain dot product: do not normalise the keys either"),
        case("large scores (30) at temperature 0.01", big, keys, 0.01,
             "scores of 3000 overflow exp: subtract the largest score before exponentiating"),
        case("float32 inputs", q, keys, 0.3, "return the dtype you were given (float32 in, float32 out)",
             dtype=torch.float32, tol={"atol": 1e-5, "rtol": 1e-4}),
        case("float16 inputs", 3 * q, keys, 0.5, "return the dtype you were given (float16 in, float16 out)",
             dtype=torch.float16, tol=HALF),
    ]


def check_attenuator(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's Treisman attenuator ``fn(query, keys, channels, temperature) -> signal``.

    ``query: (D,)``, ``keys: (V, D)``, ``channels: (V, N)``; the output ``(N,)`` is
    ``sum_j a_j channels[j]`` with ``a = softmax(keys @ query / temperature)``, as
    :func:`attnkit.classic.cocktail.select_channel` computes it, in the inputs' dtype.
    """
    return run_cases(fn, attenuator_cases(), checker="check_attenuator", quiet=quiet)


def bilinear_score_cases(seed: int = 4) -> list:
    """The hidden cases of :func:`check_bilinear_score`."""
    g = _gen(seed)
    q, k = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    W = torch.randn(4, 4, generator=g, dtype=torch.float64)
    k6 = torch.randn(5, 6, generator=g, dtype=torch.float64)
    W46 = torch.randn(4, 6, generator=g, dtype=torch.float64)
    qb = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    kb = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)

    def case(name: str, args: tuple[torch.Tensor, ...], hint: str, dtype: torch.dtype = torch.float64,
             tol: dict | None = None):
        args = _as(dtype, *args)
        expected = sigma_pi_score(*(a.double() for a in args)).to(dtype)
        return typed_case(name, args, expected, hint=hint, **(tol or {}))

    return [
        case("square W", (q, k, W), "s_ij = sum_a sum_b W[a, b] q[i, a] k[j, b]"),
        case("rectangular W (d=4, dk=6)", (q, k6, W46),
             "W is (d, dk): its rows go with q's coordinates, its columns with k's"),
        case("a batch of 2", (qb, kb, W46), "use k.transpose(-2, -1), not k.T, so batch dimensions stay in front"),
        case("float32 inputs", (qb, kb, W46), "return the dtype you were given", dtype=torch.float32,
             tol={"atol": 1e-5, "rtol": 1e-4}),
        case("float16 inputs", (q, k6, W46), "return the dtype you were given (float16 in, float16 out)",
             dtype=torch.float16, tol=HALF),
    ]


def check_bilinear_score(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's sigma-pi score ``fn(q, k, W) -> s`` with ``s_ij = q_i^T W k_j``.

    ``q: (..., Lq, d)``, ``k: (..., Lk, dk)``, ``W: (d, dk)`` -> ``(..., Lq, Lk)`` in the inputs'
    dtype, compared with :func:`attnkit.classic.sigma_pi.sigma_pi_score`.
    """
    return run_cases(fn, bilinear_score_cases(), checker="check_bilinear_score", quiet=quiet)


def fast_weights_cases(seed: int = 5) -> list:
    """The hidden cases of :func:`check_fast_weights`."""
    g = _gen(seed)
    q, k = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    v = torch.randn(6, 2, generator=g, dtype=torch.float64)
    qb, kb, vb = (torch.randn(2, 5, n, generator=g, dtype=torch.float64) for n in (4, 4, 3))

    def case(name: str, args: tuple[torch.Tensor, ...], hint: str, dtype: torch.dtype = torch.float64,
             tol: dict | None = None):
        args = _as(dtype, *args)
        expected = causal_linear_attention(*(a.double() for a in args)).to(dtype)
        return typed_case(name, args, expected, hint=hint, **(tol or {}))

    return [
        case("a single step", (q[:1], k[:1], v[:1]), "write first, then read: y_1 = (v_1 k_1^T) q_1"),
        case("six steps", (q, k, v), "y_t must use W_t, which already contains v_t k_t^T (write before you read)"),
        case("a batch of 2", (qb, kb, vb), "keep one fast weight matrix (dv, d) per batch entry"),
        case("float32 inputs", (qb, kb, vb), "return the dtype you were given", dtype=torch.float32,
             tol={"atol": 1e-5, "rtol": 1e-4}),
        case("float16 inputs", (q, k, v), "return the dtype you were given (float16 in, float16 out)",
             dtype=torch.float16, tol={"atol": 3e-2, "rtol": 1e-2}),
    ]


def check_fast_weights(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's fast-weight programmer ``fn(q, k, v) -> y``.

    ``q: (L, d)``, ``k: (L, d)``, ``v: (L, dv)`` (and batched ``(B, L, ...)``); ``y_t = W_t q_t`` with
    ``W_t = W_{t-1} + v_t k_t^T``, ``W_0 = 0``: causal linear attention, the current step included,
    in the inputs' dtype.
    """
    return run_cases(fn, fast_weights_cases(), checker="check_fast_weights", quiet=quiet)
