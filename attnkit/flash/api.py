r"""``flash_attention(q, k, v, causal=False, softmax_scale=None, backend="auto")``: the public entry point.

One ``torch.autograd.Function`` in front of three implementations of the same tiled
algorithm:

- ``"triton"``: the compiled Triton kernels of ``attnkit.flash.triton_kernel`` (CUDA tensors);
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

import numpy as np
import torch

from attnkit._checks import check_positive, check_same_dtype_device, check_tensor, shape_str
from attnkit.flash.online_softmax import flash_backward_np, flash_forward_np

__all__ = ["BACKENDS", "DTYPES", "HEAD_DIMS", "MIN_TRITON_INTERPRETER", "FlashAttentionFunction", "flash_attention",
           "flash_attention_forward", "interpreter_available", "triton_available", "triton_version"]

BACKENDS = ("auto", "triton", "interpret", "reference")
HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_BATCH_HEADS = 65535  # the kernels put batch*heads on the second grid axis
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


def _check(q: object, k: object, v: object, causal: object, softmax_scale: object, backend: object) -> float:
    """Validate the inputs of ``flash_attention``; return the softmax scale."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, min_rank=4, shape="(batch, heads, N, d)")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (batch, heads, N, d); got shape {shape_str(t)}")
    check_same_dtype_device(q=q, k=k, v=v)
    if q.dtype not in DTYPES:
        raise TypeError(f"q, k, v must be float16, bfloat16 or float32; got dtype {q.dtype}")
    if not (q.shape == k.shape == v.shape):
        raise ValueError("q, k and v must have the same shape (batch, heads, N, d) (self-attention); "
                         f"got q: {shape_str(q)}, k: {shape_str(k)}, v: {shape_str(v)}")
    B, H, N, d = q.shape
    if d not in HEAD_DIMS:
        raise ValueError(f"head dim d = q.shape[-1] must be one of {HEAD_DIMS}; got {d} (q: {shape_str(q)})")
    if N == 0 or B * H == 0:
        raise ValueError(f"q must have at least one batch, head and position; got shape {shape_str(q)}")
    if B * H > MAX_BATCH_HEADS:
        raise ValueError(f"batch * heads must be at most {MAX_BATCH_HEADS}; got {B * H} (q: {shape_str(q)})")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous (shape {shape_str(t)}, strides {t.stride()}); "
                             f"call {name}.contiguous() first")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be True or False; got {type(causal).__name__}")
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


def _to_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _from_np(a: np.ndarray, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=like.device, dtype=dtype or like.dtype)


def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float,
             backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    if backend == "reference":
        o, lse = flash_forward_np(_to_np(q), _to_np(k), _to_np(v), causal, scale)
        return _from_np(o, q), _from_np(lse, q, torch.float32)
    tk = _kernels()
    interpret = backend == "interpret"
    if interpret and q.dtype == torch.bfloat16:  # NumPy has no bfloat16: interpret in float32
        o, lse = tk.attn_forward(q.float(), k.float(), v.float(), causal, scale, interpret=True)
        return o.to(q.dtype), lse
    return tk.attn_forward(q, k, v, causal, scale, interpret=interpret)


def _backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
              do: torch.Tensor, causal: bool, scale: float, backend: str) -> tuple[torch.Tensor, ...]:
    if backend == "reference":
        grads = flash_backward_np(_to_np(q), _to_np(k), _to_np(v), _to_np(o), _to_np(lse), _to_np(do),
                                  causal, scale)
        return tuple(_from_np(g, q) for g in grads)
    tk = _kernels()
    interpret = backend == "interpret"
    if interpret and q.dtype == torch.bfloat16:
        grads = tk.attn_backward(q.float(), k.float(), v.float(), o.float(), lse, do.float(), causal, scale,
                                 interpret=True)
        return tuple(g.to(q.dtype) for g in grads)
    return tk.attn_backward(q, k, v, o, lse, do, causal, scale, interpret=interpret)


class FlashAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: the forward saves ``q, k, v, o`` and the log-sum-exp, never the ``(N, N)`` weights;
    the backward recomputes them tile by tile."""

    @staticmethod
    def forward(ctx, q, k, v, causal, scale, backend):
        """Run the forward kernel; save ``q, k, v``, the output and the log-sum-exp for the backward."""
        o, lse = _forward(q, k, v, causal, scale, backend)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale, ctx.backend = causal, scale, backend
        return o

    @staticmethod
    def backward(ctx, do):
        """Recompute the weights tile by tile and return ``(dq, dk, dv)`` (no gradient for the options)."""
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, o, lse, do.contiguous(), ctx.causal, ctx.scale, ctx.backend)
        return dq, dk, dv, None, None, None


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    softmax_scale: float | None = None, backend: str = "auto") -> torch.Tensor:
    r"""Exact softmax attention computed tile by tile (FlashAttention); differentiable.

    Equivalent to::

        s = q @ k.transpose(-2, -1) * softmax_scale          # (B, H, N, N)
        s = s.masked_fill(~causal_mask(N), -inf)             # if causal: query i sees keys j <= i
        out = torch.softmax(s, dim=-1) @ v                   # (B, H, N, d)

    i.e. ``attnkit.attend(q, k, v, mask=causal_mask(N) if causal else None)`` for the default
    scale, and ``torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
    scale=softmax_scale)``, without ever storing the ``(N, N)`` matrices.

    Args:
        q: queries ``(B, H, N, d)``; ``B`` batch, ``H`` heads, ``N`` positions, ``d`` head dim
            (16, 32, 64 or 128). Contiguous, float16, bfloat16 or float32.
        k: keys ``(B, H, N, d)``, same shape, dtype and device as ``q``.
        v: values ``(B, H, N, d)``, likewise.
        causal: if ``True``, query ``i`` attends to keys ``j <= i`` only.
        softmax_scale: multiplies the scores; default ``1 / sqrt(d)``.
        backend: ``"auto"`` (compiled kernel on CUDA, NumPy reference elsewhere), ``"triton"``,
            ``"interpret"`` (the Triton kernel through Triton's interpreter, on CPU) or
            ``"reference"`` (the blocked NumPy algorithm, float64 inside).

    Returns:
        ``out: (B, H, N, d)``, the dtype and device of ``q``.

    Raises:
        TypeError: a non-tensor, an unsupported dtype, mixed dtypes, a non-bool ``causal``.
        ValueError: not 4-D, mismatched shapes, unsupported head dim, non-contiguous input,
            mixed devices, an unknown backend, ``"triton"`` on a CPU tensor, a bad scale.
        RuntimeError: a Triton backend where the triton package is missing.
    """
    scale = _check(q, k, v, causal, softmax_scale, backend)
    return FlashAttentionFunction.apply(q, k, v, causal, scale, _resolve(backend, q.device))


def flash_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                            softmax_scale: float | None = None,
                            backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """The forward pass alone, returning ``(out: (B, H, N, d), lse: (B, H, N))``.

    ``lse[b, h, i] = log sum_j exp(s_ij)`` (float32) is what the backward pass needs to
    recompute the weights; arguments and errors as ``flash_attention``. No gradient.
    """
    scale = _check(q, k, v, causal, softmax_scale, backend)
    with torch.no_grad():
        return _forward(q, k, v, causal, scale, _resolve(backend, q.device))
