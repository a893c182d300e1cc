"""Inputs for the efficient-attention experiments: i.i.d. noise and a structured sequence.

Approximations live on structure: Reformer needs a few dominant neighbours, Linformer a
low-rank attention matrix, local attention nearby partners. :func:`smooth_sequence` gives
queries and keys with that structure (a slowly drifting random walk on the sphere, so each
token resembles its neighbours in time); :func:`random_qkv` gives none.
"""

from __future__ import annotations

import math

import torch

from attnkit._checks import check_int, check_positive


def random_qkv(n: int, d: int = 64, *, seed: int = 0, dtype: torch.dtype = torch.float32,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """i.i.d. standard normal ``q, k, v`` of shape ``(n, d)`` each."""
    check_int("n", n, minimum=1)
    check_int("d", d, minimum=1)
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, d, generator=g, dtype=dtype) for _ in range(3))
    return q, k, v


def smooth_sequence(n: int, d: int = 64, *, correlation: float = 0.98, sharpness: float = 3.0, seed: int = 0,
                    dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Structured ``q, k, v`` ``(n, d)``: an AR(1) walk $z_t = \rho z_{t-1} + \sqrt{1-\rho^2}\,\epsilon_t$.

    Queries and keys are the walk's unit directions times ``sharpness * d**0.25``, so the score
    of a token with itself is ``sharpness**2`` and falls off with the time between two tokens
    (``correlation`` sets how slowly); keys carry a little independent noise so ``q != k``.
    Values are ``z`` itself.
    """
    check_int("n", n, minimum=1)
    check_int("d", d, minimum=1)
    check_positive("sharpness", sharpness)
    if not 0 <= correlation < 1:
        raise ValueError(f"correlation must be in [0, 1); got {correlation}")
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, d, generator=g, dtype=torch.float64)
    z = torch.empty_like(eps)
    z[0] = eps[0]
    a, b = correlation, math.sqrt(1 - correlation ** 2)
    for t in range(1, n):  # z_t = rho z_{t-1} + sqrt(1 - rho^2) eps_t
        z[t] = a * z[t - 1] + b * eps[t]
    u = z / z.norm(dim=-1, keepdim=True)
    scale = sharpness * d ** 0.25
    q = u * scale
    k_dir = u + 0.05 * torch.randn(n, d, generator=g, dtype=torch.float64)
    k = k_dir / k_dir.norm(dim=-1, keepdim=True) * scale
    return q.to(dtype), k.to(dtype), z.to(dtype)
