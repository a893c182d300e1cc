"""Checkers for the Part I exercises: the cocktail party, sigma-pi units and fast weights."""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.classic.cocktail import select_channel
from attnkit.classic.fast_weights import causal_linear_attention
from attnkit.classic.sigma_pi import sigma_pi_score
from attnkit.exercises._harness import Case, CheckResult, run_cases


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def check_attenuator(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's Treisman attenuator ``fn(query, keys, channels, temperature) -> signal``.

    ``query: (D,)``, ``keys: (V, D)``, ``channels: (V, N)``; the output ``(N,)`` is
    ``sum_j a_j channels[j]`` with ``a = softmax(keys @ query / temperature)``, as
    :func:`attnkit.classic.cocktail.select_channel` computes it.
    """
    g = _gen(3)
    keys = torch.randn(4, 6, generator=g, dtype=torch.float64)
    keys = keys / keys.norm(dim=-1, keepdim=True)
    chans = torch.randn(4, 50, generator=g, dtype=torch.float64)
    q = keys[2].clone()
    big = 30 * keys[1]

    def case(name: str, query: torch.Tensor, T: float, hint: str) -> Case:
        return Case(name, (query, keys, chans, T), select_channel(query, keys, chans, temperature=T)[0], hint=hint)

    cases = [
        case("temperature 1", q, 1.0, "a = softmax of the dot scores keys @ query, output = a @ channels"),
        case("low temperature 0.1", q, 0.1, "divide the scores by the temperature (do not multiply)"),
        case("high temperature 10", q, 10.0, "divide the scores by the temperature: high T flattens the weights"),
        case("large scores (30) at temperature 0.01", big, 0.01,
             "scores of 3000 overflow exp: subtract the largest score before exponentiating"),
    ]
    return run_cases(fn, cases, checker="check_attenuator", quiet=quiet)


def check_bilinear_score(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's sigma-pi score ``fn(q, k, W) -> s`` with ``s_ij = q_i^T W k_j``.

    ``q: (..., Lq, d)``, ``k: (..., Lk, dk)``, ``W: (d, dk)`` -> ``(..., Lq, Lk)``, compared
    with :func:`attnkit.classic.sigma_pi.sigma_pi_score`.
    """
    g = _gen(4)
    q, k = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    W = torch.randn(4, 4, generator=g, dtype=torch.float64)
    k6 = torch.randn(5, 6, generator=g, dtype=torch.float64)
    W46 = torch.randn(4, 6, generator=g, dtype=torch.float64)
    qb = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    kb = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    cases = [
        Case("square W", (q, k, W), sigma_pi_score(q, k, W), hint="s_ij = sum_a sum_b W[a, b] q[i, a] k[j, b]"),
        Case("rectangular W (d=4, dk=6)", (q, k6, W46), sigma_pi_score(q, k6, W46),
             hint="W is (d, dk): its rows go with q's coordinates, its columns with k's"),
        Case("a batch of 2", (qb, kb, W46), sigma_pi_score(qb, kb, W46),
             hint="use k.transpose(-2, -1), not k.T, so batch dimensions stay in front"),
    ]
    return run_cases(fn, cases, checker="check_bilinear_score", quiet=quiet)


def check_fast_weights(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's fast-weight programmer ``fn(q, k, v) -> y``.

    ``q: (L, d)``, ``k: (L, d)``, ``v: (L, dv)`` (and batched ``(B, L, ...)``); ``y_t = W_t q_t`` with
    ``W_t = W_{t-1} + v_t k_t^T``, ``W_0 = 0``: causal linear attention, the current step included.
    """
    g = _gen(5)
    q, k = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    v = torch.randn(6, 2, generator=g, dtype=torch.float64)
    qb, kb, vb = (torch.randn(2, 5, n, generator=g, dtype=torch.float64) for n in (4, 4, 3))
    one = (q[:1], k[:1], v[:1])
    cases = [
        Case("a single step", one, causal_linear_attention(*one),
             hint="write first, then read: y_1 = (v_1 k_1^T) q_1"),
        Case("six steps", (q, k, v), causal_linear_attention(q, k, v),
             hint="y_t must use W_t, which already contains v_t k_t^T (write before you read)"),
        Case("a batch of 2", (qb, kb, vb), causal_linear_attention(qb, kb, vb),
             hint="keep one fast weight matrix (dv, d) per batch entry"),
    ]
    return run_cases(fn, cases, checker="check_fast_weights", quiet=quiet)
