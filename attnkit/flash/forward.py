r"""The forward kernel of attnkit's FlashAttention in Triton: the output and the log-sum-exp.

The algorithm is FlashAttention-2's forward (Dao, 2023): every program owns one tile of
``BLOCK_M`` query rows of one (batch, query head), keeps it on chip and streams the key and
value blocks of its K/V head past it, with the online softmax's running max ``m_i``, running
sum ``l_i`` and unnormalised output ``acc`` (the names of the chapter's maths). Scores are kept
in base-2 units (``s * scale * log2 e``) so that the kernel calls ``exp2``, the instruction GPUs
have; the saved log-sum-exp is in natural units.

Shapes: ``q: (B, Hq, Lq, d)``, ``k, v: (B, Hkv, Lk, d)`` with ``Hq = GROUP * Hkv`` (query head
``h`` reads K/V head ``h // GROUP``: grouped-query and multi-query attention without copying
K and V), any strides with a unit last stride; ``o`` like ``q``; ``lse: (B, Hq, Lq)`` float32.
The tile's head dim ``BLOCK_D`` is the next power of two of ``d``; when they differ the extra
columns are masked (read as zeros, never written). ``causal`` is aligned bottom-right: query
``i`` sees keys ``j <= i + Lk - Lq``. A row that sees no key gets ``o = 0`` and ``lse = -inf``.

On Hopper GPUs (sm_90) with a Triton that has tensor descriptors, and 16-byte-aligned strides,
``TMA=True``: ``Q, K, V, O`` are 4-D TMA descriptors (``triton.tools.tensor_descriptor``) and
the tiles move between HBM and shared memory by the Tensor Memory Accelerator, which also does
the bounds checks (zeros past ``L`` and ``d``). Elsewhere, and in the interpreter, they are
pointers with strides and the loads are masked. ``_load_rows`` and ``_store_rows`` hide the
difference.

The key loop is split into two calls of one ``@triton.jit`` helper: the blocks that need no
mask (wholly visible to every row of the tile and inside ``Lk``), then the few that straddle
the causal diagonal or hold the ragged end of ``Lk``. ``MASKED`` is a compile-time constant,
so the first call carries no mask code at all. Causal programs start with the longest tiles.
"""

# No ``from __future__ import annotations`` here: the interpreters of Triton < 3.7 find the
# ``tl.constexpr`` parameters by their annotation objects, and string annotations hide them.
import triton
import triton.language as tl

__all__ = ["LN2", "LOG2E"]

LOG2E = 1.4426950408889634  # log2(e): exp(x) = exp2(x * log2 e)
LN2 = 0.6931471805599453    # ln(2): log(x) = log2(x) * ln 2


@triton.jit
def _load_tile(ptrs, rows_ok, cols_ok, CHECK_ROWS: tl.constexpr, CHECK_COLS: tl.constexpr):
    """``tl.load`` with only the masks that are needed (compile-time flags); zeros where masked.

    ``rows_ok`` and ``cols_ok`` broadcast against ``ptrs`` (shapes ``(R, 1)`` and ``(1, C)``)."""
    if CHECK_ROWS and CHECK_COLS:
        x = tl.load(ptrs, mask=rows_ok & cols_ok, other=0.0)
    elif CHECK_ROWS:
        x = tl.load(ptrs, mask=rows_ok, other=0.0)
    elif CHECK_COLS:
        x = tl.load(ptrs, mask=cols_ok, other=0.0)
    else:
        x = tl.load(ptrs)
    return x


@triton.jit
def _load_rows(X, b, h, row0, sb, sh, sr, n_rows, BLOCK_R: tl.constexpr,
               HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, CHECK_ROWS: tl.constexpr,
               TMA: tl.constexpr):
    """Rows ``[row0, row0 + BLOCK_R)`` of the ``(b, h)`` slice of ``X``:
    ``(BLOCK_R, BLOCK_D)``, zero past ``n_rows`` and past ``HEAD_DIM``. ``X`` is a 4-D
    TMA descriptor (``TMA``) or a pointer with strides ``sb, sh, sr``."""
    if TMA:
        x = X.load([b, h, row0, 0]).reshape(BLOCK_R, BLOCK_D)
    else:
        offs_r = row0 + tl.arange(0, BLOCK_R)
        offs_d = tl.arange(0, BLOCK_D)
        ptrs = (X + b.to(tl.int64) * sb + h.to(tl.int64) * sh
                + offs_r[:, None] * sr + offs_d[None, :])
        x = _load_tile(ptrs, offs_r[:, None] < n_rows, offs_d[None, :] < HEAD_DIM,
                       CHECK_ROWS, HEAD_DIM != BLOCK_D)
    return x


@triton.jit
def _store_rows(X, x, b, h, row0, sb, sh, sr, n_rows, BLOCK_R: tl.constexpr, HEAD_DIM: tl.constexpr,
                BLOCK_D: tl.constexpr, TMA: tl.constexpr):
    """Write ``x: (BLOCK_R, BLOCK_D)`` to rows ``[row0, row0 + BLOCK_R)`` of the ``(b, h)`` slice of ``X``, only the
    rows below ``n_rows`` and the columns below ``HEAD_DIM``."""
    if TMA:
        X.store([b, h, row0, 0], x.to(X.dtype).reshape(1, 1, BLOCK_R, BLOCK_D))
    else:
        offs_r = row0 + tl.arange(0, BLOCK_R)
        offs_d = tl.arange(0, BLOCK_D)
        ptrs = X + b.to(tl.int64) * sb + h.to(tl.int64) * sh + offs_r[:, None] * sr + offs_d[None, :]
        tl.store(ptrs, x.to(X.dtype.element_ty), mask=(offs_r[:, None] < n_rows) & (offs_d[None, :] < HEAD_DIM))


@triton.jit
def _fwd_tiles(acc, l_i, m_i, q, K, V, b, hk, skb, skh, skn, svb, svh, svn, offs_m, lo, hi, Lk, diag, qk_scale,
               HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
               MASKED: tl.constexpr, CAUSAL: tl.constexpr, PRECISION: tl.constexpr, TMA: tl.constexpr):
    """Stream key/value blocks ``[lo, hi)`` past one query tile; ``MASKED`` tiles apply the causal and ragged masks."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        # k, v: (BLOCK_N, d)
        k = _load_rows(K, b, hk, start_n, skb, skh, skn, Lk, BLOCK_N, HEAD_DIM, BLOCK_D,
                       MASKED, TMA)
        v = _load_rows(V, b, hk, start_n, svb, svh, svn, Lk, BLOCK_N, HEAD_DIM, BLOCK_D,
                       MASKED, TMA)
        # raw scores q k^T: (BLOCK_M, BLOCK_N); in log2 units they are s * qk_scale
        # (qk_scale = scale * log2 e)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION)
        if MASKED:
            keep = cols[None, :] < Lk
            if CAUSAL:  # bottom-right: query i sees keys j <= i + diag, diag = Lk - Lq
                keep = keep & (cols[None, :] <= offs_m[:, None] + diag)
            s = tl.where(keep, s, float("-inf"))
        # -- update m_i and l_i: m_new = max(m_i, rowmax s);
        #    l_i = l_i * 2^(m_i - m_new) + rowsum p
        m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)  # scales the row max only
        if MASKED:  # a row that has seen no key keeps m = -inf: use 0 in the exponents
            #         (2^-inf = 0, not NaN)
            m_exp = tl.where(m_new == float("-inf"), 0.0, m_new)
        else:
            m_exp = m_new
        alpha = tl.exp2(m_i - m_exp)
        p = tl.exp2(s * qk_scale - m_exp[:, None])  # one fused multiply-add per score
        l_i = l_i * alpha + tl.sum(p, 1)
        # -- rescale acc and add p v
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _attn_fwd(Q, K, V, O, LSE,
              sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sob, soh, som,
              H, GROUP, Lq, Lk, qk_scale, LQ_BUCKET, LK_BUCKET,
              HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              CAUSAL: tl.constexpr, PRECISION: tl.constexpr, TMA: tl.constexpr):
    # LQ_BUCKET, LK_BUCKET (next powers of two of Lq, Lk) are unused here: the
    # autotuner keys on them
    # -- phase 0: which tile this program owns: query rows [start_m*BLOCK_M, +BLOCK_M)
    #    of one (batch, head)
    if CAUSAL:  # tile costs grow along the diagonal: launch the longest first, so the
        #         short ones fill the tail
        start_m = tl.num_programs(0) - 1 - tl.program_id(0)
    else:
        start_m = tl.program_id(0)
    off_h = tl.program_id(1)                          # query head
    off_b = tl.program_id(2)
    off_hk = off_h // GROUP     # its K/V head (GQA / MQA: shared by GROUP query heads)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    # -- phase 1: load q: stays on chip; m_i, l_i, acc live in registers
    q = _load_rows(Q, off_b, off_h, start_m * BLOCK_M, sqb, sqh, sqm, Lq, BLOCK_M,
                   HEAD_DIM, BLOCK_D, True, TMA)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running max (log2 units)
    l_i = tl.zeros([BLOCK_M], tl.float32)                # running sum of exp2(s - m_i)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)       # ... of exp2(s - m_i) v
    # key blocks [0, full) need no mask; [full, hi) straddle the diagonal or the ragged
    # end of Lk. causal: query i sees keys j <= i + diag; key blocks past the tile's
    # last row's limit are never loaded
    diag = Lk - Lq
    if CAUSAL:
        # keys [0, first) are visible to every row of the tile
        first = start_m * BLOCK_M + diag + 1
        full = tl.maximum(tl.minimum(first // BLOCK_N * BLOCK_N,
                                     Lk // BLOCK_N * BLOCK_N), 0)
        hi = tl.maximum(tl.minimum(first - 1 + BLOCK_M, Lk), 0)
    else:
        full = Lk // BLOCK_N * BLOCK_N
        hi = Lk
    # -- phase 2: stream key/value blocks through SRAM, the unmasked ones first
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, K, V, off_b, off_hk, skb, skh, skn,
                               svb, svh, svn, offs_m, 0, full, Lk, diag, qk_scale,
                               HEAD_DIM, BLOCK_D, BLOCK_N, False, CAUSAL, PRECISION,
                               TMA)
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, K, V, off_b, off_hk, skb, skh, skn,
                               svb, svh, svn, offs_m, full, hi, Lk, diag, qk_scale,
                               HEAD_DIM, BLOCK_D, BLOCK_N, True, CAUSAL, PRECISION,
                               TMA)
    # -- epilogue: o = acc / l_i; lse = (m_i + log2 l_i) * ln 2, in natural units.
    # A row that saw no key (causal, i + diag < 0) has l_i = 0 and acc = 0:
    # o = 0, lse = -inf
    empty = l_i == 0.0
    l_i = tl.where(empty, 1.0, l_i)
    acc = acc / l_i[:, None]
    _store_rows(O, acc, off_b, off_h, start_m * BLOCK_M, sob, soh, som, Lq, BLOCK_M,
                HEAD_DIM, BLOCK_D, TMA)
    lse = tl.where(empty, float("-inf"), (m_i + tl.log2(l_i)) * 0.6931471805599453)
    row0 = (off_b.to(tl.int64) * H + off_h) * Lq
    tl.store(LSE + row0 + offs_m, lse, mask=offs_m < Lq)
