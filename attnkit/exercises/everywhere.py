"""Checkers for the Part III chapters "Attention everywhere" and "Associative memories and giant models"."""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit.exercises._harness import Case, CheckResult, run_cases
from attnkit.transformers.gat import gat_attention
from attnkit.transformers.hopfield import hopfield_update


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _alpha(Wh: torch.Tensor, adj: torch.Tensor, a_src: torch.Tensor, a_dst: torch.Tensor) -> torch.Tensor:
    # the reference: one head through attnkit.transformers.gat.gat_attention with W = identity
    eye = torch.eye(Wh.shape[-1], dtype=Wh.dtype)[None]  # (1, Fh, Fh)
    return gat_attention(Wh, adj, eye, a_src[None], a_dst[None])[1][0]  # (N, N)


def check_gat_coefficients(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(Wh, adj, a_src, a_dst) -> alpha`` (one GAT head).

    ``Wh: (N, Fh)`` projected node features, ``adj``: bool ``(N, N)`` with self-loops (``True``
    = edge), ``a_src, a_dst: (Fh,)`` with PyG's names (``a_dst`` for the attending node ``i``,
    ``a_src`` for its neighbour ``j``). ``alpha: (N, N)`` must be the softmax over each node's
    neighbours of ``LeakyReLU(a_dst . Wh_i + a_src . Wh_j)`` (slope 0.2), zero off the graph.
    """
    g = _gen(3)
    N, Fh = 6, 4
    Wh = torch.randn(N, Fh, generator=g, dtype=torch.float64)
    a_src, a_dst = (torch.randn(Fh, generator=g, dtype=torch.float64) for _ in range(2))
    full = torch.ones(N, N, dtype=torch.bool)
    idx = torch.arange(N)
    path = (idx[:, None] - idx[None, :]).abs() <= 1  # a chain 0 - 1 - ... - (N-1), with self-loops
    star = torch.eye(N, dtype=torch.bool)
    star[0, :] = star[:, 0] = True
    a_neg = -a_src.abs()
    cases = [
        Case("complete graph", (Wh, full, a_src, a_dst), _alpha(Wh, full, a_src, a_dst),
             hint="score each pair with LeakyReLU(a_dst . Wh_i + a_src . Wh_j), then softmax over j "
                  "(row i = the attending node; a_dst goes with i, a_src with the neighbour j, as in PyG)"),
        Case("a path graph", (Wh, path, a_src, a_dst), _alpha(Wh, path, a_src, a_dst),
             hint="only neighbours take part: non-edges must get weight exactly 0 (mask before the softmax)"),
        Case("a star graph", (Wh, star, a_src, a_dst), _alpha(Wh, star, a_src, a_dst),
             hint="leaves see only the hub and themselves"),
        Case("negative scores (LeakyReLU slope 0.2)", (Wh, path, a_neg, -a_dst.abs()),
             _alpha(Wh, path, a_neg, -a_dst.abs()),
             hint="LeakyReLU keeps 0.2 * x for x < 0; a plain ReLU would flatten these scores to 0"),
    ]
    return run_cases(fn, cases, checker="check_gat_coefficients", quiet=quiet)


def check_hopfield_update(fn: Callable[..., torch.Tensor], *, quiet: bool = False) -> CheckResult:
    """Check a reader's ``fn(X, xi, beta) -> xi_new``, one modern Hopfield update.

    ``X: (d, N)`` stored patterns as columns (Ramsauer et al.'s notation), ``xi: (d,)`` the
    state, ``beta > 0`` the inverse temperature; ``xi_new = X softmax(beta X^T xi)``.
    """
    g = _gen(4)
    d, N = 8, 5
    X = torch.randn(d, N, generator=g, dtype=torch.float64)
    xi = torch.randn(d, generator=g, dtype=torch.float64)
    big = X * 100.0  # scores in the thousands: exp overflows even in float64

    def ref(X: torch.Tensor, xi: torch.Tensor, beta: float) -> torch.Tensor:
        return hopfield_update(X.T, xi[None], beta)[0][0]  # patterns as rows, one query

    cases = [
        Case("beta = 1", (X, xi, 1.0), ref(X, xi, 1.0),
             hint="xi_new = X @ softmax(beta * X.T @ xi): a weighted average of the stored columns"),
        Case("beta = 0.1 (a metastable average)", (X, xi, 0.1), ref(X, xi, 0.1),
             hint="multiply the scores by beta before the softmax"),
        Case("beta = 8 (retrieval of one pattern)", (X, xi, 8.0), ref(X, xi, 8.0),
             hint="the softmax runs over the N stored patterns (the columns of X)"),
        Case("large scores (overflow)", (big, xi, 5.0), ref(big, xi, 5.0),
             hint="use a stable softmax (torch.softmax, or subtract the maximum)"),
    ]
    return run_cases(fn, cases, checker="check_hopfield_update", quiet=quiet)
