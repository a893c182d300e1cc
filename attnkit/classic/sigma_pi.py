r"""Sigma-pi units and higher-order networks (1980s): multiplication as the first attention score.

A *sigma-pi* unit (Rumelhart, Hinton and McClelland, 1986) sums weighted **products** of its
inputs instead of the inputs themselves:

$$
\operatorname{net} = b + \sum_i w_i \prod_{j \in S_i} x_j ,
$$

where each $S_i$ is a set of input indices (a *conjunct*). Giles and Maxwell (1987) called
networks of such units *higher-order* networks. With conjuncts that pair one coordinate of a
query $q$ with one coordinate of a key $k$ the unit computes the bilinear score

$$
\sum_{a, b} W_{ab}\, q_a k_b = q^\top W k ,
$$

which is :func:`attnkit.scores.general_score` (Luong's "general" attention score). A layer of
third-order units $o_c = \sum_{a,b,j} W_{ab}\, q_a k_{jb} v_{jc}$ is unnormalised attention:
``attend(q, k, v, score="general", normalize="none", score_params={"W": W})``.

One second-order unit with $q = (1, x_1)$ and $k = (1, x_2)$ computes
$W_{00} + W_{01} x_2 + W_{10} x_1 + W_{11} x_1 x_2$ and so solves XOR, which no single
linear-threshold unit can: in Minsky and Papert's (1969) terms XOR (2-bit parity) needs order
2, and n-bit parity needs order n (:func:`higher_order_terms`, :func:`fit_sigma_pi`).

Shapes: ``...`` batch, ``n`` inputs of a unit, ``Lq``/``Lk`` queries/keys, ``d``/``dk`` their
widths, ``dv`` value width, ``F`` Boolean functions trained side by side.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from attnkit._checks import (
    check_int,
    check_positive,
    check_same_device,
    check_same_dtype_device,
    check_tensor,
    check_values,
    shape_str,
)
from attnkit.core import attend, attention_scores


def sigma_pi(x: torch.Tensor, terms: Sequence[Sequence[int]], weights: torch.Tensor,
             bias: float | torch.Tensor = 0.0) -> torch.Tensor:
    r"""The net input of a sigma-pi unit, $b + \sum_i w_i \prod_{j \in S_i} x_j$, by explicit products.

    Args:
        x: inputs ``(..., n)``.
        terms: the conjuncts $S_i$, each a sequence of indices into the last axis of ``x``
            (an empty conjunct is the constant 1).
        weights: ``(len(terms),)`` one weight per conjunct.
        bias: a number or a tensor broadcastable to ``x.shape[:-1]``.

    Returns:
        ``(...)``, the net input for every batch entry.
    """
    check_tensor("x", x, min_rank=1)
    check_tensor("weights", weights, min_rank=1)
    if weights.shape != (len(terms),):
        raise ValueError(f"weights must have one entry per term ({len(terms)}); got shape {shape_str(weights)}")
    check_same_device(x=x, weights=weights)
    n = x.shape[-1]
    net = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device) + bias
    for w, term in zip(weights, terms, strict=True):
        if any(not 0 <= j < n for j in term):
            raise ValueError(f"term {tuple(term)} indexes outside the {n} inputs of x")
        prod = torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
        for j in term:
            prod = prod * x[..., j]  # prod_{j in S_i} x_j
        net = net + w * prod  # + w_i prod_i
    return net


def bilinear_terms(d: int, dk: int) -> list[tuple[int, int]]:
    """The ``d * dk`` conjuncts ``(a, d + b)`` that pair query coordinate ``a`` with key coordinate ``b``.

    On the input ``x = [q, k]`` with weights ``W.flatten()`` (row-major, ``W: (d, dk)``),
    :func:`sigma_pi` computes ``q^T W k``.
    """
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in (d, dk)):
        raise ValueError(f"d and dk must be positive ints; got d={d!r}, dk={dk!r}")
    return [(a, d + b) for a in range(d) for b in range(dk)]


def sigma_pi_score(q: torch.Tensor, k: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    r"""Scores $s_{ij} = q_i^\top W k_j$: one second-order sigma-pi unit per (query, key) pair.

    Equivalent to::

        x = torch.cat([q_i, k_j])                               # the unit's inputs
        s_ij = sigma_pi(x, bilinear_terms(d, dk), W.flatten())  # sum_ab W_ab q_ia k_jb

    ``q: (..., Lq, d)``, ``k: (..., Lk, dk)``, ``W: (d, dk)`` -> ``(..., Lq, Lk)``; computed as
    :func:`attnkit.scores.general_score`.
    """
    return attention_scores(q, k, score="general", score_params={"W": W})


def gated_sum(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    r"""Third-order sigma-pi units: $o_{ic} = \sum_{a,b,j} W_{ab}\, q_{ia} k_{jb} v_{jc}$.

    The bilinear score gates each value multiplicatively; no normalisation, so it is
    ``attend(q, k, v, score="general", normalize="none", score_params={"W": W})``.
    ``q: (..., Lq, d)``, ``k: (..., Lk, dk)``, ``v: (..., Lk, dv)`` -> ``(..., Lq, dv)``.
    """
    out, _ = attend(q, k, v, score="general", normalize="none", score_params={"W": W})
    return out


# ---------------------------------------------------------------------------------------------
# XOR: one sigma-pi unit against one linear-threshold unit
# ---------------------------------------------------------------------------------------------

BOOLEAN_INPUTS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
"""The four inputs ``(x1, x2)`` of a two-input Boolean function, ``(4, 2)``."""


def boolean_functions() -> tuple[list[str], torch.Tensor]:
    """All 16 Boolean functions of two inputs: ``(names, truth tables (16, 4))``.

    Function ``f`` outputs bit ``i`` of ``f`` on input row ``i`` of :data:`BOOLEAN_INPUTS`;
    each is named (``AND``, ``OR``, ``XOR``, ``x1 => x2`` for implication, ...).
    """
    tables = torch.tensor([[(f >> i) & 1 for i in range(4)] for f in range(16)], dtype=torch.float32)
    named = {"0000": "FALSE", "1111": "TRUE", "0001": "AND", "0111": "OR", "0110": "XOR", "1001": "XNOR",
             "1110": "NAND", "1000": "NOR", "0011": "x1", "0101": "x2", "1100": "NOT x1", "1010": "NOT x2",
             "0100": "x2 AND NOT x1", "0010": "x1 AND NOT x2", "1101": "x1 => x2", "1011": "x2 => x1"}
    names = []
    for row in tables:
        bits = "".join(str(int(b)) for b in row)
        names.append(named.get(bits, bits))
    return names, tables


def sigma_pi_unit(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    r"""Logit of a second-order sigma-pi unit on two inputs: $q^\top W k$ with $q = (1, x_1)$, $k = (1, x_2)$.

    $= W_{00} + W_{01} x_2 + W_{10} x_1 + W_{11}\, x_1 x_2$: a bias, two linear terms and one product.
    ``x: (N, 2)``, ``W: (..., 2, 2)`` -> ``(..., N)``.
    """
    check_tensor("x", x, min_rank=2)
    if x.dim() != 2 or x.shape[-1] != 2:
        raise ValueError(f"x must be (N, 2); got shape {shape_str(x)}")
    check_tensor("W", W, min_rank=2)
    if W.shape[-2:] != (2, 2):
        raise ValueError(f"W must be (..., 2, 2); got shape {shape_str(W)}")
    check_same_dtype_device(x=x, W=W)
    one = torch.ones_like(x[:, :1])
    q = torch.cat([one, x[:, :1]], dim=-1)[:, None, :]  # (N, 1, 2): q = (1, x1)
    k = torch.cat([one, x[:, 1:]], dim=-1)[:, None, :]  # (N, 1, 2): k = (1, x2)
    s = sigma_pi_score(q, k, W.unsqueeze(-3))  # W: (..., 1, 2, 2) broadcasts over N -> (..., N, 1, 1)
    return s[..., 0, 0]  # (..., N)


def linear_threshold_unit(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Logit of a linear-threshold unit, $w^\top x + b$.

    ``x: (N, n)``, ``w: (..., n)``, ``b: (...)`` -> ``(..., N)``; the unit outputs 1 where the logit is positive.
    """
    check_tensor("x", x, min_rank=2)
    check_tensor("w", w, min_rank=1)
    check_tensor("b", b)
    if x.dim() != 2 or w.shape[-1] != x.shape[-1] or b.shape != w.shape[:-1]:
        raise ValueError(f"need x: (N, n), w: (..., n), b: (...); got x: {shape_str(x)}, w: {shape_str(w)}, "
                         f"b: {shape_str(b)}")
    check_same_dtype_device(x=x, w=w, b=b)
    return w @ x.T + b[..., None]  # (..., n) @ (n, N) -> (..., N)


@dataclass
class UnitFit:
    """The result of :func:`train_units`: final accuracy per function, loss per step, parameters."""

    kind: str
    accuracy: torch.Tensor  # (F,)
    losses: torch.Tensor  # (steps,) mean cross-entropy over functions and inputs
    params: dict[str, torch.Tensor]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The units' outputs in ``{0, 1}`` on inputs ``x: (N, 2)``: ``(F, N)``."""
        return (unit_logits(self.kind, x, self.params) > 0).float()


def unit_logits(kind: str, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits ``(F, N)`` of ``F`` units of ``kind`` (``"sigma_pi"`` or ``"linear"``) on ``x: (N, 2)``."""
    if kind == "sigma_pi":
        return sigma_pi_unit(x, params["W"])
    if kind == "linear":
        return linear_threshold_unit(x, params["w"], params["b"])
    raise ValueError(f"kind must be 'sigma_pi' or 'linear'; got {kind!r}")


def train_units(targets: torch.Tensor, kind: str, *, steps: int = 400, lr: float = 0.1, seed: int = 0,
                progress: bool = False) -> UnitFit:
    """Train one unit per Boolean function (rows of ``targets: (F, 4)``) on :data:`BOOLEAN_INPUTS`.

    Full-batch Adam on the logistic (cross-entropy) loss; the unit's output is 1 when its logit
    is positive. On XOR and XNOR the targets are uncorrelated with ``x1`` and ``x2``, so the
    (convex) logistic loss of a linear unit is smallest at all-zero weights: training drifts
    there, the logits stay near 0 and the accuracy depends on the seed.
    """
    check_tensor("targets", targets, min_rank=2)
    if targets.dim() != 2 or targets.shape[-1] != 4 or targets.shape[0] < 1:
        raise ValueError(f"targets must be (F, 4), F >= 1, one truth table per row; got shape {shape_str(targets)}")
    check_values("targets", targets)
    check_int("steps", steps, minimum=1)
    check_positive("lr", lr)
    g = torch.Generator().manual_seed(seed)
    F = targets.shape[0]
    x = BOOLEAN_INPUTS.to(targets.dtype)
    if kind == "sigma_pi":
        params = {"W": (0.1 * torch.randn(F, 2, 2, generator=g, dtype=targets.dtype)).requires_grad_()}
    elif kind == "linear":
        params = {"w": (0.1 * torch.randn(F, 2, generator=g, dtype=targets.dtype)).requires_grad_(),
                  "b": torch.zeros(F, dtype=targets.dtype, requires_grad=True)}
    else:
        raise ValueError(f"kind must be 'sigma_pi' or 'linear'; got {kind!r}")
    opt = torch.optim.Adam(params.values(), lr=lr)
    losses = []
    for _ in tqdm(range(steps), desc=f"training {F} {kind} units", disable=not progress, leave=False):
        logits = unit_logits(kind, x, params)  # (F, 4)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    params = {name: p.detach() for name, p in params.items()}
    with torch.no_grad():
        pred = (unit_logits(kind, x, params) > 0).to(targets.dtype)
    return UnitFit(kind, (pred == targets).to(targets.dtype).mean(-1), torch.tensor(losses), params)


def best_linear_accuracy(targets: torch.Tensor, n_grid: int = 41, limit: float = 2.0) -> torch.Tensor:
    """The best accuracy a linear-threshold unit reaches on each truth table, by exhaustive search.

    Tries every ``(w1, w2, b)`` on a ``n_grid ** 3`` grid over ``[-limit, limit]`` (a grid that
    realises every linearly separable labelling of the four inputs). ``targets: (F, 4)`` -> ``(F,)``.
    """
    check_tensor("targets", targets, min_rank=2)
    if targets.dim() != 2 or targets.shape[-1] != 4:
        raise ValueError(f"targets must be (F, 4), one truth table per row; got shape {shape_str(targets)}")
    check_int("n_grid", n_grid, minimum=1)
    check_positive("limit", limit)
    axis = torch.linspace(-limit, limit, n_grid, dtype=targets.dtype, device=targets.device)
    w1, w2, b = torch.meshgrid(axis, axis, axis, indexing="ij")
    w = torch.stack([w1.flatten(), w2.flatten()], dim=-1)  # (G, 2)
    pred = (linear_threshold_unit(BOOLEAN_INPUTS.to(targets), w, b.flatten()) > 0).to(targets.dtype)  # (G, 4)
    acc = (pred[None] == targets[:, None]).to(targets.dtype).mean(-1)  # (F, G)
    return acc.amax(-1)


# ---------------------------------------------------------------------------------------------
# Order: n-bit parity needs a unit of order n (Minsky and Papert, 1969)
# ---------------------------------------------------------------------------------------------


def higher_order_terms(n: int, order: int) -> list[tuple[int, ...]]:
    """Every conjunct of at most ``order`` distinct inputs out of ``n``, by size: ``()`` (the bias) first.

    A sigma-pi unit with these terms is a full unit of order ``order`` on ``n`` inputs (on
    Boolean inputs ``x_j^2 = x_j``, so repeating an input in a conjunct adds nothing).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= n:
        raise ValueError(f"order must be an int in [0, n={n}]; got {order!r}")
    return [t for r in range(order + 1) for t in itertools.combinations(range(n), r)]


def parity_data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``2^n`` bit vectors ``(2^n, n)`` and their parity ``(2^n,)`` (1 for an odd number of ones)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    x = torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)))  # (2^n, n)
    return x, x.sum(-1) % 2


def fit_sigma_pi(x: torch.Tensor, targets: torch.Tensor, terms: Sequence[Sequence[int]], *, steps: int = 500,
                 lr: float = 0.1, seed: int = 0, restarts: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Train sigma-pi units with the given conjuncts on ``(x: (N, n), targets: (N,))``, ``restarts`` at once.

    Each restart is an independent unit (its own initial weights from ``N(0, 0.1^2)``; the
    generator is seeded with ``seed``), trained side by side by full-batch Adam on the logistic
    loss (Adam's per-weight steps keep the restarts independent). A unit outputs 1 where its
    net input is positive. Returns ``(weights (restarts, len(terms)), accuracy (restarts,))``.
    """
    check_tensor("x", x, min_rank=2)
    check_tensor("targets", targets, min_rank=1)
    if targets.shape != x.shape[:1]:
        raise ValueError(f"targets must have one entry per row of x ({x.shape[0]}); got shape {shape_str(targets)}")
    for name, val in (("steps", steps), ("restarts", restarts)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive int; got {val!r}")
    check_positive("lr", lr)
    check_same_device(x=x, targets=targets)
    g = torch.Generator().manual_seed(seed)
    w = (0.1 * torch.randn(restarts, len(terms), generator=g, dtype=x.dtype)).requires_grad_()
    # the conjuncts' products, once: column i is prod_{j in S_i} x_j, so sigma_pi(x, terms, w) = feats @ w
    feats = torch.stack([sigma_pi(x, [t], torch.ones(1, dtype=x.dtype)) for t in terms], dim=-1)  # (N, m)
    y = targets.expand(restarts, -1)  # (R, N)
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        # sum over restarts of each one's mean loss: every restart gets its own gradient
        loss = torch.nn.functional.binary_cross_entropy_with_logits(w @ feats.T, y, reduction="none").mean(-1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = w.detach()
    acc = ((w @ feats.T > 0).to(targets.dtype) == y).to(torch.float64).mean(-1)  # (R,)
    return w, acc
