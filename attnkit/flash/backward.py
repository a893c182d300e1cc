r"""The backward kernels of attnkit's FlashAttention in Triton: dQ, dK, dV with recomputation.

FlashAttention-2's backward (Dao, 2023, Algorithm 2) in one main kernel, with two light passes
around it, three launches in all:

1. ``_bwd_preprocess``: ``delta_i = rowsum(dO_i * O_i)`` (minus the incoming gradient of the
   log-sum-exp, when the caller used it), one float32 number per query row, and zeros in the
   float32 accumulator of dQ;
2. ``_attn_bwd``: one program per block of ``BLOCK_N`` keys of one (batch, K/V head). It keeps
   ``k``, ``v`` and the accumulators ``dk``, ``dv`` on chip and streams the query blocks of every
   query head of its group past them. Per tile it runs the **five GEMMs** of FA2::

       s^T  = k q^T                 (recompute the scores)     p^T = exp2(s^T * scale log2 e - lse log2 e)
       dv  += p^T do                dp^T = v do^T               ds^T = p^T * (dp^T - delta)
       dk  += ds^T q                dq  += ds k   (float32 atomic add: other key blocks add to the same rows)

3. ``_bwd_dq_convert``: ``dq = dq_acc * scale``, cast to the input dtype.

``Q, K, V, DO, DK, DV`` are TMA descriptors or pointers as in ``attnkit.flash.forward`` (``TMA``);
the float32 rows (``LSE``, ``DELTA``, ``DQ_ACC``) are always pointers.

Why atomics: the other layout, Triton's tutorial's (a dK/dV pass and a separate dQ pass over the
tiles), recomputes ``s`` and ``dp`` in the dQ pass: seven GEMMs per tile instead of five. The
price of five is that float32 additions into dQ arrive in whatever order the GPU schedules
them, so dQ can differ in its last bits from run to run (dK and dV are deterministic). The
interpreter runs programs one at a time, so there every result is reproducible.

The softmax scale is folded into the fused multiply-add that feeds ``exp2`` (``s * c - lse2``
costs one instruction, as ``s - lse2`` would with a pre-scaled K), and into the epilogues of
dK (``* scale``) and dQ (in the conversion pass); K is never rescaled or rounded.
"""

# No ``from __future__ import annotations``: see attnkit/flash/forward.py.
import triton
import triton.language as tl

from attnkit.flash.forward import _load_rows, _store_rows

__all__ = ["BACKWARD_GEMMS"]

BACKWARD_GEMMS = 5   # tl.dot calls per (key block, query block) tile of _attn_bwd; tests count them in the IR


@triton.jit
def _bwd_preprocess(O, DO, DLSE, DELTA, DQ_ACC,
                    sob, soh, som, sdob, sdoh, sdom,
                    H, Lq,
                    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                    HAS_DLSE: tl.constexpr):
    # one program per BLOCK_M query rows of one (batch, query head)
    off_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    ok = (off_m[:, None] < Lq) & (offs_d[None, :] < HEAD_DIM)
    o = tl.load(O + off_b * sob + off_h * soh + off_m[:, None] * som + offs_d[None, :], mask=ok, other=0.0)
    do = tl.load(DO + off_b * sdob + off_h * sdoh + off_m[:, None] * sdom + offs_d[None, :], mask=ok, other=0.0)
    row = (off_b * H + off_h) * Lq + off_m            # (B, Hq, Lq) float32 rows
    # delta_i = sum_c dO_ic O_ic  (- dLSE_i: the log-sum-exp's own gradient enters ds the same way)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    if HAS_DLSE:
        delta -= tl.load(DLSE + row, mask=off_m < Lq, other=0.0)
    tl.store(DELTA + row, delta, mask=off_m < Lq)
    # the dQ accumulator starts at zero (the main kernel adds into it)
    tl.store(DQ_ACC + row[:, None] * HEAD_DIM + offs_d[None, :], tl.zeros([BLOCK_M, BLOCK_D], tl.float32), mask=ok)

@triton.jit
def _bwd_tiles(dk, dv, k, v, Q, DO, dq_ptr, lse_ptr, delta_ptr, b, h, sqb, sqh, sqm, sdob, sdoh, sdom,
               offs_n, lo, hi, Lq, Lk, diag, qk_scale,
               HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
               MASKED: tl.constexpr, CAUSAL: tl.constexpr, PRECISION: tl.constexpr, TMA: tl.constexpr):
    """Stream query blocks ``[lo, hi)`` of query head ``h`` past one key tile: accumulate its ``dk``, ``dv`` and
    add each tile's share of ``dq`` into the float32 accumulator."""
    offs_m0 = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d[None, :] < HEAD_DIM
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + offs_m0
        rows_ok = offs_m[:, None] < Lq
        q = _load_rows(Q, b, h, start_m, sqb, sqh, sqm, Lq, BLOCK_M, HEAD_DIM, BLOCK_D, MASKED, TMA)      # (BM, d)
        do = _load_rows(DO, b, h, start_m, sdob, sdoh, sdom, Lq, BLOCK_M, HEAD_DIM, BLOCK_D, MASKED, TMA)  # (BM, d)
        if MASKED:
            lse = tl.load(lse_ptr + offs_m, mask=offs_m < Lq, other=0.0)
            delta = tl.load(delta_ptr + offs_m, mask=offs_m < Lq, other=0.0)
        else:
            lse = tl.load(lse_ptr + offs_m)
            delta = tl.load(delta_ptr + offs_m)
        # GEMM 1: s^T = k q^T (BLOCK_N, BLOCK_M);
        #         p^T = exp(s^T scale - lse) = exp2(s^T qk_scale - lse log2 e)
        sT = tl.dot(k, tl.trans(q), input_precision=PRECISION)
        pT = tl.exp2(sT * qk_scale - lse[None, :] * 1.4426950408889634)
        if MASKED:  # causal diagonal, rows past Lq, keys past Lk
            #         (rows with no key have lse = -inf: masked here)
            keep = (offs_m[None, :] < Lq) & (offs_n[:, None] < Lk)
            if CAUSAL:
                keep = keep & (offs_n[:, None] <= offs_m[None, :] + diag)
            pT = tl.where(keep, pT, 0.0)
        # GEMM 2: dv += p^T do
        dv = tl.dot(pT.to(do.dtype), do, dv, input_precision=PRECISION)
        # GEMM 3: dp^T = v do^T;  ds^T = p^T * (dp^T - delta)
        dpT = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        dsT = (pT * (dpT - delta[None, :])).to(q.dtype)
        # GEMM 4: dk += ds^T q   (the softmax scale is applied once, in the epilogue)
        dk = tl.dot(dsT, q, dk, input_precision=PRECISION)
        # GEMM 5: this tile's share of dq = ds k, added in float32
        #         (scaled in _bwd_dq_convert)
        dq = tl.dot(tl.trans(dsT), k, input_precision=PRECISION)
        dq_ptrs = dq_ptr + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
        if MASKED or HEAD_DIM != BLOCK_D:
            tl.atomic_add(dq_ptrs, dq, mask=rows_ok & d_ok, sem="relaxed")
        else:
            tl.atomic_add(dq_ptrs, dq, sem="relaxed")
    return dk, dv


@triton.jit
def _attn_bwd(Q, K, V, DO, LSE, DELTA, DQ_ACC, DK, DV,
              sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom,
              sdkb, sdkh, sdkn, sdvb, sdvh, sdvn,
              H, GROUP, Lq, Lk, qk_scale, sm_scale, LQ_BUCKET, LK_BUCKET,
              HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              CAUSAL: tl.constexpr, PRECISION: tl.constexpr, TMA: tl.constexpr):
    # -- phase 0: this program owns keys [start_n, start_n + BLOCK_N) of one (batch, K/V head)
    start_n = tl.program_id(0) * BLOCK_N
    off_hk = tl.program_id(1)
    off_b = tl.program_id(2)
    offs_n = start_n + tl.arange(0, BLOCK_N)
    # -- phase 1: load k, v: stay on chip; dk, dv accumulate in registers over the whole group
    k = _load_rows(K, off_b, off_hk, start_n, skb, skh, skn, Lk, BLOCK_N, HEAD_DIM, BLOCK_D, True, TMA)
    v = _load_rows(V, off_b, off_hk, start_n, svb, svh, svn, Lk, BLOCK_N, HEAD_DIM, BLOCK_D, True, TMA)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    # query blocks: [lo, full) straddle the diagonal (causal: rows that see none of these keys are skipped),
    # [full, tail) need no mask, [tail, Lq) is the ragged end. The ragged last key block masks every tile.
    diag = Lk - Lq                                    # query i sees keys j <= i + diag (causal)
    tail = Lq // BLOCK_M * BLOCK_M
    if CAUSAL:
        lo = tl.maximum(start_n - diag, 0) // BLOCK_M * BLOCK_M       # first row that sees key start_n
        full = tl.minimum(tl.cdiv(tl.maximum(start_n + BLOCK_N - 1 - diag, 0), BLOCK_M) * BLOCK_M, Lq)
        lo = tl.minimum(lo, full)
    else:
        lo = 0
        full = 0
    if start_n + BLOCK_N > Lk:
        full = Lq
    # -- phase 2: for each query head of the group, stream its query blocks, recomputing p^T tile by tile
    for g in range(0, GROUP):
        off_h = off_hk * GROUP + g
        row0 = (off_b.to(tl.int64) * H + off_h) * Lq  # this head's rows of lse, delta and the dq accumulator
        dq_ptr = DQ_ACC + row0 * HEAD_DIM
        dk, dv = _bwd_tiles(dk, dv, k, v, Q, DO, dq_ptr, LSE + row0, DELTA + row0, off_b, off_h, sqb, sqh, sqm,
                            sdob, sdoh, sdom, offs_n, lo, full, Lq, Lk, diag, qk_scale,
                            HEAD_DIM, BLOCK_D, BLOCK_M, True, CAUSAL, PRECISION, TMA)
        dk, dv = _bwd_tiles(dk, dv, k, v, Q, DO, dq_ptr, LSE + row0, DELTA + row0, off_b, off_h, sqb, sqh, sqm,
                            sdob, sdoh, sdom, offs_n, full, tail, Lq, Lk, diag, qk_scale,
                            HEAD_DIM, BLOCK_D, BLOCK_M, False, CAUSAL, PRECISION, TMA)
        dk, dv = _bwd_tiles(dk, dv, k, v, Q, DO, dq_ptr, LSE + row0, DELTA + row0, off_b, off_h, sqb, sqh, sqm,
                            sdob, sdoh, sdom, offs_n, tl.maximum(full, tail), Lq, Lq, Lk, diag, qk_scale,
                            HEAD_DIM, BLOCK_D, BLOCK_M, True, CAUSAL, PRECISION, TMA)
    # -- epilogue: write dk (times the softmax scale) and dv
    _store_rows(DK, dk * sm_scale, off_b, off_hk, start_n, sdkb, sdkh, sdkn, Lk, BLOCK_N, HEAD_DIM, BLOCK_D, TMA)
    _store_rows(DV, dv, off_b, off_hk, start_n, sdvb, sdvh, sdvn, Lk, BLOCK_N, HEAD_DIM, BLOCK_D, TMA)


@triton.jit
def _bwd_dq_convert(DQ_ACC, DQ, sdqb, sdqh, sdqm, H, Lq, sm_scale,
                    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr):
    # dq = dq_acc * scale in the input dtype, written with dq's own strides
    off_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    ok = (off_m[:, None] < Lq) & (offs_d[None, :] < HEAD_DIM)
    row = (off_b * H + off_h) * Lq + off_m
    dq = tl.load(DQ_ACC + row[:, None] * HEAD_DIM + offs_d[None, :], mask=ok, other=0.0)
    tl.store(DQ + off_b * sdqb + off_h * sdqh + off_m[:, None] * sdqm + offs_d[None, :],
             (dq * sm_scale).to(DQ.dtype.element_ty), mask=ok)
