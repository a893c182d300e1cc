r"""Online softmax and a blocked NumPy reference of FlashAttention, with a byte counter.

The online softmax (Milakov and Gimelshein, 2018) reads a row of scores once, block by block, keeping a
running maximum ``m_i`` and a running sum ``l_i``::

    m_new = max(m_i, max_j s_j)                            # running maximum
    l_i = l_i * exp(m_i - m_new) + sum_j exp(s_j - m_new)  # rescale, add the new block
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

from attnkit._checks import check_int, check_positive

__all__ = [
    "ByteCounter",
    "attention_np",
    "flash_backward_np",
    "flash1_block_sizes",
    "flash_forward_kv_outer_np",
    "flash_forward_np",
    "hbm_traffic",
    "hbm_traffic_backward",
    "online_softmax",
    "online_softmax_stats",
    "register_bytes",
    "sram_bytes",
]


def _array(name: str, x: object, *, min_rank: int = 1, shape: str = "") -> np.ndarray:
    """``x`` as a float64 array: a real (float or int) array-like of rank >= ``min_rank``.

    Complex, bool, object and string arrays are refused (``np.asarray(x, float64)`` would drop
    an imaginary part with a mere warning, or read ``True`` as 1).
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a real array {shape}; got {type(x).__name__}".replace("  ", " "))
    try:
        a = np.asarray(x)
    except Exception as err:  # e.g. a tensor on the meta device, ragged lists
        raise TypeError(f"{name} must be a real array {shape}; got {type(x).__name__} ({err})") from None
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers (float or int); got dtype {a.dtype}")
    if a.ndim < min_rank:
        raise ValueError(f"{name} must have shape {shape or f'with at least {min_rank} dims'} (at least {min_rank} "
                         f"dimensions); got shape {a.shape}")
    return a.astype(np.float64, copy=False)


def _qkv(q: object, k: object, v: object, causal: object, softmax_scale: object,
         **blocks: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Checked ``q: (..., Lq, d)``, ``k: (..., Lk, d)``, ``v: (..., Lk, dv)`` and the softmax scale."""
    q = _array("q", q, min_rank=2, shape="(..., Lq, d)")
    k = _array("k", k, min_rank=2, shape="(..., Lk, d)")
    v = _array("v", v, min_rank=2, shape="(..., Lk, dv)")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"q and k need the same width d: q {q.shape}, k {k.shape}")
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(f"v needs one row per key (Lk of k): k {k.shape}, v {v.shape}")
    try:
        np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(f"the batch dims of q, k and v do not broadcast: q {q.shape}, k {k.shape}, "
                         f"v {v.shape}") from None
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be True or False; got {type(causal).__name__}")
    if softmax_scale is not None:
        check_positive("softmax_scale", softmax_scale)
    for name, b in blocks.items():
        _check_int(name, b, minimum=1)
    return q, k, v, _scale(q.shape[-1], softmax_scale)


def _check_counter(counter: object) -> None:
    if counter is not None and not isinstance(counter, ByteCounter):
        raise TypeError(f"counter must be a ByteCounter or None; got {type(counter).__name__}")


def _batch(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[int, ...]:
    return np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])


def _empty_safe(m: np.ndarray) -> np.ndarray:
    """``m`` with ``-inf`` replaced by 0, so ``x - m`` stays ``-inf`` (not NaN) on empty rows.

    A NaN maximum stays NaN: a NaN in a row makes the whole row NaN, as in ``torch.softmax``.
    """
    return np.where(m == -np.inf, 0.0, m)


def online_softmax_stats(blocks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One pass over column blocks ``(..., Bc)`` of a row of scores: ``(m_i, l_i)``.

    Equivalent to ``m = x.max(-1); l = exp(x - m[..., None]).sum(-1)`` on the
    concatenated blocks, but each block is read once and then forgotten. A row whose
    entries are all ``-inf`` (fully masked) gives ``m_i = -inf`` and ``l_i = 0``, never
    NaN.
    """
    m_i = l_i = None
    if isinstance(blocks, (str, bytes, np.ndarray)) or not hasattr(blocks, "__iter__"):
        raise TypeError("blocks must be an iterable of arrays (..., Bc); "
                        f"got {type(blocks).__name__}")
    for i, s in enumerate(blocks):
        s = _array(f"blocks[{i}]", s, min_rank=1, shape="(..., Bc)")
        if m_i is None:
            m_i = np.full(s.shape[:-1], -np.inf)
            l_i = np.zeros(s.shape[:-1])
        elif s.shape[:-1] != m_i.shape:
            raise ValueError("every block needs the leading shape of the first, "
                             f"{m_i.shape}; blocks[{i}] has shape {s.shape}")
        if s.shape[-1] == 0:  # a block of no column adds nothing
            continue
        # m_new = max(m_i, max_j s_j)
        m_new = np.maximum(m_i, s.max(-1))
        safe = _empty_safe(m_new)
        # l_i <- l_i * exp(m_i - m_new) + sum_j exp(s_j - m_new)
        l_i = l_i * np.exp(m_i - safe) + np.exp(s - safe[..., None]).sum(-1)
        m_i = m_new
    if m_i is None:
        raise ValueError("blocks must hold at least one block of scores; got none")
    return m_i, l_i


def online_softmax(x: np.ndarray, block_size: int = 4) -> np.ndarray:
    """Softmax over the last axis of ``x`` computed by the online (one-pass) statistics.

    Equivalent to ``e = exp(x - x.max(-1, keepdims=True)); e / e.sum(-1, keepdims=True)``;
    the normaliser comes from ``online_softmax_stats`` over blocks of ``block_size``
    columns. Fully masked rows (all ``-inf``) give zeros.
    """
    x = _array("x", x, min_rank=1, shape="(..., n)")
    _check_int("block_size", block_size, minimum=1)
    n = x.shape[-1]
    if n == 0:  # an empty row: an empty softmax
        return np.zeros(x.shape)
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

    def __post_init__(self) -> None:
        _check_int("bytes_per_element", self.bytes_per_element, minimum=1)

    def read(self, name: str, block: np.ndarray, bytes_per_element: int | None = None) -> np.ndarray:
        """Count ``block`` as loaded from HBM into SRAM; return it unchanged."""
        if not isinstance(block, np.ndarray):
            raise TypeError(f"block must be a NumPy array; got {type(block).__name__}")
        b = self.bytes_per_element if bytes_per_element is None else bytes_per_element
        self.reads[name] = self.reads.get(name, 0) + block.size * b
        return block

    def write(self, name: str, block: np.ndarray, bytes_per_element: int | None = None) -> None:
        """Count ``block`` as stored from SRAM to HBM."""
        if not isinstance(block, np.ndarray):
            raise TypeError(f"block must be a NumPy array; got {type(block).__name__}")
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
    q, k, v, scale = _qkv(q, k, v, causal, softmax_scale)
    if k.shape[-2] == 0:  # no key: every row is empty
        shape = (*_batch(q, k, v), q.shape[-2])
        return np.zeros((*shape, v.shape[-1])), np.full(shape, -np.inf)
    s = q @ np.swapaxes(k, -1, -2) * scale  # (..., Lq, Lk)
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
    """Blocked FlashAttention forward: ``q: (..., Lq, d)``, ``k: (..., Lk, d)``, ``v: (..., Lk, dv)`` ->
    ``(o: (..., Lq, dv), lse: (..., Lq))``.

    Same result as ``attention_np``, computed one ``(block_m, block_n)`` tile of scores at a
    time with the online softmax: for each block of queries, loop over blocks of keys keeping
    ``m_i``, ``l_i`` and an unnormalised output ``acc``; divide by ``l_i`` at the end. With
    ``causal``, key blocks entirely above the diagonal are skipped (never loaded). ``counter``
    records the HBM traffic: Q, K, V blocks read, O and the log-sum-exp written. ``causal`` is
    aligned top-left, as in ``attention_np``: query ``i`` sees keys ``j <= i``. With no key
    (``Lk = 0``) every row gives ``o = 0`` and ``lse = -inf``.
    """
    q, k, v, scale = _qkv(q, k, v, causal, softmax_scale, block_m=block_m, block_n=block_n)
    _check_counter(counter)
    n, nk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
    c = counter if counter is not None else ByteCounter()
    batch = _batch(q, k, v)
    o = np.zeros((*batch, n, dv))
    lse = np.full((*batch, n), -np.inf)
    if nk == 0:
        return o, lse
    for i0 in range(0, n, block_m):
        i1 = min(i0 + block_m, n)
        # load q: stays in SRAM for the whole inner loop
        q_blk = c.read("Q", q[..., i0:i1, :])            # (..., Bm, d)
        m_i = np.full(q_blk.shape[:-1], -np.inf)          # running max
        l_i = np.zeros(q_blk.shape[:-1])                  # running sum
        acc = np.zeros((*batch, i1 - i0, dv))             # unnormalised output
        hi = min(i1, nk) if causal else nk                # causal: keys j <= i only
        for j0 in range(0, hi, block_n):
            j1 = min(j0 + block_n, nk)
            k_blk = c.read("K", k[..., j0:j1, :])                  # (..., Bn, d)
            v_blk = c.read("V", v[..., j0:j1, :])                  # (..., Bn, dv)
            # s = q k^T * scale, masked above the diagonal
            s = q_blk @ np.swapaxes(k_blk, -1, -2) * scale         # (..., Bm, Bn)
            if causal and j1 > i0:
                rows, cols = np.arange(i0, i1)[:, None], np.arange(j0, j1)[None, :]
                s = np.where(cols <= rows, s, -np.inf)
            # update m_i and l_i, rescale acc
            m_new = np.maximum(m_i, s.max(-1))
            alpha = np.exp(m_i - m_new)            # exp(-inf) = 0 on the first block
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
    """Blocked FlashAttention backward with recomputation; returns ``(dq, dk, dv)`` shaped as ``q, k, v``.

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)``, ``v: (..., Lk, dv)``, ``o, do: (..., Lq, dv)``,
    ``lse: (..., Lq)`` (from :func:`flash_forward_np` with the same ``causal`` and scale).

    The ``(N, N)`` probabilities are never stored: each tile ``p = exp(s - lse)`` is recomputed
    from ``q``, ``k`` and the saved log-sum-exp. With ``delta_i = sum_c do_ic o_ic``::

        dv += p^T do          dp = do v^T          ds = p * (dp - delta)
        dq += ds k * scale    dk += ds^T q * scale

    The outer loop runs over key blocks (``dk``, ``dv`` stay in SRAM), the inner over query
    blocks (``dq`` is accumulated in HBM), as in Algorithm 4 of Dao et al. (2022); ``delta``
    is computed in a pre-pass over ``o`` and ``do``, as in FlashAttention-2 (Dao, 2024), whose
    traffic ``counter`` also records (reads of O and dO, a float32 write of delta).
    :func:`hbm_traffic_backward` gives the same count in closed form.
    """
    q, k, v, scale = _qkv(q, k, v, causal, softmax_scale, block_m=block_m, block_n=block_n)
    _check_counter(counter)
    n, nk, dv_ = q.shape[-2], k.shape[-2], v.shape[-1]
    if not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        raise ValueError(f"the backward needs q, k and v with the same batch dims (no broadcasting): "
                         f"q {q.shape}, k {k.shape}, v {v.shape}")
    want = (*q.shape[:-2], n)
    o = _array("o", o, min_rank=2, shape="(..., Lq, dv)")
    do = _array("do", do, min_rank=2, shape="(..., Lq, dv)")
    lse = _array("lse", lse, min_rank=1, shape="(..., Lq)")
    for name, t, shape in (("o", o, (*want, dv_)), ("do", do, (*want, dv_)), ("lse", lse, want)):
        if t.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (batch and Lq of q: {q.shape}, dv of v: "
                             f"{v.shape}); got shape {t.shape}")
    c = counter if counter is not None else ByteCounter()
    # pre-pass: delta_i = rowsum(dO_i * O_i), reading O and dO once and writing delta (float32)
    delta = (c.read("O", o) * c.read("dO", do)).sum(-1)                 # (..., N)
    c.write("delta", delta, bytes_per_element=4)
    dq = np.zeros_like(q)
    dk = np.zeros_like(k)
    dv = np.zeros_like(v)
    for j0 in range(0, nk, block_n):
        j1 = min(j0 + block_n, nk)
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
            dq[..., i0:i1, :] = c.read("dQ", dq[..., i0:i1, :]) + ds @ k_blk * scale
            c.write("dQ", dq[..., i0:i1, :])
            dk_blk += np.swapaxes(ds, -1, -2) @ q_blk * scale
        dk[..., j0:j1, :] = dk_blk
        dv[..., j0:j1, :] = dv_blk
        c.write("dK", dk_blk)
        c.write("dV", dv_blk)
    return dq, dk, dv


def flash_forward_kv_outer_np(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False,
                              softmax_scale: float | None = None, block_r: int = 16, block_c: int = 16,
                              counter: ByteCounter | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FlashAttention-1's loop order (Algorithm 1 of Dao et al., 2022): ``(o, lse)`` like ``flash_forward_np``.

    The **outer** loop runs over blocks of ``block_c`` keys (``K_j``, ``V_j`` are loaded once
    and stay in SRAM), the inner over blocks of ``block_r`` queries. The running statistics
    ``m``, ``l`` and the output ``O`` live in HBM: every inner step loads ``Q_i``, ``O_i``,
    ``l_i``, ``m_i``, folds in the tile and writes ``O_i``, ``l_i``, ``m_i`` back, with ``O_i``
    kept normalised::

        m_new = max(m_i, rowmax(S_ij))
        l_new = e^(m_i - m_new) l_i + rowsum(e^(S_ij - m_new))
        O_i <- (l_i e^(m_i - m_new) O_i + e^(S_ij - m_new) V_j) / l_new

    FlashAttention-2 (Dao, 2024) swapped the loops (``flash_forward_np``): then ``O_i``, ``m_i``
    and ``l_i`` stay on chip and are written once, and only ``K`` and ``V`` are re-read.
    ``counter`` records the traffic, which :func:`hbm_traffic` with ``order="kv_outer"`` gives
    in closed form. ``lse = m + log(l)`` is returned for comparison (Algorithm 1 keeps ``m``
    and ``l`` instead).
    """
    q, k, v, scale = _qkv(q, k, v, causal, softmax_scale, block_r=block_r, block_c=block_c)
    _check_counter(counter)
    n, nk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
    batch = _batch(q, k, v)
    c = counter if counter is not None else ByteCounter()
    # initialise O = 0, l = 0, m = -inf in HBM
    o = np.zeros((*batch, n, dv))
    l_hbm = np.zeros((*batch, n))
    m_hbm = np.full((*batch, n), -np.inf)
    c.write("O", o)
    c.write("l", l_hbm, bytes_per_element=4)
    c.write("m", m_hbm, bytes_per_element=4)
    for j0 in range(0, nk, block_c):
        j1 = min(j0 + block_c, nk)
        # load K_j, V_j: stay in SRAM for the whole inner loop
        k_blk = c.read("K", k[..., j0:j1, :])                          # (..., Bc, d)
        v_blk = c.read("V", v[..., j0:j1, :])                          # (..., Bc, dv)
        lo = (j0 // block_r) * block_r if causal else 0                # causal: rows i >= j0 only
        for i0 in range(lo, n, block_r):
            i1 = min(i0 + block_r, n)
            q_blk = c.read("Q", q[..., i0:i1, :])                      # (..., Br, d)
            o_blk = c.read("O", o[..., i0:i1, :])
            l_i = c.read("l", l_hbm[..., i0:i1], bytes_per_element=4)
            m_i = c.read("m", m_hbm[..., i0:i1], bytes_per_element=4)
            s = q_blk @ np.swapaxes(k_blk, -1, -2) * scale              # (..., Br, Bc)
            if causal and j1 - 1 > i0:
                rows, cols = np.arange(i0, i1)[:, None], np.arange(j0, j1)[None, :]
                s = np.where(cols <= rows, s, -np.inf)
            # statistics of the tile, then of everything seen so far
            m_t = s.max(-1)
            p = np.exp(s - _empty_safe(m_t)[..., None])                # (..., Br, Bc)
            l_t = p.sum(-1)
            m_new = np.maximum(m_i, m_t)
            safe = _empty_safe(m_new)
            a_old, a_new = np.exp(m_i - safe), np.exp(m_t - safe)
            l_new = a_old * l_i + a_new * l_t
            # O_i <- (l_i e^(m_i - m_new) O_i + e^(m_t - m_new) P V_j) / l_new, written back to HBM
            num = (l_i * a_old)[..., None] * o_blk + a_new[..., None] * (p @ v_blk)
            o[..., i0:i1, :] = num / np.where(l_new > 0, l_new, 1.0)[..., None]
            l_hbm[..., i0:i1], m_hbm[..., i0:i1] = l_new, m_new
            c.write("O", o[..., i0:i1, :])
            c.write("l", l_new, bytes_per_element=4)
            c.write("m", m_new, bytes_per_element=4)
    return o, np.where(l_hbm > 0, m_hbm + np.log(np.where(l_hbm > 0, l_hbm, 1.0)), -np.inf)


def _check_int(name: str, value: object, *, minimum: int) -> int:
    """:func:`attnkit._checks.check_int` that also takes NumPy integers (``2 ** np.arange(8, 15)``)."""
    return check_int(name, int(value) if isinstance(value, np.integer) else value, minimum=minimum)


def _check_sizes(causal: object = False, **sizes: object) -> None:
    """Sizes ``n`` (may be 0) and the others (>= 1) are ints; ``causal`` is a bool."""
    for name, value in sizes.items():
        _check_int(name, value, minimum=0 if name == "n" else 1)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be True or False; got {type(causal).__name__}")


def _visited_rows(n: int, outer: int, inner: int, causal: bool, inner_is_query: bool) -> int:
    """Rows of the inner blocks a blocked loop touches, summed over its outer blocks."""
    rows = 0
    for o0 in range(0, n, outer):
        if not causal:
            rows += n
        elif inner_is_query:                       # outer = key block [o0, ..): query rows from its block on
            rows += n - (o0 // inner) * inner
        else:                                      # outer = query block: key rows up to its last row
            rows += min(-(-min(o0 + outer, n) // inner) * inner, n)
    return rows


def hbm_traffic(n: int, d: int, block_m: int = 64, block_n: int = 64, causal: bool = False,
                bytes_per_element: int = 2, order: str = "q_outer") -> dict[str, int]:
    """Closed-form HBM bytes of the forward pass for one (batch, head): ``{"naive": ..., "tiled": ...}``.

    ``naive`` is standard attention that materialises the scores (Algorithm 0 of Dao et al., 2022):
    read Q, K, write S, read S, write P, read P, V, write O, i.e. ``4 N d + 4 N^2`` elements.
    ``tiled`` with ``order="q_outer"`` is ``flash_forward_np`` (FlashAttention-2's loop order,
    ``block_m`` query rows per tile): Q read and O written once, plus K and V read once per
    block of queries (only up to the diagonal when ``causal``), plus the float32 log-sum-exp,
    about ``2 N d + 2 N d * N / block_m`` elements. With ``order="kv_outer"`` it is
    ``flash_forward_kv_outer_np`` (FlashAttention-1's Algorithm 1, ``block_m`` = its ``B_r``,
    ``block_n`` = ``B_c``): K, V read once, and Q, O read and O written once per block of keys,
    with the float32 ``m`` and ``l`` alongside, about ``3 N d + 3 N d * N / block_n`` elements.
    Either way, with tiles of ``~M / (4 d)`` rows for an SRAM of ``M`` elements, the traffic is
    ``Theta(N^2 d^2 / M)`` (Theorem 2 of Dao et al., 2022; see :func:`flash1_block_sizes`).
    Both agree with a ``ByteCounter`` run of the NumPy code.
    """
    if order not in ("q_outer", "kv_outer"):
        raise ValueError(f"order must be 'q_outer' (FlashAttention-2) or 'kv_outer' (FlashAttention-1); got {order!r}")
    _check_sizes(n=n, d=d, block_m=block_m, block_n=block_n, bytes_per_element=bytes_per_element, causal=causal)
    b = bytes_per_element
    naive = (4 * n * d + 4 * n * n) * b
    if order == "q_outer":
        kv_rows = _visited_rows(n, block_m, block_n, causal, inner_is_query=False)
        tiled = (2 * n * d + 2 * kv_rows * d) * b + 4 * n
    else:
        q_rows = _visited_rows(n, block_n, block_m, causal, inner_is_query=True)
        tiled = (n * d + 2 * n * d + 3 * q_rows * d) * b + 4 * (2 * n + 4 * q_rows)
    return {"naive": naive, "tiled": tiled}


def hbm_traffic_backward(n: int, d: int, block_m: int = 16, block_n: int = 16, causal: bool = False,
                         bytes_per_element: int = 2) -> int:
    """Closed-form HBM bytes of ``flash_backward_np`` for one (batch, head), the delta pre-pass included.

    Pre-pass: read O and dO, write delta (float32). Main loop (key blocks outside): K, V read
    and dK, dV written once; for every visited (key block, query block) pair, Q and dO read,
    the float32 LSE and delta read, and dQ read and written back. About
    ``6 N d + 4 N d * N / block_n`` elements plus ``4 N + 8 N^2 / block_n`` float32 bytes.
    """
    _check_sizes(n=n, d=d, block_m=block_m, block_n=block_n, bytes_per_element=bytes_per_element, causal=causal)
    b = bytes_per_element
    q_rows = _visited_rows(n, block_n, block_m, causal, inner_is_query=True)
    return (2 * n * d + 4 * n * d + 4 * q_rows * d) * b + 4 * (n + 2 * q_rows)


def flash1_block_sizes(sram_elements: int, d: int) -> tuple[int, int]:
    """The block sizes of FlashAttention-1's Algorithm 1 for an SRAM of ``M`` elements: ``(B_r, B_c)``.

    ``B_c = ceil(M / (4 d))`` and ``B_r = min(ceil(M / (4 d)), d)``: four blocks of about
    ``M / 4`` elements each (``Q_i``, ``O_i``, ``K_j``, ``V_j``) fill the SRAM. Needs ``d <= M``.
    """
    _check_int("sram_elements", sram_elements, minimum=1)
    _check_int("d", d, minimum=1)
    if not d <= sram_elements:
        raise ValueError(f"FlashAttention's analysis needs d <= M; got d={d}, M={sram_elements}")
    bc = -(-sram_elements // (4 * d))
    return min(bc, d), bc


def sram_bytes(block_m: int, block_n: int, d: int, bytes_per_element: int = 2, num_stages: int = 2) -> int:
    """Shared memory (SRAM) a forward program of a pipelined tiled kernel needs, in bytes.

    Equivalent to ``(block_m * d + num_stages * 2 * block_n * d) * bytes_per_element``: the
    ``Q_i`` tile, resident for the whole loop, plus ``num_stages`` buffers of a ``K_j`` and a
    ``V_j`` tile, so that the next tiles arrive while the current one is used (software
    pipelining; ``num_stages`` as in ``triton.Config``). The accumulator ``acc``, the score
    tile ``S_ij`` and ``m_i``, ``l_i`` are *not* here: a GPU kernel keeps them in registers
    (:func:`register_bytes`). Not modelled either: scratch the compiler may add for layout
    conversions or the epilogue, or its reuse of one buffer for several tiles; the tests compare
    the model with Triton's compiled kernel where Triton is installed.
    """
    _check_sizes(block_m=block_m, block_n=block_n, d=d, bytes_per_element=bytes_per_element, num_stages=num_stages)
    return (block_m * d + num_stages * 2 * block_n * d) * bytes_per_element


def register_bytes(block_m: int, block_n: int, d: int) -> int:
    """Register-file bytes of a forward program's float32 state: ``acc``, ``S_ij``, ``m_i`` and ``l_i``.

    Equivalent to ``4 * (block_m * d + block_m * block_n + 2 * block_m)``. An H100 SM has
    256 KB of registers (65,536 of 4 bytes), at most 255 per thread, shared by the programs
    resident on it; a tile whose state does not fit spills to (slow) local memory.
    """
    _check_sizes(block_m=block_m, block_n=block_n, d=d)
    return 4 * (block_m * d + block_m * block_n + 2 * block_m)
