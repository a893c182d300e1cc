"""Checkers for the exercises of the chapter "Efficient transformers (2019-2020)"."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from attnkit.efficient.performer import favor_features, orthogonal_gaussian
from attnkit.exercises._harness import Case, CheckResult, run_cases


def _positive(got: object) -> str | None:
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor, got {type(got).__name__}"
    if not bool((got > 0).all()):
        return "some features are <= 0: FAVOR+ features are exponentials, hence positive"
    return None


def _unbiased(x: torch.Tensor, y: torch.Tensor, omega: torch.Tensor) -> Callable[[object], str | None]:
    exact = torch.exp(x @ y.T)  # (Lx, Ly): the softmax kernel e^{x.y}

    def check(got: object) -> str | None:
        if not isinstance(got, torch.Tensor) or got.shape != (x.shape[0] + y.shape[0], omega.shape[0]):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            return f"expected features of shape {(x.shape[0] + y.shape[0], omega.shape[0])}; got {shape}"
        fx, fy = got[: x.shape[0]].double(), got[x.shape[0]:].double()
        est = fx @ fy.T
        rel = ((est - exact).abs() / exact).max().item()
        if rel > 0.05:
            return (f"phi(x) . phi(y) should estimate exp(x . y) (here with 20000 features, within 5%); "
                    f"the worst pair is off by {100 * rel:.0f}%")
        return None

    return check


def favor_cases(seed: int = 0) -> list[Case]:
    """The hidden cases of :func:`check_favor_features`."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 * torch.randn(5, 4, generator=g, dtype=torch.float64)
    om = orthogonal_gaussian(8, 4, seed=seed, dtype=torch.float64)
    xb = 0.5 * torch.randn(2, 3, 6, 4, generator=g, dtype=torch.float64)  # batch dims
    om12 = orthogonal_gaussian(12, 4, seed=seed + 1, dtype=torch.float64)
    xs, ys = 0.4 * torch.randn(3, 4, generator=g, dtype=torch.float64), 0.4 * torch.randn(2, 4, generator=g,
                                                                                            dtype=torch.float64)
    om_big = orthogonal_gaussian(20000, 4, seed=seed + 2, dtype=torch.float64)
    xy = torch.cat([xs, ys])
    return [
        Case("one draw, 5 vectors, 8 features", (x, om), favor_features(x, om),
             hint="phi(x)_t = exp(omega_t . x - |x|^2 / 2) / sqrt(m), with m = omega.shape[0]"),
        Case("features are positive", (x, om), check=_positive,
             hint="FAVOR+ uses exp features, not cos/sin (those can be negative)"),
        Case("batch dimensions (2, 3, 6, 4), 12 features", (xb, om12), favor_features(xb, om12),
             hint="use x @ omega.T and sum |x|^2 over the last axis only (keepdim=True)"),
        Case("unbiased: phi(x) . phi(y) ~ exp(x . y) with 20000 features", (xy, om_big),
             check=_unbiased(xs, ys, om_big),
             hint="check the -|x|^2/2 term and the 1/sqrt(m) factor: E[phi(x) . phi(y)] must be exp(x . y)"),
    ]


def check_favor_features(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                         quiet: bool = False) -> CheckResult:
    r"""Check a reader's Performer feature map ``fn(x, omega) -> phi``.

    ``x: (..., L, d)``, ``omega: (m, d)`` -> ``(..., L, m)`` with
    $\phi(x)_t = e^{\omega_t^\top x - \lVert x\rVert^2/2} / \sqrt m$ (no stabiliser), so that
    $\phi(x)^\top\phi(y)$ is an unbiased estimate of $e^{x^\top y}$.
    """
    return run_cases(fn, favor_cases(), checker="check_favor_features", quiet=quiet)


def crossover_length(budget_bytes: float, *, itemsize: int = 4, matrices: int = 3) -> int:
    """Largest ``N`` whose ``matrices`` float ``(N, N)`` score-sized tensors fit in ``budget_bytes``."""
    return math.isqrt(int(budget_bytes // (itemsize * matrices)))
