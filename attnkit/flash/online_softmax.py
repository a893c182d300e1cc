r"""Online softmax and a blocked NumPy reference of FlashAttention, with a byte counter.

The online softmax (Milakov and Gimelshein, 2018) reads a row of scores once, block by block, keeping a
running maximum ``m_i`` and a running sum ``l_i``::

    m_new = max(m_i, max_j s_j)                          # running maximum
    l_i = l_i * exp(m_i - m_new) + sum_j exp(s_j - m_new)  # rescale the old sum, add the new block
    m_i = m_new

FlashAttention (Dao et al., 2022) applies the same rescaling to the output accumulator ``acc``, so
attention is computed tile by tile without ever storing the ``(N, N)`` score matrix. This
module holds the plain NumPy version of that algorithm (forward and backward, with
recomputation in the backward), in float64, as the reference that the Triton kernel
(``attnkit.flash.triton_kernel``) is tested against, and a ``ByteCounter`` that counts
the bytes a tiled kernel moves between HBM (the GPU's main memory) and SRAM (its on-chip
memory), next to the closed-form counts of ``hbm_traffic``.

Shape legend: ``...`` batch dims (e.g. batch and heads), ``N`` sequence length (queries and
keys), ``d`` head dim. The softmax scale defaults to ``1 / sqrt(d)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ByteCounter",
    "attention_np",
    "flash_backward_np",
    "flash_forward_np",
    "hbm_traffic",
    "online_softmax",
    "online_softmax_stats",
    "sram_bytes",
]


def _empty_safe(m: np.ndarray) -> np.ndarray:
    """``m`` with ``-inf`` replaced by 0, so ``x - m`` stays ``-inf`` (not NaN) on empty rows.

    A NaN maximum stays NaN: a NaN in a row makes the whole row NaN, as in ``torch.softmax``.
    """
    return np.where(m == -np.inf, 0.0, m)


def online_softmax_stats(blocks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One pass over column blocks ``(..., Bc)`` of a row of scores; returns ``(m_i, l_i)``.

    Equivalent to ``m = x.max(-1); l = exp(x - m[..., None]).sum(-1)`` on the concatenated
    blocks, but each block is read once and then forgotten. A row whose entries are all
    ``-inf`` (fully masked) gives ``m_i = -inf`` and ``l_i = 0``, never NaN.
    """
    m_i = l_i = None
    for s in blocks:
        s = np.asarray(s, dtype=np.float64)
        if m_i is None:
            m_i = np.full(s.shape[:-1], -np.inf)
            l_i = np.zeros(s.shape[:-1])
        # m_new = max(m_i, max_j s_j)
        m_new = np.maximum(m_i, s.max(-1))
        safe = _empty_safe(m_new)
        # l_i <- l_i * exp(m_i - m_new) + sum_j exp(s_j - m_new)
        l_i = l_i * np.exp(m_i - safe) + np.exp(s - safe[..., None]).sum(-1)
        m_i = m_new
    if m_i is None:
        raise ValueError("online_softmax_stats needs at least one block; got none")
    return m_i, l_i


def online_softmax(x: np.ndarray, block_size: int = 4) -> np.ndarray:
    """Softmax over the last axis of ``x`` computed by the online (one-pass) statistics.

    Equivalent to ``e = exp(x - x.max(-1, keepdims=True)); e / e.sum(-1, keepdims=True)``;
    the normaliser comes from ``online_softmax_stats`` over blocks of ``block_size``
    columns. Fully masked rows (all ``-inf``) give zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    if block_size < 1:
        raise ValueError(f"block_size must be a positive integer; got {block_size}")
    n = x.shape[-1]
    m_i, l_i = online_softmax_stats(x[..., j:j + block_size] for j in range(0, n, block_size))
    e = np.exp(x - _empty_safe(m_i)[..., None])
    return e / np.where(l_i > 0, l_i, 1.0)[..., None]


@dataclass
class ByteCounter:
    """Bytes read from and written to HBM by a (simulated) kernel, by tensor name.

    ``bytes_per_element`` is 2 for float16/bfloat16 tensors; the counts do not depend on the
    float64 arithmetic the NumPy reference actually uses.
    """

    bytes_per_element: int = 2
    reads: dict[str, int] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)

    def read(self, name: str, block: np.ndarray, bytes_per_element: int | None = None) -> np.ndarray:
        """Count ``block`` as loaded from HBM into SRAM; return it unchanged."""
        b = self.bytes_per_element if bytes_per_element is None else bytes_per_element
        self.reads[name] = self.reads.get(name, 0) + block.size * b
        return block

    def write(self, name: str, block: np.ndarray, bytes_per_element: int | None = None) -> None:
        """Count ``block`` as stored from SRAM to HBM."""
        b = self.bytes_per_element if bytes_per_element is None else bytes_per_element
        self.writes[name] = self.writes.get(name, 0) + block.size * b

    @property
    def total(self) -> int:
        """All bytes moved, reads plus writes."""
        return sum(self.reads.values()) + sum(self.writes.values())


def _scale(d: int, softmax_scale: float | None) -> float:
    return 1.0 / math.sqrt(d) if softmax_scale is None else float(softmax_scale)


def attention_np(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False,
                 softmax_scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact attention in float64: ``q, k, v: (..., N, d)`` -> ``(o: (..., N, d), lse: (..., N))``.

    Equivalent to ``s = q @ k.T * scale; p = softmax(s); o = p @ v`` with the causal mask
    ``j <= i`` if asked; ``lse`` is the log-sum-exp of each row of scaled scores.
    """
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) * _scale(q.shape[-1], softmax_scale)  # (..., N, N)
    if causal:
        n_q, n_k = s.shape[-2:]
        s = np.where(np.tri(n_q, n_k, dtype=bool), s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - m)
    l_ = e.sum(-1, keepdims=True)
    return (e / l_) @ v, (m + np.log(l_))[..., 0]


def flash_forward_np(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False,
                     softmax_scale: float | None = None, block_m: int = 16, block_n: int = 16,
                     counter: ByteCounter | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Blocked FlashAttention forward: ``q, k, v: (..., N, d)`` -> ``(o: (..., N, d), lse: (..., N))``.

    Same result as ``attention_np``, computed one ``(block_m, block_n)`` tile of scores at a
    time with the online softmax: for each block of queries, loop over blocks of keys keeping
    ``m_i``, ``l_i`` and an unnormalised output ``acc``; divide by ``l_i`` at the end. With
    ``causal``, key blocks entirely above the diagonal are skipped (never loaded). ``counter``
    records the HBM traffic: Q, K, V blocks read, O and the log-sum-exp written.
    """
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    n, d = q.shape[-2:]
    scale = _scale(d, softmax_scale)
    c = counter if counter is not None else ByteCounter()
    o = np.zeros_like(q)
    lse = np.zeros(q.shape[:-1])
    for i0 in range(0, n, block_m):
        i1 = min(i0 + block_m, n)
        # load q: stays in SRAM for the whole inner loop
        q_blk = c.read("Q", q[..., i0:i1, :])                          # (..., Bm, d)
        m_i = np.full(q_blk.shape[:-1], -np.inf)                        # running max
        l_i = np.zeros(q_blk.shape[:-1])                                # running sum
        acc = np.zeros(q_blk.shape)                                     # unnormalised output
        hi = i1 if causal else n                                        # causal: keys j <= i only
        for j0 in range(0, hi, block_n):
            j1 = min(j0 + block_n, n)
            k_blk = c.read("K", k[..., j0:j1, :])                      # (..., Bn, d)
            v_blk = c.read("V", v[..., j0:j1, :])                      # (..., Bn, d)
            # s = q k^T * scale, masked above the diagonal
            s = q_blk @ np.swapaxes(k_blk, -1, -2) * scale              # (..., Bm, Bn)
            if causal and j1 > i0:
                rows, cols = np.arange(i0, i1)[:, None], np.arange(j0, j1)[None, :]
                s = np.where(cols <= rows, s, -np.inf)
            # update m_i and l_i, rescale acc
            m_new = np.maximum(m_i, s.max(-1))
            alpha = np.exp(m_i - m_new)                                 # exp(-inf) = 0 on the first block
            p = np.exp(s - m_new[..., None])
            l_i = l_i * alpha + p.sum(-1)
            acc = acc * alpha[..., None] + p @ v_blk
            m_i = m_new
        # epilogue: normalise and write o and the log-sum-exp
        o[..., i0:i1, :] = acc / l_i[..., None]
        lse[..., i0:i1] = m_i + np.log(l_i)
        c.write("O", o[..., i0:i1, :])
        c.write("LSE", lse[..., i0:i1], bytes_per_element=4)
    return o, lse


def flash_backward_np(q: np.ndarray, k: np.ndarray, v: np.ndarray, o: np.ndarray, lse: np.ndarray,
                      do: np.ndarray, causal: bool = False, softmax_scale: float | None = None,
                      block_m: int = 16, block_n: int = 16,
                      counter: ByteCounter | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blocked FlashAttention backward with recomputation; returns ``(dq, dk, dv)``, each ``(..., N, d)``.

    The ``(N, N)`` probabilities are never stored: each tile ``p = exp(s - lse)`` is recomputed
    from ``q``, ``k`` and the saved log-sum-exp. With ``delta_i = sum_c do_ic o_ic``::

        dv += p^T do          dp = do v^T          ds = p * (dp - delta)
        dq += ds k * scale    dk += ds^T q * scale

    The outer loop runs over key blocks (``dk``, ``dv`` stay in SRAM), the inner over query
    blocks (``dq`` is accumulated in HBM), as in Dao et al. (2022).
    """
    q, k, v, o, do = (np.asarray(t, dtype=np.float64) for t in (q, k, v, o, do))
    lse = np.asarray(lse, dtype=np.float64)
    n, d = q.shape[-2:]
    scale = _scale(d, softmax_scale)
    c = counter if counter is not None else ByteCounter()
    delta = (do * o).sum(-1)                                            # (..., N): rowsum(dO * O)
    dq = np.zeros_like(q)
    dk = np.zeros_like(k)
    dv = np.zeros_like(v)
    for j0 in range(0, n, block_n):
        j1 = min(j0 + block_n, n)
        # load k, v: stay in SRAM; dk, dv accumulate in SRAM
        k_blk = c.read("K", k[..., j0:j1, :])
        v_blk = c.read("V", v[..., j0:j1, :])
        dk_blk = np.zeros_like(k_blk)
        dv_blk = np.zeros_like(v_blk)
        lo = (j0 // block_m) * block_m if causal else 0                 # causal: queries i >= j only
        for i0 in range(lo, n, block_m):
            i1 = min(i0 + block_m, n)
            q_blk = c.read("Q", q[..., i0:i1, :])
            do_blk = c.read("dO", do[..., i0:i1, :])
            lse_blk = c.read("LSE", lse[..., i0:i1], bytes_per_element=4)
            delta_blk = c.read("delta", delta[..., i0:i1], bytes_per_element=4)
            # recompute p = exp(s - lse) for this tile
            s = q_blk @ np.swapaxes(k_blk, -1, -2) * scale              # (..., Bm, Bn)
            p = np.exp(s - lse_blk[..., None])
            if causal and j1 > i0:
                rows, cols = np.arange(i0, i1)[:, None], np.arange(j0, j1)[None, :]
                p = np.where(cols <= rows, p, 0.0)
            # dv += p^T do;  ds = p * (do v^T - delta)
            dv_blk += np.swapaxes(p, -1, -2) @ do_blk
            ds = p * (do_blk @ np.swapaxes(v_blk, -1, -2) - delta_blk[..., None])
            # dq += ds k * scale (read-modify-write in HBM);  dk += ds^T q * scale
            dq[..., i0:i1, :] += c.read("dQ", ds @ k_blk * scale)
            c.write("dQ", dq[..., i0:i1, :])
            dk_blk += np.swapaxes(ds, -1, -2) @ q_blk * scale
        dk[..., j0:j1, :] = dk_blk
        dv[..., j0:j1, :] = dv_blk
        c.write("dK", dk_blk)
        c.write("dV", dv_blk)
    return dq, dk, dv


def hbm_traffic(n: int, d: int, block_m: int = 64, block_n: int = 64, causal: bool = False,
                bytes_per_element: int = 2) -> dict[str, int]:
    """Closed-form HBM bytes of the forward pass for one (batch, head): ``{"naive": ..., "tiled": ...}``.

    ``naive`` is standard attention that materialises the scores (Algorithm 0 of Dao et al., 2022):
    read Q, K, write S, read S, write P, read P, V, write O, i.e. ``4 N d + 4 N^2`` elements.
    ``tiled`` is ``flash_forward_np``: Q read and O written once, plus K and V read once per
    block of queries (only up to the diagonal when ``causal``), plus the float32 log-sum-exp.
    The two agree with a ``ByteCounter`` run of the NumPy code.
    """
    b = bytes_per_element
    naive = (4 * n * d + 4 * n * n) * b
    kv_rows = 0
    for i0 in range(0, n, block_m):
        hi = min(i0 + block_m, n) if causal else n
        kv_rows += min(-(-hi // block_n) * block_n, n)     # whole key blocks up to hi, ragged last one
    tiled = (2 * n * d + 2 * kv_rows * d) * b + 4 * n
    return {"naive": naive, "tiled": tiled}


def sram_bytes(block_m: int, block_n: int, d: int, bytes_per_element: int = 2) -> int:
    """SRAM a forward tile needs: q, k, v blocks in 16-bit, ``acc`` and the score tile in float32."""
    return (block_m * d + 2 * block_n * d) * bytes_per_element + (block_m * d + block_m * block_n + 2 * block_m) * 4
