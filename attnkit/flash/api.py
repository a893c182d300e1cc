r"""``flash_attention(q, k, v, causal=False, softmax_scale=None, return_lse=False, backend="auto")``.

One ``torch.autograd.Function`` in front of three implementations of the same tiled
algorithm:

- ``"triton"``: the compiled Triton kernels of ``attnkit.flash.forward`` and
  ``attnkit.flash.backward``, launched by ``attnkit.flash.triton_kernel`` (CUDA tensors);
- ``"interpret"``: the same kernels run by Triton's interpreter (CPU tensors; slow, for
  learning and testing without a GPU);
- ``"reference"``: the blocked NumPy algorithm of ``attnkit.flash.online_softmax``, in
  float64 (any device; needs no Triton).

``"auto"`` picks ``"triton"`` for CUDA tensors when Triton is installed, ``"reference"``
otherwise. Triton is imported only when a Triton backend is asked for, so this module works
where Triton is not installed (it exists for Linux only).
"""

from __future__ import annotations

import importlib.util
import math
import warnings

import numpy as np
import torch

from attnkit._checks import check_positive, check_same_dtype_device, check_tensor, shape_str
from attnkit.flash.online_softmax import flash_backward_np, flash_forward_np

__all__ = ["BACKENDS", "DTYPES", "MAX_HEAD_DIM", "MIN_HEAD_DIM", "MIN_TRITON_INTERPRETER", "FlashAttentionFunction",
           "flash_attention", "flash_attention_forward", "interpreter_available", "triton_available",
           "triton_version"]

BACKENDS = ("auto", "triton", "interpret", "reference")
MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 256   # any d in between: the tile is padded to the next power of two
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_GRID = 65535                       # the kernels put heads and batch on the grid's second and third axes
MAX_ROW_OFFSET = 2 ** 31               # row offsets inside one (batch, head) are 32-bit in the kernels
# The interpreters of Triton 3.0 and 3.1 compute wrong numbers here (measured with torch 2.13 and
# NumPy 2.4: even a lone 16 x 16 tl.dot is off by 1e34); those of 3.2 to 3.9 match float64.
MIN_TRITON_INTERPRETER = (3, 2)


def triton_available() -> bool:
    """Whether the ``triton`` package can be imported (Linux only)."""
    return importlib.util.find_spec("triton") is not None


def triton_version() -> tuple[int, int] | None:
    """``(major, minor)`` of the installed Triton, or ``None`` where it is not installed."""
    if not triton_available():
        return None
    import triton

    major, minor = triton.__version__.split(".")[:2]
    return int(major), int(minor)


def interpreter_available() -> bool:
    """Whether ``backend="interpret"`` can run here: Triton >= ``MIN_TRITON_INTERPRETER`` is installed."""
    version = triton_version()
    return version is not None and version >= MIN_TRITON_INTERPRETER


def _kernels():
    try:
        from attnkit.flash import triton_kernel
    except ImportError as err:  # pragma: no cover - exercised only where triton is missing
        raise RuntimeError(f"this backend needs the triton package, which could not be imported ({err}); "
                           "use backend='reference'") from None
    return triton_kernel


def _check(q: object, k: object, v: object, causal: object, softmax_scale: object, return_lse: object,
           backend: object) -> float:
    """Validate the inputs of ``flash_attention`` (before any Triton code runs); return the softmax scale."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, min_rank=4, shape="(B, H, L, d)")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (B, H, L, d) (batch, heads, positions, head dim); "
                             f"got shape {shape_str(t)}")
    check_same_dtype_device(q=q, k=k, v=v)
    if q.dtype not in DTYPES:
        raise TypeError(f"q, k, v must be float16, bfloat16 or float32; got dtype {q.dtype}")
    if q.device.type not in ("cpu", "cuda"):
        raise ValueError(f"q, k, v must be on a CPU or CUDA device; got {q.device}")
    B, Hq, _, d = q.shape
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape (B, Hkv, Lk, d); got k: {shape_str(k)}, "
                         f"v: {shape_str(v)}")
    if k.shape[0] != B or k.shape[3] != d:
        raise ValueError(f"k and v must have q's batch size and head dim: q (B, Hq, Lq, d) = {shape_str(q)}, "
                         f"k (B, Hkv, Lk, d) = {shape_str(k)}")
    Hkv = k.shape[1]
    if Hkv == 0 or Hq % Hkv:
        raise ValueError(f"the query heads must split evenly among the K/V heads (Hq % Hkv == 0, GQA/MQA); "
                         f"got Hq = {Hq} (q: {shape_str(q)}) and Hkv = {Hkv} (k: {shape_str(k)})")
    if not MIN_HEAD_DIM <= d <= MAX_HEAD_DIM:
        raise ValueError(f"head dim d = q.shape[-1] must be between {MIN_HEAD_DIM} and {MAX_HEAD_DIM}; "
                         f"got {d} (q: {shape_str(q)})")
    if max(B, Hq) > MAX_GRID:
        raise ValueError(f"batch and heads must be at most {MAX_GRID} each; got q: {shape_str(q)}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.stride(-1) != 1:
            raise ValueError(f"{name} must have a unit stride in its last (head-dim) dimension; got strides "
                             f"{t.stride()} for shape {shape_str(t)}. The other strides are free (a (B, L, H, d) "
                             f"tensor viewed as (B, H, L, d) by .transpose(1, 2) needs no copy); call "
                             f"{name}.contiguous() first")
        if t.shape[2] * t.stride(2) >= MAX_ROW_OFFSET:
            raise ValueError(f"{name}: positions x row stride = {t.shape[2]} x {t.stride(2)} must stay below 2^31 "
                             f"(32-bit row offsets in the kernels); got shape {shape_str(t)}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be True or False (a Python bool); got {causal!r} of type "
                        f"{type(causal).__module__}.{type(causal).__name__}")
    if not isinstance(return_lse, bool):
        raise TypeError(f"return_lse must be True or False (a Python bool); got {return_lse!r} of type "
                        f"{type(return_lse).__module__}.{type(return_lse).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if softmax_scale is None:
        return 1.0 / math.sqrt(d)
    return check_positive("softmax_scale", softmax_scale)


def _resolve(backend: str, device: torch.device) -> str:
    """The backend ``"auto"`` stands for, and a clear error for an impossible choice."""
    if backend == "auto":
        return "triton" if device.type == "cuda" and triton_available() else "reference"
    if backend == "triton" and device.type != "cuda":
        raise ValueError(f"backend='triton' compiles the kernel for a CUDA device; the inputs are on {device}. "
                         "Use backend='interpret' to run the same kernel on the CPU, or backend='reference'")
    if backend in ("triton", "interpret") and not triton_available():
        raise RuntimeError(f"backend={backend!r} needs the triton package (Linux only); use backend='reference'")
    if backend == "interpret" and not interpreter_available():
        import triton

        need = ".".join(map(str, MIN_TRITON_INTERPRETER))
        raise RuntimeError(f"backend='interpret' needs Triton >= {need}, whose interpreter runs these kernels "
                           f"correctly; this is Triton {triton.__version__}. Upgrade triton or use "
                           "backend='reference'")
    return backend


# ---------------------------------------------------------------------------------------------
# the reference backend: the square, single-head NumPy functions of online_softmax, fed the general
# shapes (GQA by repeating K/V, which only a reference may do; Lq != Lk by padding or slicing queries)


def _to_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _from_np(a: np.ndarray, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=like.device, dtype=dtype or like.dtype)


def _square_rows(lq: int, lk: int, causal: bool) -> list[tuple[int, int, int]]:
    """Cover the query rows that see a key by square problems of ``lk`` rows against all ``lk`` keys:
    ``(first query row, rows, offset in the square)``. Non-causal: chunks of ``lk`` rows. Causal
    (bottom-right, query i sees keys j <= i + lk - lq): query i is row i + lk - lq of one square."""
    if not causal:
        return [(i, min(lk, lq - i), 0) for i in range(0, lq, lk)]
    first = max(0, lq - lk)                    # rows before it see no key
    return [(first, lq - first, first + lk - lq)] if first < lq else []


def _reference_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                       scale: float) -> tuple[np.ndarray, np.ndarray]:
    B, Hq, Lq, d = q.shape
    group, lk = Hq // k.shape[1], k.shape[2]
    qn = _to_np(q)
    kn, vn = (np.repeat(_to_np(t), group, axis=1) for t in (k, v))       # (B, Hq, Lk, d)
    o, lse = np.zeros((B, Hq, Lq, d)), np.full((B, Hq, Lq), -np.inf)
    for row, rows, at in _square_rows(Lq, lk, causal):
        qs = np.zeros((B, Hq, lk, d))                                      # (B, Hq, Lk, d): padded queries
        qs[..., at:at + rows, :] = qn[..., row:row + rows, :]
        os_, lses = flash_forward_np(qs, kn, vn, causal, scale)
        o[..., row:row + rows, :] = os_[..., at:at + rows, :]
        lse[..., row:row + rows] = lses[..., at:at + rows]
    return o, lse


def _reference_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
                        do: torch.Tensor, dlse: torch.Tensor | None, causal: bool,
                        scale: float) -> tuple[np.ndarray, ...]:
    B, Hq, Lq, d = q.shape
    Hkv, lk = k.shape[1], k.shape[2]
    group = Hq // Hkv
    qn, on, lsen, don = _to_np(q), _to_np(o), _to_np(lse), _to_np(do)
    dl = _to_np(dlse) if dlse is not None else np.zeros((B, Hq, Lq))
    kn = np.repeat(_to_np(k), group, axis=1)
    # an extra column carries the log-sum-exp's gradient: v' = [v, 0], o' = [o, -dlse], do' = [do, 1] give
    # rowsum(do' o') = delta - dlse and do' v'^T = do v^T, which is how dlse enters ds
    vn = np.concatenate([np.repeat(_to_np(v), group, axis=1), np.zeros((B, Hq, lk, 1))], -1)
    on = np.concatenate([on, -dl[..., None]], -1)
    don = np.concatenate([don, np.ones((B, Hq, Lq, 1))], -1)
    dq, dk, dv = np.zeros((B, Hq, Lq, d)), np.zeros((B, Hq, lk, d)), np.zeros((B, Hq, lk, d + 1))
    for row, rows, at in _square_rows(Lq, lk, causal):
        pad = [np.zeros((B, Hq, lk, w)) for w in (d, d + 1, d + 1)]        # padded rows: do' = 0, no gradient
        qs, os_, dos = pad
        lses = np.zeros((B, Hq, lk))
        for dst, src in ((qs, qn), (os_, on), (dos, don)):
            dst[..., at:at + rows, :] = src[..., row:row + rows, :]
        lses[..., at:at + rows] = lsen[..., row:row + rows]
        gq, gk, gv = flash_backward_np(qs, kn, vn, os_, lses, dos, causal, scale)
        dq[..., row:row + rows, :] = gq[..., at:at + rows, :]
        dk += gk
        dv += gv
    # the group's query heads share one K/V head: sum their gradients
    dk = dk.reshape(B, Hkv, group, lk, d).sum(2)                          # (B, Hkv, Lk, d)
    dv = dv[..., :d].reshape(B, Hkv, group, lk, d).sum(2)                 # (B, Hkv, Lk, d)
    return dq, dk, dv


# ---------------------------------------------------------------------------------------------
# dispatch


def _empty(q: torch.Tensor, k: torch.Tensor) -> bool:
    return q.numel() == 0 or k.shape[2] == 0


def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float,
             backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    if _empty(q, k):   # no query, or no key: every row sees no key -> zeros and lse = -inf
        return torch.zeros_like(q), torch.full(q.shape[:3], -math.inf, device=q.device)
    if backend == "reference":
        o, lse = _reference_forward(q, k, v, causal, scale)
        return _from_np(o, q), _from_np(lse, q, torch.float32)
    tk = _kernels()
    interpret = backend == "interpret"
    if interpret and q.dtype == torch.bfloat16:  # NumPy has no bfloat16: interpret in float32
        o, lse = tk.attn_forward(q.float(), k.float(), v.float(), causal, scale, interpret=True)
        return o.to(q.dtype), lse
    return tk.attn_forward(q, k, v, causal, scale, interpret=interpret)


def _check_determinism(backend: str) -> None:
    if backend == "triton" and torch.are_deterministic_algorithms_enabled():
        msg = ("flash_attention's backward adds the tiles' shares of dQ with float32 atomics, so dQ may differ in "
               "its last bits from run to run; torch.use_deterministic_algorithms(True) is set. Use "
               "backend='reference', or warn_only=True to accept it")
        if torch.is_deterministic_algorithms_warn_only_enabled():
            warnings.warn(msg, stacklevel=3)
        else:
            raise RuntimeError(msg)


def _backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
              do: torch.Tensor, dlse: torch.Tensor | None, causal: bool, scale: float,
              backend: str) -> tuple[torch.Tensor, ...]:
    if _empty(q, k):
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    if backend == "reference":
        grads = _reference_backward(q, k, v, o, lse, do, dlse, causal, scale)
        return tuple(_from_np(g, t) for g, t in zip(grads, (q, k, v)))
    _check_determinism(backend)
    tk = _kernels()
    interpret = backend == "interpret"
    if interpret and q.dtype == torch.bfloat16:
        grads = tk.attn_backward(q.float(), k.float(), v.float(), o.float(), lse, do.float(), causal, scale,
                                 dlse=dlse, interpret=True)
        return tuple(g.to(q.dtype) for g in grads)
    return tk.attn_backward(q, k, v, o, lse, do, causal, scale, dlse=dlse, interpret=interpret)


class _RefuseDoubleBackward(torch.autograd.Function):
    """Passes the gradients of ``flash_attention`` through unchanged; differentiating them again raises."""

    @staticmethod
    def forward(ctx, q, k, v, *grads):   # q, k, v only anchor the outputs to the graph
        return tuple(g.clone() for g in grads)

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError("flash_attention does not support double backward: its backward kernels are not "
                           "themselves differentiable, so the gradients it returned under create_graph=True "
                           "cannot be differentiated again (e.g. for a gradient penalty). Use attnkit.attend or "
                           "torch.nn.functional.scaled_dot_product_attention for higher-order gradients")


class FlashAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: the forward saves ``q, k, v, o`` and the log-sum-exp, never the ``(Lq, Lk)`` weights;
    the backward recomputes them tile by tile. Outputs ``(o, lse)``; both can carry gradients."""

    @staticmethod
    def forward(ctx, q, k, v, causal, scale, backend):
        """Run the forward kernel; save ``q, k, v``, the output and the log-sum-exp for the backward."""
        o, lse = _forward(q, k, v, causal, scale, backend)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale, ctx.backend = causal, scale, backend
        ctx.set_materialize_grads(False)
        return o, lse

    @staticmethod
    def backward(ctx, do, dlse):
        """Recompute the weights tile by tile and return ``(dq, dk, dv)`` (no gradient for the options)."""
        q, k, v, o, lse = ctx.saved_tensors
        if do is None and dlse is None:
            return None, None, None, None, None, None
        if do is None:
            do = torch.zeros_like(o)
        with torch.no_grad():
            dq, dk, dv = _backward(q, k, v, o, lse, do, dlse, ctx.causal, ctx.scale, ctx.backend)
        if torch.is_grad_enabled():   # create_graph=True: let these gradients refuse a second backward
            dq, dk, dv = _RefuseDoubleBackward.apply(q, k, v, dq, dk, dv)
        return dq, dk, dv, None, None, None


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    softmax_scale: float | None = None, return_lse: bool = False,
                    backend: str = "auto") -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Exact softmax attention computed tile by tile (FlashAttention); differentiable.

    Equivalent to::

        k = k.repeat_interleave(Hq // Hkv, dim=1)      # GQA / MQA (never done in memory)
        v = v.repeat_interleave(Hq // Hkv, dim=1)
        s = q @ k.transpose(-2, -1) * softmax_scale    # (B, Hq, Lq, Lk)
        if causal:                                     # bottom-right: j <= i + Lk - Lq
            s = s.masked_fill(~torch.ones(Lq, Lk, dtype=torch.bool).tril(Lk - Lq), -inf)
        lse = torch.logsumexp(s, dim=-1)               # (B, Hq, Lq)
        out = torch.softmax(s, dim=-1) @ v             # (B, Hq, Lq, d)

    without ever storing the ``(Lq, Lk)`` matrices, and with ``out = 0``, ``lse = -inf`` (not
    NaN) for a row that sees no key. For ``Lq == Lk`` and ``Hq == Hkv`` this is
    ``torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
    scale=softmax_scale)`` and ``attnkit.attend(q, k, v, mask=causal_mask(L) if causal else None)``.

    **Causal alignment differs from SDPA's when Lq != Lk.** SDPA's ``is_causal`` (and
    ``attnkit.masks.causal_mask``) align the mask top-left: query ``i`` sees keys ``j <= i``.
    Here, as in FlashAttention-2, it is aligned bottom-right: the *last* query sees every key,
    query ``i`` sees keys ``j <= i + Lk - Lq``. That is what decoding against a KV cache and
    chunked prefill need (the ``Lq`` new tokens are the last ``Lq`` positions of the sequence);
    with ``Lq > Lk`` the first ``Lq - Lk`` queries see no key.

    Args:
        q: queries ``(B, Hq, Lq, d)``; ``B`` batch, ``Hq`` query heads, ``Lq`` positions, ``d``
            head dim, any of 16 to 256 (the kernels pad the tile to the next power of two).
            float16, bfloat16 or float32. Any strides with a unit last stride: a ``(B, L, H, d)``
            buffer viewed as ``(B, H, L, d)`` by ``.transpose(1, 2)`` is read in place.
        k: keys ``(B, Hkv, Lk, d)`` with ``Hq % Hkv == 0``: query head ``h`` uses K/V head
            ``h // (Hq // Hkv)`` (grouped-query attention; ``Hkv = 1`` is multi-query). Same
            dtype and device as ``q``; strides as for ``q``.
        v: values ``(B, Hkv, Lk, d)``, like ``k``.
        causal: if ``True``, query ``i`` attends to keys ``j <= i + Lk - Lq`` only (bottom-right).
        softmax_scale: multiplies the scores; default ``1 / sqrt(d)``.
        return_lse: also return the log-sum-exp of each row (what merging partial attentions
            over key blocks needs); gradients flow through it too.
        backend: ``"auto"`` (compiled kernel on CUDA, NumPy reference elsewhere), ``"triton"``,
            ``"interpret"`` (the Triton kernel through Triton's interpreter, on CPU) or
            ``"reference"`` (the blocked NumPy algorithm, float64 inside).

    Returns:
        ``out: (B, Hq, Lq, d)`` in the dtype of ``q`` (with ``q``'s memory layout when it is
        dense); with ``return_lse``, ``(out, lse)``, ``lse: (B, Hq, Lq)`` float32 in natural log
        units, ``-inf`` for rows that see no key.

    Raises:
        TypeError: a non-tensor, an unsupported dtype, mixed dtypes, a non-bool ``causal`` or
            ``return_lse``.
        ValueError: not 4-D, mismatched batch or head dim, ``Hq`` not a multiple of ``Hkv``, a
            head dim outside 16..256, a non-unit last stride, mixed devices or a device other
            than CPU/CUDA, an unknown backend, ``"triton"`` on a CPU tensor, a bad scale.
        RuntimeError: a Triton backend where the triton package is missing; a second backward
            through the gradients (double backward is not supported); with
            ``torch.use_deterministic_algorithms(True)``, the compiled backward (its dQ uses
            float32 atomics).
    """
    scale = _check(q, k, v, causal, softmax_scale, return_lse, backend)
    out, lse = FlashAttentionFunction.apply(q, k, v, causal, scale, _resolve(backend, q.device))
    return (out, lse) if return_lse else out


def flash_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                            softmax_scale: float | None = None,
                            backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """The forward pass alone, without autograd: ``(out: (B, Hq, Lq, d), lse: (B, Hq, Lq))``.

    Arguments and errors as ``flash_attention``; ``flash_attention(..., return_lse=True)`` gives
    the same pair with gradients.
    """
    scale = _check(q, k, v, causal, softmax_scale, False, backend)
    with torch.no_grad():
        return _forward(q, k, v, causal, scale, _resolve(backend, q.device))
