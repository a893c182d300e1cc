"""Input checks and small helpers shared by the efficient-attention modules.

Shape legend: ``...`` batch dims (equal for ``q``, ``k``, ``v``), ``L`` queries, ``N`` keys,
``d`` query/key width, ``dv`` value width, ``m`` random features, ``r`` projected length.
"""

from __future__ import annotations

import torch

from attnkit._checks import arg_name, check_dim_match, check_same_dtype_device, check_tensor


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, same_length: bool = False) -> None:
    """``q: (..., L, d)``, ``k: (..., N, d)``, ``v: (..., N, dv)`` with equal batch dims.

    Errors name the caller's arguments when it wraps the call in ``_checks.argument_names``.
    """
    qn, kn, vn = arg_name("q"), arg_name("k"), arg_name("v")
    check_tensor(qn, q, min_rank=2, shape="(..., L, d)")
    check_tensor(kn, k, min_rank=2, shape="(..., N, d)")
    check_tensor(vn, v, min_rank=2, shape="(..., N, dv)")
    check_same_dtype_device(**{qn: q, kn: k, vn: v})
    check_dim_match(qn, q, -1, kn, k, -1, "queries and keys need the same width d")
    check_dim_match(kn, k, -2, vn, v, -2, f"{kn} and {vn} need one value per key (N)")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(f"{qn}, {kn} and {vn} must have the same batch dimensions; got {qn}: {tuple(q.shape)}, "
                         f"{kn}: {tuple(k.shape)}, {vn}: {tuple(v.shape)}")
    if same_length:
        check_dim_match(qn, q, -2, kn, k, -2, "this attention needs as many queries as keys (self-attention)")


def make_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    """A generator from ``seed`` (or the one given); ``None`` uses the global RNG."""
    if seed is not None and generator is not None:
        raise ValueError("pass either seed or generator, not both")
    if seed is not None:
        return torch.Generator().manual_seed(int(seed))
    return generator


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    r"""$\lVert \hat O - O \rVert_F / \lVert O \rVert_F$, computed in float64."""
    a, e = approx.detach().double(), exact.detach().double()
    return float((a - e).norm() / e.norm().clamp_min(1e-300))
