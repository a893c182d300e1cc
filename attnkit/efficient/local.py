r"""Local and block-sparse attention: the baseline every efficient transformer must beat.

The simplest way to stop paying for $N^2$ pairs is to decide **in advance** which pairs take
part. A *sliding window* lets query $i$ see keys with $|i - j| \le w$ (Longformer adds a few
*global* tokens that see and are seen by everything; Beltagy et al., 2020). The *fixed*
pattern of the Sparse Transformer (Child et al., 2019) lets a query see its own block of length
$\ell$ plus a few "summary" positions at the end of every block. Both are just a bool mask for
``attend``:

$$
o_i = \sum_{j \in P_i} \frac{e^{s_{ij}}}{\sum_{j' \in P_i} e^{s_{ij'}}} v_j, \qquad P_i = \{j : M_{ij}\}.
$$

The mask helpers below build $M$ (quadratic memory: for pictures and references).
:func:`local_attention` computes the sliding window in linear memory by cutting the sequence
into blocks of length $w$ and calling ``attend`` on each query block against its own and its
neighbouring key blocks, with the band mask inside.
"""

from __future__ import annotations

import torch

from attnkit._checks import check_int
from attnkit.core import attend
from attnkit.efficient._common import check_qkv


def sliding_window_mask(L: int, window: int, *, causal: bool = False,
                        global_tokens: tuple[int, ...] = (), device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``(L, L)``: ``True`` where ``|i - j| <= window`` (and ``j <= i`` if ``causal``).

    ``global_tokens`` (Longformer) are positions whose row and column are all ``True`` (before
    the causal cut).
    """
    check_int("L", L, minimum=1)
    check_int("window", window, minimum=0)
    i = torch.arange(L, device=device)
    mask = (i[:, None] - i[None, :]).abs() <= window  # (L, L) band
    for g in global_tokens:
        if isinstance(g, bool) or not isinstance(g, int) or not -L <= g < L:
            raise ValueError(f"global_tokens must be positions in [0, {L}); got {g!r}")
        mask[g, :] = True
        mask[:, g] = True
    if causal:
        mask &= i[None, :] <= i[:, None]
    return mask


def fixed_sparse_mask(L: int, block: int, *, n_summary: int = 1, causal: bool = False,
                      device: torch.device | str | None = None) -> torch.Tensor:
    r"""Bool ``(L, L)``: the "fixed" pattern of the Sparse Transformer (Child et al., 2019).

    Query $i$ sees its own block, $\lfloor j/\ell \rfloor = \lfloor i/\ell \rfloor$, and the last
    ``n_summary`` positions of every block, $j \bmod \ell \ge \ell - c$; with ``causal`` only
    $j \le i$.
    """
    check_int("L", L, minimum=1)
    check_int("block", block, minimum=1)
    check_int("n_summary", n_summary, minimum=0)
    if n_summary > block:
        raise ValueError(f"n_summary must be <= block ({block}); got {n_summary}")
    i = torch.arange(L, device=device)
    same_block = (i[:, None] // block) == (i[None, :] // block)  # (L, L)
    summary = (i % block >= block - n_summary)[None, :].expand(L, L)  # (L, L) summary columns
    mask = same_block | summary
    if causal:
        mask = mask & (i[None, :] <= i[:, None])
    return mask


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, window: int = 128,
                    causal: bool = False) -> torch.Tensor:
    r"""Sliding-window attention in ``O(L w)`` memory: query $i$ attends to keys $|i - j| \le w$.

    Equivalent to::

        out, _ = attend(q, k, v, mask=sliding_window_mask(L, window, causal=causal))

    computed block by block: the sequence is cut into blocks of ``window`` positions (the last
    one padded), and each query block calls ``attend`` on the previous, its own and (unless
    ``causal``) the next key block, ``(..., n, w, 3w)`` scores in all.

    Args:
        q: ``(..., L, d)``; k: ``(..., L, d)``; v: ``(..., L, dv)`` (self-attention: one length).
        window: half-width ``w >= 1`` of the band; a window above ``L - 1`` is clamped to it
            (the band is then the full matrix, the result the same).
        causal: only keys ``j <= i``.

    Returns:
        ``(..., L, dv)``.
    """
    check_qkv(q, k, v, same_length=True)
    check_int("window", window, minimum=1)
    # a band at least L - 1 wide is full attention: clamping changes nothing and keeps memory O(L^2)
    L = q.shape[-2]
    w = min(window, max(L - 1, 1))
    if L == 0:
        return q.new_zeros(*q.shape[:-1], v.shape[-1])  # no positions: an empty output
    n = -(-L // w)  # number of blocks
    pad = n * w - L

    def blocks(x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.pad(x, (0, 0, w, w + pad))  # (..., (n + 2) w, e): one empty block each side
        return x.unflatten(-2, (n + 2, w))  # (..., n + 2, w, e)

    qb = blocks(q)[..., 1:-1, :, :]  # (..., n, w, d)
    kb, vb = blocks(k), blocks(v)  # (..., n + 2, w, d), (..., n + 2, w, dv)
    offsets = (0, 1) if causal else (0, 1, 2)
    # key block b sees key blocks b-1, b (, b+1): (..., n, 3w, d) in original order
    kw = torch.cat([kb[..., o:o + n, :, :] for o in offsets], dim=-2)
    vw = torch.cat([vb[..., o:o + n, :, :] for o in offsets], dim=-2)  # (..., n, 3w, dv)
    # positions: query (b, r) is b w + r; key (b, c) is (b - 1) w + c
    qpos = torch.arange(n, device=q.device)[:, None] * w + torch.arange(w, device=q.device)  # (n, w)
    kpos = (torch.arange(n, device=q.device)[:, None] - 1) * w + torch.arange(len(offsets) * w, device=q.device)
    band = (qpos[:, :, None] - kpos[:, None, :]).abs() <= w  # (n, w, 3w)
    band &= (kpos[:, None, :] >= 0) & (kpos[:, None, :] < L)  # the padding takes no part
    if causal:
        band &= kpos[:, None, :] <= qpos[:, :, None]
    out, _ = attend(qb, kw, vw, mask=band)  # (..., n, w, dv)
    return out.flatten(-3, -2)[..., :L, :]  # (..., L, dv)
