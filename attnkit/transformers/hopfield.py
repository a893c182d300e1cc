r"""Modern Hopfield networks (Ramsauer et al., 2021): one update step is one attention step.

Store $N$ patterns $x_1, \dots, x_N \in \mathbb{R}^d$ as the columns of $X$. The continuous
modern Hopfield network updates a state $\xi$ by

.. math::

    \xi^{\text{new}} = X \operatorname{softmax}(\beta X^\top \xi),

which is ``attend(xi, X.T, X.T, score="dot", temperature=1 / beta)``: the state is the query,
the stored patterns are both keys and values, and $\beta$ is an inverse temperature. The update
never increases the energy $E(\xi) = -\beta^{-1} \log \sum_i e^{\beta x_i^\top \xi} +
\tfrac12 \xi^\top \xi + \text{const}$. For large $\beta$ a query converges to the nearest stored
pattern (retrieval); for small $\beta$ it converges to an average of many patterns (a
*metastable state*). The classical network (Hopfield, 1982) updates $\xi \leftarrow
\operatorname{sign}(X X^\top \xi)$ and stores only about $0.14 d$ random patterns; dense
associative memories (Krotov & Hopfield, 2016) and the exponential energy raise the capacity.

Shapes: ``N`` stored patterns, ``d`` pattern width, ``M`` queries. In code the patterns are the
*rows* of ``patterns: (N, d)`` (that is, $X^\top$), as keys are elsewhere in attnkit.
"""

from __future__ import annotations

import math

import torch

from attnkit._checks import (
    argument_names,
    broadcast_batch,
    check_index_tensor,
    check_positive,
    check_same_dtype_device,
    check_tensor,
    shape_str,
)
from attnkit.core import attend


def _check(patterns: torch.Tensor, queries: torch.Tensor, queries_name: str = "queries") -> None:
    check_tensor("patterns", patterns, min_rank=2, shape="(..., N, d)")
    check_tensor(queries_name, queries, min_rank=2, shape="(..., M, d)")
    if patterns.shape[-1] != queries.shape[-1]:
        raise ValueError(f"patterns and {queries_name} need the same width d; got patterns: {shape_str(patterns)}, "
                         f"{queries_name}: {shape_str(queries)}")
    check_same_dtype_device(patterns=patterns, **{queries_name: queries})
    broadcast_batch(patterns=patterns, **{queries_name: queries})


_NAMES = {"q": "queries", "k": "patterns", "v": "patterns", "temperature": "1 / beta"}


def hopfield_update(patterns: torch.Tensor, queries: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One modern Hopfield step for each query; returns ``(new (..., M, d), weights (..., M, N))``.

    Equivalent to (with ``X = patterns.T`` and one query ``xi``)::

        p = torch.softmax(beta * X.T @ xi, dim=0)   # (N,): how well each pattern matches
        xi_new = X @ p                              # (d,): their weighted average

    Args:
        patterns: stored patterns as rows ``(..., N, d)``.
        queries: states ``(..., M, d)``.
        beta: inverse temperature ``> 0``.
    """
    _check(patterns, queries)
    check_positive("beta", beta)
    # xi_new = X softmax(beta X^T xi): queries attend over the stored patterns
    with argument_names(**_NAMES):
        return attend(queries, patterns, patterns, score="dot", temperature=1.0 / beta)


def hopfield_retrieve(patterns: torch.Tensor, queries: torch.Tensor, beta: float, *,
                      steps: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` updates of ``hopfield_update``; returns the final states and weights."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int; got {steps!r}")
    xi, w = queries, None
    for _ in range(steps):
        xi, w = hopfield_update(patterns, xi, beta)
    return xi, w


def hopfield_energy(patterns: torch.Tensor, queries: torch.Tensor, beta: float) -> torch.Tensor:
    r"""The energy $E(\xi) = -\beta^{-1}\log\sum_i e^{\beta x_i^\top\xi} + \tfrac12\xi^\top\xi + c$.

    The constant is $c = \beta^{-1}\log N + \tfrac12 R^2$ with $R$ the largest pattern norm.
    ``patterns: (..., N, d)``, ``queries: (..., M, d)`` ->
    ``(..., M)``. The update of ``hopfield_update`` never increases it.
    """
    _check(patterns, queries)
    check_positive("beta", beta)
    if patterns.shape[-2] < 1:
        raise ValueError(f"patterns must hold at least one pattern (N >= 1); got shape {shape_str(patterns)}")
    s = queries @ patterns.transpose(-2, -1)  # x_i . xi: (..., M, N)
    lse = torch.logsumexp(beta * s, dim=-1) / beta  # (..., M)
    R = patterns.norm(dim=-1).amax(-1, keepdim=True)  # largest pattern norm: (..., 1)
    N = patterns.shape[-2]
    return -lse + 0.5 * (queries * queries).sum(-1) + math.log(N) / beta + 0.5 * R**2


def classical_hopfield_update(patterns: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    r"""Hopfield (1982): $\xi \leftarrow \operatorname{sign}(X X^\top \xi)$ for ``+-1`` patterns.

    ``patterns: (..., N, d)``, ``queries: (..., M, d)`` -> ``(..., M, d)`` (ties go to ``+1``).
    It is the same attention with ``normalize="none"`` followed by a sign.
    """
    _check(patterns, queries)
    # h = X X^T xi = sum_i (x_i . xi) x_i: unnormalised attention, then the sign
    with argument_names(**_NAMES):
        h, _ = attend(queries, patterns, patterns, score="dot", normalize="none")
    s = torch.where(h >= 0, 1.0, -1.0).to(queries.dtype)
    return torch.where(torch.isnan(h), h, s)  # the sign of NaN is NaN


def effective_patterns(weights: torch.Tensor) -> torch.Tensor:
    r"""How many patterns a state mixes: the participation ratio $1 / \sum_i p_i^2$ of each row.

    ``weights: (..., M, N)`` -> ``(..., M)``; 1 for the retrieval of one pattern, ``N`` for the
    uniform average over all of them (the global metastable state).
    """
    check_tensor("weights", weights, min_rank=1)
    return 1.0 / (weights * weights).sum(-1).clamp_min(1e-12)


def retrieval_accuracy(patterns: torch.Tensor, retrieved: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of ``retrieved: (M, d)`` states whose nearest stored pattern is ``targets: (M,)``."""
    _check(patterns, retrieved, "retrieved")
    if patterns.dim() != 2 or retrieved.dim() != 2 or patterns.shape[0] < 1:
        raise ValueError(f"patterns must be (N, d) with N >= 1 and retrieved (M, d); got patterns: "
                         f"{shape_str(patterns)}, retrieved: {shape_str(retrieved)}")
    check_index_tensor("targets", targets, low=0, high=patterns.shape[0], rank=1)
    if targets.shape[0] != retrieved.shape[0] or targets.device != retrieved.device:
        raise ValueError(f"targets must be (M,) = ({retrieved.shape[0]},) on {retrieved.device}, one per retrieved "
                         f"state; got shape {shape_str(targets)} on {targets.device}")
    if retrieved.shape[0] == 0:
        raise ValueError("retrieved is empty: no state to score")
    nearest = torch.cdist(retrieved, patterns).argmin(-1)  # (M,)
    return (nearest == targets).float().mean().item()
