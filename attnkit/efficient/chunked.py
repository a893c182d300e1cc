r"""Chunked exact attention: the online softmax over key blocks (Milakov & Gimelshein, 2018;
Rabe & Staats, 2021).

Exact attention needs the whole row of scores before it can normalise it, so the obvious code
keeps an ``(L, N)`` matrix alive: quadratic memory. The **online softmax** keeps, for every
query, only a running maximum $m_i$, a running normaliser $\ell_i$ and an unnormalised output
$\mathrm{acc}_i$, and folds in one block of keys at a time:

$$
m_i' = \max(m_i, \max_{j \in B} s_{ij}), \quad
\ell_i' = e^{m_i - m_i'} \ell_i + \sum_{j \in B} e^{s_{ij} - m_i'}, \quad
\mathrm{acc}_i' = e^{m_i - m_i'} \mathrm{acc}_i + \sum_{j \in B} e^{s_{ij} - m_i'} v_j ,
$$

and at the end $o_i = \mathrm{acc}_i / \ell_i$. The result equals ``attend(q, k, v)`` up to
rounding; the memory is $O(L d + B_q B_k)$ instead of $O(L N)$. FlashAttention is this loop
written as one GPU kernel.
"""

from __future__ import annotations

import math

import torch

from attnkit._checks import check_int, compute_dtype
from attnkit.core import attention_scores
from attnkit.efficient._common import check_qkv


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, key_chunk: int = 1024,
                      query_chunk: int = 4096, causal: bool = False,
                      scale: float | None = None) -> torch.Tensor:
    r"""Exact softmax attention computed block by block with the online softmax.

    Equivalent to (but never forms the ``(L, N)`` matrix)::

        out, _ = attend(q, k, v, mask=causal_mask(L, N) if causal else None)

    Args:
        q: queries ``(..., L, d)``.
        k: keys ``(..., N, d)``.
        v: values ``(..., N, dv)``.
        key_chunk: keys per block ``B_k``.
        query_chunk: queries per block ``B_q`` (bounds the ``(B_q, B_k)`` score block).
        causal: query ``i`` sees keys ``j <= i`` (top-left aligned, like SDPA).
        scale: score scale; default ``1 / sqrt(d)``.

    Returns:
        ``(..., L, dv)``. Memory beyond the inputs: ``O(L dv + B_q B_k)``. A query that sees no
        key (``N = 0``) gets zeros. Float16/bfloat16 inputs keep the running max, sum and
        output in float32 (as SDPA and FlashAttention do) and are cast back at the end.
    """
    check_qkv(q, k, v)
    check_int("key_chunk", key_chunk, minimum=1)
    check_int("query_chunk", query_chunk, minimum=1)
    L, N, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(max(d, 1)) if scale is None else float(scale)
    # running statistics in float32 for half inputs (a float16 sum overflows past 65504 keys)
    ct = compute_dtype(q.dtype)
    out = q.new_zeros(*q.shape[:-1], v.shape[-1], dtype=ct)  # (..., L, dv)
    for q0 in range(0, L, query_chunk):
        qb = q[..., q0:q0 + query_chunk, :].to(ct)  # (..., Bq, d)
        Bq = qb.shape[-2]
        m_i = qb.new_full((*qb.shape[:-1], 1), float("-inf"))  # running max (..., Bq, 1)
        l_i = qb.new_zeros(*qb.shape[:-1], 1)  # running normaliser (..., Bq, 1)
        acc = qb.new_zeros(*qb.shape[:-1], v.shape[-1])  # unnormalised output (..., Bq, dv)
        k_stop = min(N, q0 + Bq) if causal else N  # causal: later key blocks are all masked
        for k0 in range(0, k_stop, key_chunk):
            kb, vb = k[..., k0:k0 + key_chunk, :].to(ct), v[..., k0:k0 + key_chunk, :].to(ct)  # (..., Bk, d/dv)
            # s_ij = q_i . k_j * scale for the block: (..., Bq, Bk)
            s = attention_scores(qb, kb, score="scaled_dot", score_params={"scale": scale})
            if causal and k0 + kb.shape[-2] - 1 > q0:
                rows = torch.arange(q0, q0 + Bq, device=q.device)[:, None]
                cols = torch.arange(k0, k0 + kb.shape[-2], device=q.device)[None, :]
                s = s.masked_fill(cols > rows, float("-inf"))  # (Bq, Bk) mask: key j > query i
            # m_i' = max(m_i, max_j s_ij)
            m_new = torch.maximum(m_i, s.amax(-1, keepdim=True))
            # rows that saw no key yet keep m = -inf; 0 stands in so exp gives 0, not NaN
            m_safe = torch.where(m_new == float("-inf"), torch.zeros_like(m_new), m_new)
            # p_ij = exp(s_ij - m_i'); alpha = exp(m_i - m_i') rescales the old sums
            p = torch.exp(s - m_safe)
            alpha = torch.exp(m_i - m_safe)
            # l_i' = alpha l_i + sum_j p_ij;  acc_i' = alpha acc_i + sum_j p_ij v_j
            l_i = alpha * l_i + p.sum(-1, keepdim=True)
            acc = alpha * acc + p @ vb
            m_i = m_new
        # o_i = acc_i / l_i (rows that saw no key stay 0)
        out[..., q0:q0 + Bq, :] = acc / torch.where(l_i == 0, torch.ones_like(l_i), l_i)
    return out.to(v.dtype)


def _check_sizes(**sizes: int) -> None:
    for name, n in sizes.items():
        check_int(name, n, minimum=1 if name == "itemsize" else 0)


def exact_attention_bytes(L: int, N: int, d: int, dv: int, *, itemsize: int = 4) -> int:
    """Analytic peak of ``attend(q, k, v)`` beyond its inputs: scores, exponentials and weights
    (three ``(L, N)`` matrices live at once in :func:`attnkit.normalize.masked_softmax`) plus the
    output ``(L, dv)``."""
    _check_sizes(L=L, N=N, d=d, dv=dv, itemsize=itemsize)
    return itemsize * (3 * L * N + L * dv)


def chunked_attention_bytes(L: int, N: int, d: int, dv: int, *, key_chunk: int = 1024, query_chunk: int = 4096,
                            itemsize: int = 4) -> int:
    """Analytic peak of :func:`chunked_attention` beyond its inputs: the output and the running
    ``acc`` ``(L, dv)``, and about three ``(B_q, B_k)`` blocks (scores, exponentials, mask)."""
    _check_sizes(L=L, N=N, d=d, dv=dv, itemsize=itemsize)
    check_int("key_chunk", key_chunk, minimum=1)
    check_int("query_chunk", query_chunk, minimum=1)
    bq, bk = min(query_chunk, L), min(key_chunk, N)
    return itemsize * (2 * L * dv + 3 * bq * bk + 2 * bq * dv)
