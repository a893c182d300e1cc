r"""Linformer: attention over a shorter, projected sequence of keys (Wang et al., 2020).

Wang et al. observed that the $N \times N$ attention matrices of trained Transformers have
rapidly decaying singular values, so a rank-$r$ matrix does almost as well. Linformer projects
the keys and values **along the sequence** with two $(r, N)$ matrices $E$ and $F$:

$$
\tilde K = E K \in \mathbb{R}^{r \times d}, \qquad \tilde V = F V \in \mathbb{R}^{r \times d_v},
\qquad O = \operatorname{softmax}\!\Big(\frac{Q \tilde K^\top}{\sqrt d}\Big) \tilde V ,
$$

i.e. ``attend(q, E @ k, F @ v)``: ordinary attention over $r$ "virtual" keys, $O(N r)$ time and
memory. In the paper $E, F$ are learned. Its theory uses random ones: Theorem 1 applies the
Johnson-Lindenstrauss lemma to the attention matrix $P$ itself, $P \approx P R^\top R$ with
$R$ a Gaussian $(r, N)$ matrix of rank $r = \Theta(\log N)$ for a fixed error; Theorem 2 states
that suitable $E, F$ exist for the architecture, and its proof takes $E = \delta R$ and
$F = e^{-\delta} R$, $\delta$ a small constant.
This module builds the two untrained choices: a Gaussian projection (``E = F = R``; pass
``E`` and ``F`` for Theorem 2's scaled pair) and mean pooling over $r$ equal segments (one of
the paper's "general projections"). Pooling is exact when $r = N$; a random projection is
exact for no $r$ and converges slowly as $r$ grows (the chapter measures both).

Two limits follow from the shapes: $E$ and $F$ are $(r, N)$, so a layer is built for one
sequence length $N$ (shorter inputs must be padded), and every virtual key mixes keys from
the whole sequence, so there is no causal form (a query would see the future through $EK$).
"""

from __future__ import annotations

import math

import torch

from attnkit._checks import check_int, check_same_dtype_device, check_tensor
from attnkit.core import attend
from attnkit.efficient._common import check_qkv, make_generator

PROJECTIONS = ("gaussian", "pool")


def linformer_projection(n: int, r: int, *, kind: str = "gaussian", seed: int | None = None,
                         generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""A ``(r, n)`` projection along the sequence.

    ``"gaussian"``: entries $\mathcal N(0, 1/r)$, so $\mathbb E[E^\top E] = I$ (JL).
    ``"pool"``: row $t$ averages the $t$-th of $r$ (nearly) equal segments of the sequence.
    """
    check_int("n", n, minimum=1)
    check_int("r", r, minimum=1)
    if kind not in PROJECTIONS:
        raise ValueError(f"kind must be one of {PROJECTIONS}; got {kind!r}")
    if kind == "gaussian":
        g = make_generator(seed, generator)
        return torch.randn(r, n, generator=g, dtype=dtype) / math.sqrt(r)
    if r > n:
        raise ValueError(f"pooling needs r <= n (at least one position per segment); got r={r}, n={n}")
    seg = torch.arange(n) * r // n  # segment of each position, sizes differ by at most one
    P = torch.zeros(r, n, dtype=dtype)
    P[seg, torch.arange(n)] = 1.0
    return P / P.sum(-1, keepdim=True)  # (r, n): mean over each segment


def linformer_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, r: int = 256,
                        kind: str = "gaussian", E: torch.Tensor | None = None, F: torch.Tensor | None = None,
                        seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Linformer attention ``attend(q, E @ k, F @ v)``.

    Equivalent to::

        E = F = linformer_projection(N, r, kind=kind)  # (r, N), shared unless both given
        out, _ = attend(q, E @ k, F @ v)                # (..., L, dv), scores (..., L, r)

    Args:
        q: ``(..., L, d)``; k: ``(..., N, d)``; v: ``(..., N, dv)``.
        r: projected length (ignored when ``E`` is given).
        kind: ``"gaussian"`` or ``"pool"`` for the projection built when ``E`` is ``None``.
        E, F: explicit ``(r, N)`` projections of keys and values (``F`` defaults to ``E``, the
            paper's "shared" variant).
        seed, generator: randomness of a Gaussian projection (same seed, same output).

    Returns:
        ``(..., L, dv)``.
    """
    check_qkv(q, k, v)
    N = k.shape[-2]
    if E is None:
        if F is not None:
            raise ValueError("F was given without E; pass E (and optionally F)")
        E = linformer_projection(N, r, kind=kind, seed=seed, generator=generator, dtype=q.dtype).to(q.device)
    F = E if F is None else F
    for name, P in (("E", E), ("F", F)):
        check_tensor(name, P)
        check_same_dtype_device(q=q, **{name: P.to(q.dtype)})
        if P.dim() != 2 or P.shape[-1] != N:
            got = tuple(P.shape) if isinstance(P, torch.Tensor) else type(P).__name__
            raise ValueError(f"{name} must be a (r, N) = (r, {N}) projection of the keys; got {got}")
    if E.shape != F.shape:
        raise ValueError(f"E and F must have the same shape (r, N); got E: {tuple(E.shape)}, F: {tuple(F.shape)}")
    E, F = E.to(q.dtype), F.to(q.dtype)
    k_proj = E @ k  # K~ = E K: (r, N) @ (..., N, d) -> (..., r, d)
    v_proj = F @ v  # V~ = F V: (..., r, dv)
    out, _ = attend(q, k_proj, v_proj)  # softmax(Q K~^T / sqrt d) V~: (..., L, dv)
    return out


def attention_singular_values(q: torch.Tensor, k: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
    """Singular values (descending) of the softmax weights ``attend(q, k, .)``: ``(..., min(L, N))``.

    Linformer's premise is that they decay fast; a flat spectrum means no low rank will do.
    """
    check_qkv(q, k, k)
    mask = None
    if causal:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    _, w = attend(q, k, k, mask=mask)  # (..., L, N)
    w = w.double()
    bad = ~torch.isfinite(w).flatten(-2).all(-1)  # (...): a NaN in, NaN singular values out
    sv = torch.linalg.svdvals(torch.where(bad[..., None, None], torch.zeros_like(w), w))
    return torch.where(bad[..., None], torch.full_like(sv, float("nan")), sv)
