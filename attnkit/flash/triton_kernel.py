r"""FlashAttention in Triton: a forward kernel (output and log-sum-exp) and backward kernels (dQ, dK, dV).

The algorithm is FlashAttention-2 (Dao, 2023): every program owns one tile of rows, keeps it in
SRAM and streams the other operand through in blocks, with the online softmax's running max
``m_i``, running sum ``l_i`` and unnormalised output ``acc`` (the names of the chapter's
maths). The layout follows Triton's fused-attention tutorial (Tillet et al., 2019): a
forward kernel, a dK/dV kernel that loops over query blocks, and a dQ kernel that loops over
key blocks; ``delta = rowsum(dO * O)`` is a plain torch reduction. Scores are kept in base-2
units (``s * scale * log2 e``) so the kernels call ``exp2``, the instruction GPUs have; the
saved log-sum-exp is in natural units.

Shapes: ``q, k, v, o: (B, H, N, d)`` contiguous, seen by the kernels as ``B*H`` slices of
``(N, d)``; ``lse: (B, H, N)`` float32. Head dims 16, 32, 64, 128. Any ``N``: the ragged last
tile is masked. ``causal`` keeps keys ``j <= i`` and skips the key blocks above the diagonal.
Each kernel's loop is split in two calls of one ``@triton.jit`` helper (``_fwd_tiles``...):
the tiles that need no mask, and the few that straddle the diagonal or the ragged end of
``N``, so that the masks cost nothing in the bulk of the work. Causal programs start with
the longest tiles. On the GPU every kernel is autotuned over ``AUTOTUNE_CONFIGS``.

Two ways to run the same kernels: compiled for a CUDA device (``interpret=False``), or
through Triton's interpreter on CPU tensors (``interpret=True``), which executes the kernel
body with NumPy, one program at a time. The interpreter is normally switched on by
``TRITON_INTERPRET=1`` *before* triton is imported; ``interpreted`` instead wraps a
kernel at call time, so one process can use both, and the environment variable is not
needed. NumPy has no bfloat16, so the interpreter's ``tl.dot`` cannot multiply bfloat16
blocks: ``attnkit.flash.api`` runs bfloat16 inputs through the interpreter in float32.
"""

# No ``from __future__ import annotations`` here: the interpreters of Triton < 3.7 find the
# ``tl.constexpr`` parameters by their annotation objects, and string annotations hide them.
import contextlib
import sys
from collections.abc import Iterator

import torch
import triton
import triton.language as tl
from triton.runtime.jit import JITFunction

__all__ = ["AUTOTUNE_CONFIGS", "attn_backward", "attn_forward", "compile_for_gpu", "interpreted", "kernel_config",
           "tuned_configs"]

LOG2E = 1.4426950408889634  # log2(e): exp(x) = exp2(x * log2 e)


@triton.jit
def _fwd_tiles(acc, l_i, m_i, q, K, V, base, offs_m, lo, hi, N, qk_scale,
               HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr,
               PRECISION: tl.constexpr):
    """Stream key/value blocks ``[lo, hi)`` past one query tile; ``MASKED`` tiles apply the causal and ragged masks."""
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        kT_ptrs = K + base + cols[None, :] * HEAD_DIM + offs_d[:, None]    # (d, BLOCK_N): k transposed
        v_ptrs = V + base + cols[:, None] * HEAD_DIM + offs_d[None, :]     # (BLOCK_N, d)
        if MASKED:
            kT = tl.load(kT_ptrs, mask=cols[None, :] < N, other=0.0)
            v = tl.load(v_ptrs, mask=cols[:, None] < N, other=0.0)
        else:
            kT = tl.load(kT_ptrs)
            v = tl.load(v_ptrs)
        # raw scores q k^T: (BLOCK_M, BLOCK_N); in log2 units they are s * qk_scale (qk_scale = scale * log2 e)
        s = tl.dot(q, kT, input_precision=PRECISION)
        if MASKED:
            keep = cols[None, :] < N
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= cols[None, :])
            s = tl.where(keep, s, float("-inf"))
        # -- update m_i and l_i: m_new = max(m_i, rowmax s); l_i = l_i * 2^(m_i - m_new) + rowsum p
        m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)    # scale the row max, not the whole tile
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s * qk_scale - m_new[:, None])          # one fused multiply-add per score
        l_i = l_i * alpha + tl.sum(p, 1)
        # -- rescale acc and add p v
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _attn_fwd(Q, K, V, O, LSE, N, qk_scale,
              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              CAUSAL: tl.constexpr, PRECISION: tl.constexpr):
    # -- phase 0: which tile this program owns: query rows [start_m*BLOCK_M, +BLOCK_M) of one (batch, head)
    if CAUSAL:  # tile costs grow along the diagonal: launch the longest first, so the short ones fill the tail
        start_m = tl.num_programs(0) - 1 - tl.program_id(0)
    else:
        start_m = tl.program_id(0)
    off_bh = tl.program_id(1).to(tl.int64)
    base = off_bh * N * HEAD_DIM                      # the (N, d) slice of this (batch, head)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < N                               # the ragged last tile has rows past N
    # -- phase 1: load q: stays in SRAM; m_i, l_i, acc live in registers
    q = tl.load(Q + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)   # running max (log2 units)
    l_i = tl.zeros([BLOCK_M], tl.float32)                 # running sum of exp2(s - m_i)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)       # running sum of exp2(s - m_i) v
    # key blocks [0, full) need no mask; [full, hi) straddle the diagonal or the ragged end of N.
    # causal: key blocks past the diagonal are skipped, never loaded
    if CAUSAL:
        full = (start_m * BLOCK_M) // BLOCK_N * BLOCK_N
        hi = tl.minimum((start_m + 1) * BLOCK_M, N)
    else:
        full = (N // BLOCK_N) * BLOCK_N
        hi = N
    # -- phase 2: stream key/value blocks through SRAM, the unmasked ones first
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, K, V, base, offs_m, 0, full, N, qk_scale,
                               HEAD_DIM, BLOCK_N, False, CAUSAL, PRECISION)
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, K, V, base, offs_m, full, hi, N, qk_scale,
                               HEAD_DIM, BLOCK_N, True, CAUSAL, PRECISION)
    # -- epilogue: o = acc / l_i; lse = (m_i + log2 l_i) * ln 2, in natural units
    acc = acc / l_i[:, None]
    tl.store(O + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], acc.to(O.dtype.element_ty),
             mask=row_ok[:, None])
    tl.store(LSE + off_bh * N + offs_m, (m_i + tl.log2(l_i)) * 0.6931471805599453, mask=row_ok)


@triton.jit
def _dkdv_tiles(dk, dv, k, v, Q, DO, LSE, DELTA, base, off_bh, offs_n, lo, hi, N, qk_scale,
                HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr,
                PRECISION: tl.constexpr):
    """Stream query blocks ``[lo, hi)`` past one key tile, accumulating its ``dk`` and ``dv``."""
    offs_m0 = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + offs_m0
        qT_ptrs = Q + base + offs_m[None, :] * HEAD_DIM + offs_d[:, None]   # (d, BLOCK_M): q transposed
        do_ptrs = DO + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]  # (BLOCK_M, d)
        if MASKED:
            qT = tl.load(qT_ptrs, mask=offs_m[None, :] < N, other=0.0)
            do = tl.load(do_ptrs, mask=offs_m[:, None] < N, other=0.0)
            lse = tl.load(LSE + off_bh * N + offs_m, mask=offs_m < N, other=0.0)
            delta = tl.load(DELTA + off_bh * N + offs_m, mask=offs_m < N, other=0.0)
        else:
            qT = tl.load(qT_ptrs)
            do = tl.load(do_ptrs)
            lse = tl.load(LSE + off_bh * N + offs_m)
            delta = tl.load(DELTA + off_bh * N + offs_m)
        # recompute p^T = exp(s^T - lse): (BLOCK_N, BLOCK_M)
        sT = tl.dot(k, qT, input_precision=PRECISION) * qk_scale
        pT = tl.exp2(sT - lse[None, :] * 1.4426950408889634)
        if MASKED:
            keep = offs_m[None, :] < N
            if CAUSAL:
                keep = keep & (offs_m[None, :] >= offs_n[:, None])
            pT = tl.where(keep, pT, 0.0)
        # dv += p^T do
        dv = tl.dot(pT.to(do.dtype), do, dv, input_precision=PRECISION)
        # dp^T = v do^T;  ds^T = p^T * (dp^T - delta)
        dpT = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        dsT = pT * (dpT - delta[None, :])
        # dk += ds^T q   (the softmax scale is applied once, in the epilogue)
        dk = tl.dot(dsT.to(qT.dtype), tl.trans(qT), dk, input_precision=PRECISION)
    return dk, dv


@triton.jit
def _attn_bwd_dkdv(Q, K, V, DO, LSE, DELTA, DK, DV, N, qk_scale, sm_scale,
                   HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   CAUSAL: tl.constexpr, PRECISION: tl.constexpr):
    # -- phase 0: this program owns key rows [start_n, start_n + BLOCK_N) of one (batch, head)
    start_n = tl.program_id(0) * BLOCK_N
    off_bh = tl.program_id(1).to(tl.int64)
    base = off_bh * N * HEAD_DIM
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    col_ok = offs_n < N
    # -- phase 1: load k, v: stay in SRAM; dk, dv accumulate in registers
    k = tl.load(K + base + offs_n[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)
    v = tl.load(V + base + offs_n[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    # query blocks: [lo, full) straddle the diagonal (causal: queries i < start_n are skipped),
    # [full, tail) need no mask, [tail, N) is the ragged end
    tail = (N // BLOCK_M) * BLOCK_M
    if CAUSAL:
        lo = (start_n // BLOCK_M) * BLOCK_M
        full = tl.minimum(tl.cdiv(start_n + BLOCK_N, BLOCK_M) * BLOCK_M, N)
    else:
        lo = 0
        full = 0
    # -- phase 2: stream query blocks, recomputing p^T tile by tile
    dk, dv = _dkdv_tiles(dk, dv, k, v, Q, DO, LSE, DELTA, base, off_bh, offs_n, lo, full, N, qk_scale,
                         HEAD_DIM, BLOCK_M, True, CAUSAL, PRECISION)
    dk, dv = _dkdv_tiles(dk, dv, k, v, Q, DO, LSE, DELTA, base, off_bh, offs_n, full, tail, N, qk_scale,
                         HEAD_DIM, BLOCK_M, False, CAUSAL, PRECISION)
    dk, dv = _dkdv_tiles(dk, dv, k, v, Q, DO, LSE, DELTA, base, off_bh, offs_n, tl.maximum(full, tail), N, N,
                         qk_scale, HEAD_DIM, BLOCK_M, True, CAUSAL, PRECISION)
    # -- epilogue: write dk (times the softmax scale) and dv
    out = base + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
    tl.store(DK + out, (dk * sm_scale).to(DK.dtype.element_ty), mask=col_ok[:, None])
    tl.store(DV + out, dv.to(DV.dtype.element_ty), mask=col_ok[:, None])


@triton.jit
def _dq_tiles(dq, q, do, lse, delta, K, V, base, offs_m, lo, hi, N, qk_scale,
              HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr,
              PRECISION: tl.constexpr):
    """Stream key/value blocks ``[lo, hi)`` past one query tile, accumulating its ``dq``."""
    offs_n0 = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + offs_n0
        kT_ptrs = K + base + offs_n[None, :] * HEAD_DIM + offs_d[:, None]   # (d, BLOCK_N)
        vT_ptrs = V + base + offs_n[None, :] * HEAD_DIM + offs_d[:, None]   # (d, BLOCK_N)
        if MASKED:
            kT = tl.load(kT_ptrs, mask=offs_n[None, :] < N, other=0.0)
            vT = tl.load(vT_ptrs, mask=offs_n[None, :] < N, other=0.0)
        else:
            kT = tl.load(kT_ptrs)
            vT = tl.load(vT_ptrs)
        # recompute p = exp(s - lse): (BLOCK_M, BLOCK_N)
        s = tl.dot(q, kT, input_precision=PRECISION) * qk_scale
        p = tl.exp2(s - lse[:, None] * 1.4426950408889634)
        if MASKED:
            keep = offs_n[None, :] < N
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= offs_n[None, :])
            p = tl.where(keep, p, 0.0)
        # dp = do v^T;  ds = p * (dp - delta);  dq += ds k
        dp = tl.dot(do, vT, input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(kT.dtype), tl.trans(kT), dq, input_precision=PRECISION)
    return dq


@triton.jit
def _attn_bwd_dq(Q, K, V, DO, LSE, DELTA, DQ, N, qk_scale, sm_scale,
                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 CAUSAL: tl.constexpr, PRECISION: tl.constexpr):
    # -- phase 0: this program owns query rows [start_m, start_m + BLOCK_M) of one (batch, head)
    if CAUSAL:  # the longest tiles first, as in the forward
        start_m = (tl.num_programs(0) - 1 - tl.program_id(0)) * BLOCK_M
    else:
        start_m = tl.program_id(0) * BLOCK_M
    off_bh = tl.program_id(1).to(tl.int64)
    base = off_bh * N * HEAD_DIM
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < N
    # -- phase 1: load q, do, lse, delta: stay in SRAM; dq accumulates in registers
    rows = base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    q = tl.load(Q + rows, mask=row_ok[:, None], other=0.0)
    do = tl.load(DO + rows, mask=row_ok[:, None], other=0.0)
    lse = tl.load(LSE + off_bh * N + offs_m, mask=row_ok, other=0.0)
    delta = tl.load(DELTA + off_bh * N + offs_m, mask=row_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    # key blocks [0, full) need no mask; [full, hi) straddle the diagonal or the ragged end
    if CAUSAL:
        full = start_m // BLOCK_N * BLOCK_N
        hi = tl.minimum(start_m + BLOCK_M, N)
    else:
        full = (N // BLOCK_N) * BLOCK_N
        hi = N
    # -- phase 2: stream key/value blocks, recomputing p tile by tile
    dq = _dq_tiles(dq, q, do, lse, delta, K, V, base, offs_m, 0, full, N, qk_scale,
                   HEAD_DIM, BLOCK_N, False, CAUSAL, PRECISION)
    dq = _dq_tiles(dq, q, do, lse, delta, K, V, base, offs_m, full, hi, N, qk_scale,
                   HEAD_DIM, BLOCK_N, True, CAUSAL, PRECISION)
    # -- epilogue: write dq times the softmax scale
    tl.store(DQ + rows, (dq * sm_scale).to(DQ.dtype.element_ty), mask=row_ok[:, None])


# ---------------------------------------------------------------------------------------------
# launching: compiled on CUDA (autotuned), or through the interpreter on CPU


def _index(self: object) -> int:
    # a scalar is a 1-element array in the interpreter; int() of a 1-D array is an error in NumPy >= 2.4
    return int(self.handle.data.reshape(-1)[0])


@contextlib.contextmanager
def _interpreter_language() -> Iterator[None]:
    """Run one interpreted launch without leaving a trace on ``triton.language``.

    1. Make the jit helpers the kernels call (``tl.max``, ``tl.sum``, ``_fwd_tiles``...)
       interpretable. With ``TRITON_INTERPRET=1`` at import they already are; otherwise they are
       compiled-only ``JITFunction`` objects that refuse to be called from Python: swap in
       interpreted versions, in ``triton.language`` and in this module.
    2. The interpreter patches ``triton.language`` while it runs, and the versions before
       Triton 3.7 leave some of those patches behind when a kernel calls a helper, which breaks
       the next *compiled* launch in the same process: snapshot the namespaces it touches and
       restore them afterwards.
    3. Those versions also turn loop bounds into ints in a way NumPy >= 2.4 rejects: their
       ``tensor.__index__`` is replaced by one that works with any NumPy.
    """
    from triton.runtime import interpreter
    from triton.runtime.interpreter import InterpretedFunction

    this = sys.modules[__name__]
    before = [(space, dict(vars(space))) for space in (tl, tl.core, tl.math, tl.core.tensor, this)]
    patch_tensor = interpreter._patch_lang_tensor

    def _patch_lang_tensor(tensor: type, *scope: object) -> None:
        patch_tensor(tensor, *scope)
        if scope:
            scope[0].set_attr(tensor, "__index__", _index)
        else:
            tensor.__index__ = _index

    try:
        for space in (tl, this):
            for name, obj in list(vars(space).items()):
                if isinstance(obj, JITFunction):
                    setattr(space, name, InterpretedFunction(obj.fn))
        interpreter._patch_lang_tensor = _patch_lang_tensor
        yield
    finally:
        interpreter._patch_lang_tensor = patch_tensor
        for space, saved in before:
            # names the interpreter added to this module (its rewritten kernels use them) stay
            for name in set(vars(space)) - set(saved) if space is not this else ():
                delattr(space, name)
            for name, obj in saved.items():
                if vars(space).get(name) is not obj:
                    setattr(space, name, obj)


_INTERPRETED: dict[str, object] = {}


def interpreted(kernel: object) -> object:
    """The interpreted twin of a ``@triton.jit`` kernel (same source, run with NumPy on the CPU)."""
    from triton.runtime.interpreter import InterpretedFunction

    fn = getattr(kernel, "fn", kernel)
    if fn.__name__ not in _INTERPRETED:
        _INTERPRETED[fn.__name__] = InterpretedFunction(fn)
    return _INTERPRETED[fn.__name__]


def _launch(kernel: object, grid: tuple[int, int], args: tuple, meta: dict, interpret: bool) -> None:
    """Run ``kernel[grid](*args, **meta)``, compiled or interpreted."""
    if interpret:
        meta = {k: v for k, v in meta.items() if k not in ("num_warps", "num_stages")}
        with _interpreter_language():
            interpreted(kernel)[grid](*args, **meta)
    else:
        kernel[grid](*args, **meta)


# The tiles the GPU autotuner chooses from, per kernel: (BLOCK_M, BLOCK_N, num_warps, num_stages).
# Taller query tiles re-read K and V less often (see the chapter's traffic model); more stages keep
# more K, V tiles in flight; the last entry of each list has tiles small enough for float32.
AUTOTUNE_CONFIGS: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "fwd": ((128, 64, 4, 4), (128, 64, 8, 3), (128, 128, 8, 2), (128, 32, 4, 4), (64, 64, 4, 4), (64, 32, 4, 2)),
    "dkdv": ((32, 128, 4, 3), (32, 128, 8, 3), (64, 128, 8, 2), (32, 64, 4, 3), (16, 64, 4, 2)),
    "dq": ((128, 32, 4, 3), (128, 32, 8, 3), (128, 64, 8, 2), (64, 32, 4, 3), (64, 16, 4, 2)),
}
_KERNELS = {"fwd": _attn_fwd, "dkdv": _attn_bwd_dkdv, "dq": _attn_bwd_dq}
_GRID_ROWS = {"fwd": "BLOCK_M", "dkdv": "BLOCK_N", "dq": "BLOCK_M"}   # the tile each program owns


def _as_config(entry: tuple[int, int, int, int]) -> dict[str, int]:
    bm, bn, warps, stages = entry
    return {"BLOCK_M": bm, "BLOCK_N": bn, "num_warps": warps, "num_stages": stages}


_TUNERS: dict[str, object] = {}


def _tuned(name: str) -> object:
    """``triton.autotune`` around one kernel, made on first use: on the first launch for each
    (N, d, causal, dtypes) it times every entry of ``AUTOTUNE_CONFIGS[name]`` that compiles (tiles
    too large for shared memory are skipped) and keeps the fastest."""
    if name not in _TUNERS:
        configs = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
                   for bm, bn, w, s in AUTOTUNE_CONFIGS[name]]
        _TUNERS[name] = triton.autotune(configs=configs, key=["N", "HEAD_DIM", "CAUSAL"])(_KERNELS[name])
    return _TUNERS[name]


def tuned_configs() -> dict[str, dict[str, str]]:
    """What the autotuner chose so far in this process: ``{kernel: {"(N, d, causal, dtypes...)": config}}``."""
    return {name: {str(key): str(cfg) for key, cfg in tuner.cache.items()} for name, tuner in _TUNERS.items()}


def kernel_config(d: int, dtype: torch.dtype, interpret: bool) -> dict[str, dict[str, int]]:
    """Fixed block sizes, warps and pipeline stages for the three kernels (no autotuning).

    The interpreter gets 16 x 16 tiles (the smallest ``tl.dot`` accepts, so it runs fast).
    On the GPU, 16-bit inputs get tiles like those of Triton's tutorial for Hopper-class GPUs
    (entries of ``AUTOTUNE_CONFIGS``); float32 (for checking) gets the small tiles at the end
    of each list, so twice-as-wide elements still fit in SRAM.
    """
    if interpret:
        tile = {"BLOCK_M": 16, "BLOCK_N": 16}
        return {"fwd": dict(tile), "dkdv": dict(tile), "dq": dict(tile)}
    if dtype == torch.float32:
        return {name: _as_config(entries[-1]) for name, entries in AUTOTUNE_CONFIGS.items()}
    wide = 1 if d > 64 else 0   # d = 128: the entries with 8 warps
    return {name: _as_config(entries[wide]) for name, entries in AUTOTUNE_CONFIGS.items()}


_PTR_ARGS = {"Q", "K", "V", "O", "LSE", "DO", "DELTA", "DK", "DV", "DQ"}
_TRITON_TYPES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


def compile_for_gpu(d: int = 64, dtype: torch.dtype = torch.bfloat16, causal: bool = True, arch: int = 90,
                    even: bool = True, kernels: tuple[str, ...] = ("fwd", "dkdv", "dq"),
                    config: dict[str, dict[str, int]] | None = None) -> dict[str, dict[str, object]]:
    """Compile the kernels ahead of time for an NVIDIA architecture (90 = H100), without a GPU.

    Uses Triton's own compiler and the ``ptxas`` it ships, with the specialisation a launch on
    16-byte-aligned tensors gets (and ``N % 16 == 0`` if ``even``). ``config`` gives the tiles,
    warps and stages per kernel as ``kernel_config`` returns them (its choice by default).
    Returns, for each of ``kernels`` (``"fwd"``, ``"dkdv"``, ``"dq"``), the bytes of shared
    memory it needs, its PTX assembly and its launch configuration. Needs Triton >= 3.3 (the
    ``ASTSource`` API).
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if not isinstance(_attn_fwd, JITFunction):
        raise RuntimeError("compile_for_gpu cannot compile: TRITON_INTERPRET=1 was set when triton was imported, "
                           "so the kernels were built for the interpreter only")
    cfgs = config or kernel_config(d, dtype, interpret=False)
    out = {}
    for name in kernels:
        kernel = _KERNELS[name]
        cfg = dict(cfgs[name])
        opts = {"num_warps": cfg.pop("num_warps"), "num_stages": cfg.pop("num_stages")}
        consts = dict(HEAD_DIM=d, CAUSAL=causal, PRECISION=_precision(dtype), **cfg)
        sig, attrs = {}, {}
        for i, arg in enumerate(kernel.arg_names):
            if arg in consts:
                sig[arg] = "constexpr"
            elif arg in _PTR_ARGS:
                sig[arg] = "*fp32" if arg in ("LSE", "DELTA") else "*" + _TRITON_TYPES[dtype]
                attrs[(i,)] = [["tt.divisibility", 16]]
            elif arg == "N":
                sig[arg] = "i32"
                if even:
                    attrs[(i,)] = [["tt.divisibility", 16]]
            else:
                sig[arg] = "fp32"
        try:
            src = ASTSource(fn=kernel, signature=sig, constexprs=consts, attrs=attrs)
        except TypeError as err:  # older Triton: a different ahead-of-time API
            raise RuntimeError(f"compile_for_gpu needs Triton >= 3.3 ({err})") from None
        compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=opts)
        out[name] = {"shared_bytes": int(compiled.metadata.shared), "ptx": compiled.asm["ptx"], **opts, **cfg}
    return out


def _precision(dtype: torch.dtype) -> str:
    # float32 inputs: exact IEEE products (for checking); 16-bit inputs ignore this
    return "ieee" if dtype == torch.float32 else "tf32"


def _run(name: str, args: tuple, n: int, batch_heads: int, consts: dict, interpret: bool,
         config: dict | None) -> None:
    """Launch kernel ``name`` over ``n`` rows: autotuned when compiled without ``config``, else fixed tiles."""
    rows = _GRID_ROWS[name]
    if not interpret and config is None:
        _tuned(name)[lambda meta: (triton.cdiv(n, meta[rows]), batch_heads)](*args, **consts)
        return
    cfg = dict((config or kernel_config(consts["HEAD_DIM"], args[0].dtype, interpret))[name])
    _launch(_KERNELS[name], (triton.cdiv(n, cfg[rows]), batch_heads), args, {**consts, **cfg}, interpret)


def attn_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, sm_scale: float,
                 interpret: bool = False, config: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel: ``q, k, v: (B, H, N, d)`` contiguous -> ``(o: (B, H, N, d), lse: (B, H, N))``.

    ``config`` fixes the tiles (as ``kernel_config`` returns them); by default the compiled kernel
    is autotuned and the interpreter uses 16 x 16 tiles. No input checks here:
    ``attnkit.flash.api.flash_attention`` validates first.
    """
    B, H, N, d = q.shape
    o = torch.empty_like(q)
    lse = torch.empty((B, H, N), device=q.device, dtype=torch.float32)
    consts = dict(HEAD_DIM=d, CAUSAL=causal, PRECISION=_precision(q.dtype))
    _run("fwd", (q, k, v, o, lse, N, sm_scale * LOG2E), N, B * H, consts, interpret, config)
    return o, lse


def attn_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
                  do: torch.Tensor, causal: bool, sm_scale: float, interpret: bool = False,
                  config: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the backward kernels; returns ``(dq, dk, dv)``, each ``(B, H, N, d)`` like ``q``."""
    B, H, N, d = q.shape
    do = do.contiguous()
    # delta_i = sum_c dO_ic O_ic: (B, H, N), float32
    delta = (do.float() * o.float()).sum(-1).contiguous()
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    common = (N, sm_scale * LOG2E, sm_scale)
    consts = dict(HEAD_DIM=d, CAUSAL=causal, PRECISION=_precision(q.dtype))
    _run("dkdv", (q, k, v, do, lse, delta, dk, dv, *common), N, B * H, consts, interpret, config)
    _run("dq", (q, k, v, do, lse, delta, dq, *common), N, B * H, consts, interpret, config)
    return dq, dk, dv
