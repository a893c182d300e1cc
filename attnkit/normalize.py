r"""Normalisers: turn a row of scores into attention weights.

======================  =================================================  ===================
name                    weights $a_{ij}$                                   used by
======================  =================================================  ===================
``softmax``             $e^{s_{ij}} / \sum_{j'} e^{s_{ij'}}$                 most of the book
``none``                $s_{ij}$ (masked entries zero)                     fast weights (unnormalised linear attention)
``sparsemax``           Euclidean projection of $s_i$ on the simplex        Martins & Astudillo 2016
``hard``                one-hot at $\arg\max_j s_{ij}$                      Broadbent's filter, hard attention
======================  =================================================  ===================

Mask semantics follow ``torch.nn.functional.scaled_dot_product_attention``: a **bool** mask
says which entries take part (``True`` = attend); a **float** mask (of any float dtype) is
added to the scores (``-inf`` removes an entry). A row with no entry taking part gets all-zero
weights, never NaN; an empty row (no keys) gives an empty result.

NaN in means NaN out, as in ``torch.softmax``: a NaN among a row's kept scores, or a NaN in a
float mask, makes every weight of that row NaN (for every normaliser but ``none``, which is
elementwise). A masked-out NaN score takes no part and changes nothing.
Float16/bfloat16 scores are normalised in float32 and the weights cast back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from attnkit._checks import arg_name, check_dim, check_mask, check_positive, check_tensor, compute_dtype

Normalizer = Callable[[torch.Tensor, "torch.Tensor | None", int], torch.Tensor]


def split_mask(scores: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fold a float mask into the scores and return ``(scores, keep)``.

    ``keep`` is a bool tensor broadcastable to ``scores`` (``None`` when everything takes part):
    a bool mask is returned as it is; a float mask is added to the scores and its ``-inf``
    entries become ``False``.
    """
    if mask is None:
        return scores, None
    check_mask(mask, scores.shape, name=arg_name("mask"), device=scores.device)
    if mask.dtype == torch.bool:
        return scores, mask
    mask = mask.to(scores.dtype)  # a float mask of another float dtype is accepted, as in SDPA
    keep = mask != float("-inf")  # NaN is kept (and poisons its row), only -inf removes an entry
    return scores + torch.where(keep, mask, torch.zeros((), dtype=mask.dtype, device=mask.device)), keep


def _check_scores(scores: object, dim: object) -> int:
    check_tensor(arg_name("scores"), scores)
    return check_dim("dim", dim, scores.dim())


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    r"""Softmax over ``dim`` that ignores masked entries and never returns NaN for a masked row.

    Equivalent to::

        s = scores.masked_fill(~mask, -inf)   # bool mask; or scores + mask if float
        w = torch.softmax(s, dim)             # ... but NaN on fully masked rows
        w = torch.nan_to_num(w, nan=0.0)      # ... which we define to be 0

    (the last line only for rows with nothing kept: a NaN score that takes part still gives
    a NaN row, as in ``torch.softmax``).

    Args:
        scores: ``(..., Lq, Lk)`` (any shape; ``dim`` picks the normalised axis).
        mask: bool (``True`` = takes part) or float (added), broadcastable to ``scores``.
        dim: the axis to normalise.

    Returns:
        Weights of ``scores``' shape and dtype; each row sums to 1, or is all zeros when every
        entry of the row is masked. Stable for logits up to the dtype's range (e.g. 1e4 in
        float16): the row maximum is subtracted and half precision is computed in float32.
    """
    dim = _check_scores(scores, dim)
    x, keep = split_mask(scores.to(compute_dtype(scores.dtype)), mask)  # float32 for half scores
    if x.shape[dim] == 0:
        return x.to(scores.dtype)  # no keys: an empty row of weights
    if keep is not None:
        x = x.masked_fill(~keep, float("-inf"))
    # m_i = max_j s_ij; a row with nothing kept has m_i = -inf, replaced by 0 so exp gives 0, not NaN
    # (a NaN entry makes m_i NaN, and the whole row NaN, as in torch.softmax)
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(m == float("-inf"), torch.zeros_like(m), m).detach()
    e = torch.exp(x - m)  # e_ij = exp(s_ij - m_i) <= 1: no overflow
    z = e.sum(dim=dim, keepdim=True)  # Z_i = sum_j e_ij (0 for an empty row)
    w = e / torch.where(z == 0, torch.ones_like(z), z)
    return w.to(scores.dtype)


def softmax_with_temperature(scores: torch.Tensor, temperature: float = 1.0,
                             mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """``masked_softmax(scores / temperature, mask, dim)``: low temperature -> hard, high -> uniform.

    ``temperature`` must be a finite positive number (0 would divide by zero, a negative one
    would invert the ranking): use :func:`hardmax` for the ``T -> 0`` limit.
    """
    temperature = check_positive(arg_name("temperature"), temperature)
    _check_scores(scores, dim)
    return masked_softmax(scores.to(compute_dtype(scores.dtype)) / temperature, mask, dim).to(scores.dtype)


def no_normalize(scores: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    r"""The identity, with masked entries set to zero: $a_{ij} = s_{ij}\,[j \text{ kept}]$.

    This is the "normaliser" of fast weights, i.e. of *unnormalised* linear attention; the
    linear attention of Katharopoulos et al. (2020) divides by $\phi(q_i)^\top \sum_j \phi(k_j)$.
    ``scores: (..., Lq, Lk)``. Elementwise: a NaN score stays where it is (and is zeroed if masked).
    """
    _check_scores(scores, dim)
    scores, keep = split_mask(scores, mask)
    if keep is None:
        return scores
    return scores.masked_fill(~keep, 0.0)


def sparsemax(scores: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    r"""Sparsemax (Martins & Astudillo, 2016): the Euclidean projection of a row onto the simplex.

    $a_i = \max(s_i - \tau_i, 0)$ with $\tau_i$ chosen so that $\sum_j a_{ij} = 1$. Unlike
    softmax, many weights are exactly zero. ``scores: (..., Lq, Lk)``; fully masked rows -> 0;
    a row with a kept NaN or ``+inf`` -> NaN (as ``torch.softmax``).
    """
    dim = _check_scores(scores, dim)
    x, keep = split_mask(scores.to(compute_dtype(scores.dtype)), mask)  # float32 for half scores
    if x.shape[dim] == 0:
        return x.to(scores.dtype)
    shape = x.shape
    x = x.movedim(dim, -1)
    if keep is not None:
        keep = torch.broadcast_to(keep, shape).movedim(dim, -1)
        x = x.masked_fill(~keep, float("-inf"))
    # a kept NaN (or +inf, as in torch.softmax) poisons its row; masked entries are -inf by now
    nan_row = (torch.isnan(x) | (x == float("inf"))).any(-1, keepdim=True)
    x = torch.where(nan_row, torch.zeros_like(x), x)  # computed on zeros, NaN at the end
    any_kept = torch.isfinite(x).any(-1, keepdim=True)
    x = torch.where(any_kept, x, torch.zeros_like(x))  # empty rows: compute on zeros, zero later
    # a finite stand-in for -inf so the sort/cumsum below stays NaN-free
    floor = x.masked_fill(~torch.isfinite(x), float("inf")).amin(-1, keepdim=True) - 1.0
    xf = torch.where(torch.isfinite(x), x, floor.detach())
    z, _ = torch.sort(xf, dim=-1, descending=True)
    n = z.shape[-1]
    ks = torch.arange(1, n + 1, device=z.device, dtype=z.dtype)
    csum = z.cumsum(-1)
    finite_sorted, _ = torch.sort(torch.isfinite(x).to(z.dtype), dim=-1, descending=True)
    # support: 1 + k z_(k) > sum_{j<=k} z_(j), over the kept entries only
    support = ((1 + ks * z) > csum) & (finite_sorted > 0)
    k_max = support.sum(-1, keepdim=True).clamp_min(1)
    tau = (csum.gather(-1, k_max - 1) - 1) / k_max.to(z.dtype)
    w = (xf - tau).clamp_min(0)
    w = torch.where(torch.isfinite(x) & any_kept, w, torch.zeros_like(w))
    w = torch.where(nan_row, torch.full_like(w, float("nan")), w)
    return w.movedim(-1, dim).to(scores.dtype)


def hardmax(scores: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    r"""Hard attention: a one-hot row at $\arg\max_j s_{ij}$ among the kept entries.

    For a row with a unique maximum, the limit of ``softmax(scores / T)`` as ``T -> 0``. With
    ties they differ: that limit splits the weight evenly over the tied entries, while hardmax
    puts all of it on the first of them. It has no
    useful gradient: models with hard attention are trained by sampling (REINFORCE).
    ``scores: (..., Lq, Lk)``; fully masked rows -> 0; a row with a kept NaN -> NaN.
    """
    dim = _check_scores(scores, dim)
    x, keep = split_mask(scores.detach().to(compute_dtype(scores.dtype)), mask)
    if x.shape[dim] == 0:
        return x.to(scores.dtype)
    if keep is not None:
        x = x.masked_fill(~keep, float("-inf"))
    idx = x.argmax(dim=dim, keepdim=True)
    out = torch.zeros(x.shape, dtype=scores.dtype, device=scores.device).scatter(dim, idx, 1.0)
    # a row with nothing kept (masked, or every score -inf) gets zeros, like masked_softmax
    out = out * (x != float("-inf")).any(dim=dim, keepdim=True).to(out.dtype)
    return torch.where(torch.isnan(x).any(dim=dim, keepdim=True), torch.full_like(out, float("nan")), out)


NORMALIZERS: dict[str, Normalizer] = {
    "softmax": masked_softmax,
    "none": no_normalize,
    "sparsemax": sparsemax,
    "hard": hardmax,
}
"""Normalisers by name, as accepted by :func:`attnkit.attend`'s ``normalize`` argument."""
