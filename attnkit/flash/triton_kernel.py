r"""Launching attnkit's Triton kernels: compiled on CUDA (autotuned), or through Triton's interpreter on CPU.

The kernels live in ``attnkit.flash.forward`` (output and log-sum-exp) and
``attnkit.flash.backward`` (a ``delta`` pre-pass, the main dQ/dK/dV kernel with five GEMMs per
tile, and the conversion of the float32 dQ accumulator); the tiles the autotuner chooses from
in ``attnkit.flash.autotune``. This module launches them and compiles them ahead of time.

Two ways to run the same kernels: compiled for a CUDA device (``interpret=False``), or through
Triton's interpreter on CPU tensors (``interpret=True``), which executes the kernel body with
NumPy, one program at a time. The interpreter is normally switched on by ``TRITON_INTERPRET=1``
*before* triton is imported; ``interpreted`` instead wraps a kernel at call time, so one process
can use both, and the environment variable is not needed. NumPy has no bfloat16, so the
interpreter cannot multiply bfloat16 blocks: ``attnkit.flash.api`` runs bfloat16 inputs through
the interpreter in float32.

``attnkit.flash.aot`` compiles the same kernels ahead of time, without a GPU, and reads what
``ptxas`` reports. No input checks here: ``attnkit.flash.api.flash_attention`` validates first.
"""

# No ``from __future__ import annotations``: see attnkit/flash/forward.py.
import contextlib
import os
import sys
from collections.abc import Iterator

import torch
import triton
from triton.runtime.jit import JITFunction

from attnkit.flash import autotune, backward, forward
from attnkit.flash.autotune import bucket
from attnkit.flash.backward import _attn_bwd, _bwd_dq_convert, _bwd_preprocess
from attnkit.flash.forward import LOG2E, _attn_fwd

try:  # host-side TMA descriptors (Triton >= 3.4)
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # pragma: no cover - older Triton: the pointer path only
    TensorDescriptor = None

__all__ = ["KERNELS", "attn_backward", "attn_forward", "interpreted", "kernel_config", "tma_available",
           "tuned_configs"]

KERNELS = {"fwd": _attn_fwd, "bwd": _attn_bwd, "bwd_pre": _bwd_preprocess, "bwd_dq": _bwd_dq_convert}
_GRID_ROWS = {"fwd": "BLOCK_M", "bwd": "BLOCK_N"}     # the tile each program owns
_MODULES = (forward, backward)                         # where the @triton.jit functions live


# ---------------------------------------------------------------------------------------------
# the interpreter


def _index(self: object) -> int:
    # a scalar is a 1-element array in the interpreter; int() of a 1-D array is an error in NumPy >= 2.4
    return int(self.handle.data.reshape(-1)[0])


@contextlib.contextmanager
def _interpreter_language() -> Iterator[None]:
    """Run one interpreted launch without leaving a trace on ``triton.language``.

    1. Make the jit helpers the kernels call (``tl.max``, ``tl.sum``, ``_fwd_tiles``...)
       interpretable. With ``TRITON_INTERPRET=1`` at import they already are; otherwise they are
       compiled-only ``JITFunction`` objects that refuse to be called from Python: swap in
       interpreted versions, in ``triton.language`` and in the kernel modules.
    2. The interpreter patches ``triton.language`` while it runs, and the versions before
       Triton 3.7 leave some of those patches behind when a kernel calls a helper, which breaks
       the next *compiled* launch in the same process: snapshot the namespaces it touches and
       restore them afterwards.
    3. Those versions also turn loop bounds into ints in a way NumPy >= 2.4 rejects: their
       ``tensor.__index__`` is replaced by one that works with any NumPy.
    """
    import triton.language as tl
    from triton.runtime import interpreter
    from triton.runtime.interpreter import InterpretedFunction

    kernel_modules = (*_MODULES, sys.modules[__name__])
    before = [(space, dict(vars(space))) for space in (tl, tl.core, tl.math, tl.core.tensor, *kernel_modules)]
    patch_tensor = interpreter._patch_lang_tensor

    def _patch_lang_tensor(tensor: type, *scope: object) -> None:
        patch_tensor(tensor, *scope)
        if scope:
            scope[0].set_attr(tensor, "__index__", _index)
        else:
            tensor.__index__ = _index

    try:
        for space in (tl, *kernel_modules):
            for name, obj in list(vars(space).items()):
                if isinstance(obj, JITFunction):
                    setattr(space, name, InterpretedFunction(obj.fn))
        interpreter._patch_lang_tensor = _patch_lang_tensor
        yield
    finally:
        interpreter._patch_lang_tensor = patch_tensor
        for space, saved in before:
            # names the interpreter added to a kernel module (its rewritten kernels use them) stay
            for name in set(vars(space)) - set(saved) if space not in kernel_modules else ():
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


def _launch(name: str, grid: tuple[int, ...], args: tuple, meta: dict, interpret: bool) -> None:
    """Run ``KERNELS[name][grid](*args, **meta)``, compiled or interpreted."""
    kernel = KERNELS[name]
    if interpret:
        meta = {k: v for k, v in meta.items() if k not in ("num_warps", "num_stages")}
        with _interpreter_language():
            interpreted(kernel)[grid](*args, **meta)
    else:
        kernel[grid](*args, **meta)


# ---------------------------------------------------------------------------------------------
# tiles: fixed, or autotuned on the GPU


def kernel_config(d: int, dtype: torch.dtype, interpret: bool) -> dict[str, dict[str, int]]:
    """Fixed block sizes, warps and pipeline stages for the forward and backward kernels (no autotuning).

    The interpreter gets 16 x 16 tiles (the smallest ``tl.dot`` accepts, so it runs fast). On the
    GPU: the first entry of each ``autotune.AUTOTUNE_CONFIGS`` list for ``d``'s class; float32
    (for checking) the last, smallest one, so that twice-as-wide elements still fit.
    """
    if interpret:
        tile = {"BLOCK_M": 16, "BLOCK_N": 16}
        return {"fwd": dict(tile), "bwd": dict(tile)}
    pick = -1 if dtype == torch.float32 else 0
    return {name: autotune._as_config(autotune.AUTOTUNE_CONFIGS[name][autotune.d_class(d)][pick])
            for name in ("fwd", "bwd")}


_TUNERS: dict[tuple, object] = {}

# TMA: which tensors of each kernel become descriptors, and the tile (rows) of their block
_DESC_ROWS = {"fwd": {"Q": "BLOCK_M", "O": "BLOCK_M", "K": "BLOCK_N", "V": "BLOCK_N"},
              "bwd": {"Q": "BLOCK_M", "DO": "BLOCK_M", "K": "BLOCK_N", "V": "BLOCK_N", "DK": "BLOCK_N",
                      "DV": "BLOCK_N"}}


def tma_available(device: torch.device) -> bool:
    """Whether the compiled kernels can use TMA descriptors on ``device``: a CUDA GPU of compute
    capability >= 9 (Hopper) and a Triton with ``triton.tools.tensor_descriptor``; not if
    ``ATTNKIT_FLASH_TMA=0`` is set."""
    if os.environ.get("ATTNKIT_FLASH_TMA", "1") == "0" or TensorDescriptor is None or device.type != "cuda":
        return False
    return torch.cuda.get_device_capability(device)[0] >= 9


def _tma_aligned(*tensors: torch.Tensor) -> bool:
    """TMA needs a 16-byte-aligned base and positive strides that are multiples of 16 bytes (but the last)."""
    return all(t.data_ptr() % 16 == 0 and all(s > 0 and s * t.element_size() % 16 == 0 for s in t.stride()[:-1])
               for t in tensors)


def _block_shapes(name: str):
    """A pre-hook that gives each TMA descriptor of kernel ``name`` the block of the configuration being run."""
    def hook(nargs: dict) -> None:
        for arg, rows in _DESC_ROWS[name].items():
            if TensorDescriptor is not None and isinstance(nargs[arg], TensorDescriptor):
                nargs[arg].block_shape = [1, 1, nargs[rows], nargs["BLOCK_D"]]
    return hook


def _max_shared(device: torch.device) -> int:
    try:
        props = triton.runtime.driver.active.utils.get_device_properties(device.index or 0)
        return int(props["max_shared_mem"])
    except Exception:  # any driver without the query: an H100's opt-in limit
        return 227 * 1024


def _tuned(name: str, d: int, dtype: torch.dtype, device: torch.device, tma: bool) -> object:
    """``triton.autotune`` around one kernel, made on first use for each (kernel, head-dim class, dtype,
    device, TMA or not): its configurations are ``autotune.prune``'s, and it keys on the bucketed lengths,
    the head dim and the mask; the backward's dQ accumulator is zeroed before every trial."""
    key = (name, autotune.d_class(d), dtype, device, tma)
    if key not in _TUNERS:
        entries = autotune.prune(name, d, dtype, _max_shared(device))
        configs = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s,
                                 pre_hook=_block_shapes(name) if tma else None) for bm, bn, w, s in entries]
        _TUNERS[key] = triton.autotune(configs=configs, key=["LQ_BUCKET", "LK_BUCKET", "HEAD_DIM", "CAUSAL"],
                                       reset_to_zero=["DQ_ACC"] if name == "bwd" else None)(KERNELS[name])
    return _TUNERS[key]


def tuned_configs() -> dict[str, dict[str, str]]:
    """What the autotuner chose so far in this process: ``{kernel/class/dtype[/tma]: {"(key...)": config}}``."""
    return {f"{name}/d<={cls}/{str(dtype).removeprefix('torch.')}{'/tma' if tma else ''}":
            {str(k): str(c) for k, c in t.cache.items()} for (name, cls, dtype, _, tma), t in _TUNERS.items()}


def _precision(dtype: torch.dtype) -> str:
    # float32 inputs: exact IEEE products (for checking); 16-bit inputs ignore this
    return "ieee" if dtype == torch.float32 else "tf32"


def _use_tma(tma: bool | None, interpret: bool, name: str, d: int, *tensors: torch.Tensor) -> bool:
    if tma is None:   # automatic: compiled, on Hopper or later, with aligned strides, where the kernel has it
        return (not interpret and autotune.uses_tma(name, d) and tma_available(tensors[0].device)
                and _tma_aligned(*tensors))
    if tma and (TensorDescriptor is None or not _tma_aligned(*tensors)):
        raise ValueError("tma=True needs triton.tools.tensor_descriptor and 16-byte-aligned strides")
    return tma


def _run(name: str, kwargs: dict, rows: int, grid_rest: tuple[int, int], dtype: torch.dtype,
         device: torch.device, interpret: bool, config: dict | None, tma: bool) -> None:
    """Launch kernel ``name`` over ``rows`` rows: autotuned when compiled without ``config``, else fixed tiles.
    With ``tma``, the tensors of ``_DESC_ROWS[name]`` are passed as 4-D TMA descriptors."""
    if tma:
        kwargs = {**kwargs, **{arg: TensorDescriptor(t, list(t.shape), list(t.stride()), [1, 1, 16, 16])
                               for arg, t in kwargs.items() if arg in _DESC_ROWS[name]}}
    kwargs["TMA"] = tma
    tile = _GRID_ROWS[name]
    if not interpret and config is None:
        tuner = _tuned(name, kwargs["HEAD_DIM"], dtype, device, tma)
        tuner[lambda meta: (triton.cdiv(rows, meta[tile]), *grid_rest)](**kwargs)
        return
    cfg = dict((config or kernel_config(kwargs["HEAD_DIM"], dtype, interpret))[name])
    meta = {**kwargs, **cfg}
    _block_shapes(name)(meta)
    _launch(name, (triton.cdiv(rows, cfg[tile]), *grid_rest), (), meta, interpret)


def _like(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An empty tensor like ``t`` with ``t``'s memory layout when that has a unit last stride."""
    out = torch.empty_like(t, dtype=dtype)
    return out if out.stride(-1) == 1 else torch.empty(t.shape, dtype=dtype or t.dtype, device=t.device)


def _strides(prefix: str, t: torch.Tensor) -> dict[str, int]:
    """``{prefix+"b": stride(0), prefix+"h": stride(1), prefix+row: stride(2)}`` with the kernels' names."""
    row = {"sq": "m", "so": "m", "sdo": "m", "sdq": "m"}.get(prefix, "n")
    return {prefix + "b": t.stride(0), prefix + "h": t.stride(1), prefix + row: t.stride(2)}


def attn_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, sm_scale: float,
                 interpret: bool = False, config: dict | None = None,
                 tma: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel: ``q: (B, Hq, Lq, d)``, ``k, v: (B, Hkv, Lk, d)`` (unit last stride)
    -> ``(o: (B, Hq, Lq, d), lse: (B, Hq, Lq) float32)``.

    ``config`` fixes the tiles (as ``kernel_config`` returns them); by default the compiled kernel
    is autotuned and the interpreter uses 16 x 16 tiles. ``tma``: ``None`` uses TMA descriptors
    where ``tma_available`` and the strides allow, ``True`` forces them (the interpreter runs them
    too), ``False`` uses pointers.
    """
    B, Hq, Lq, d = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    o = _like(q)
    lse = torch.empty((B, Hq, Lq), device=q.device, dtype=torch.float32)
    use_tma = _use_tma(tma, interpret, "fwd", d, q, k, v, o)
    kwargs = dict(Q=q, K=k, V=v, O=o, LSE=lse, **_strides("sq", q), **_strides("sk", k), **_strides("sv", v),
                  **_strides("so", o), H=Hq, GROUP=Hq // Hkv, Lq=Lq, Lk=Lk, qk_scale=sm_scale * LOG2E,
                  LQ_BUCKET=bucket(Lq), LK_BUCKET=bucket(Lk), HEAD_DIM=d, BLOCK_D=autotune.block_d(d),
                  CAUSAL=causal, PRECISION=_precision(q.dtype))
    _run("fwd", kwargs, Lq, (Hq, B), q.dtype, q.device, interpret, config, use_tma)
    return o, lse


def attn_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
                  do: torch.Tensor, causal: bool, sm_scale: float, dlse: torch.Tensor | None = None,
                  interpret: bool = False, config: dict | None = None,
                  tma: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the three backward kernels; returns ``(dq, dk, dv)`` shaped like ``q, k, v``.

    ``dlse: (B, Hq, Lq)``, the gradient of the returned log-sum-exp, if the caller used it;
    ``config`` and ``tma`` as for ``attn_forward``.
    """
    B, Hq, Lq, d = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    if do.stride(-1) != 1:
        do = do.contiguous()
    bd = autotune.block_d(d)
    delta = torch.empty((B, Hq, Lq), device=q.device, dtype=torch.float32)
    dq_acc = torch.empty((B, Hq, Lq, d), device=q.device, dtype=torch.float32)   # zeroed by the pre-pass
    dq, dk, dv = _like(q), _like(k), _like(v)
    rows_pre = 16 if interpret else (64 if bd <= 128 else 32)
    pre_grid = (triton.cdiv(Lq, rows_pre), Hq, B)
    has_dlse = dlse is not None
    dlse_arg = dlse.float().contiguous() if has_dlse else delta
    # 1. delta = rowsum(dO * O) - dLSE; dq_acc = 0
    _launch("bwd_pre", pre_grid, (o, do, dlse_arg, delta, dq_acc, *o.stride()[:3], *do.stride()[:3], Hq, Lq),
            dict(HEAD_DIM=d, BLOCK_D=bd, BLOCK_M=rows_pre, HAS_DLSE=has_dlse, num_warps=4), interpret)
    # 2. dk, dv per key block; dq accumulated with float32 atomics
    use_tma = _use_tma(tma, interpret, "bwd", d, q, k, v, do, dk, dv)
    kwargs = dict(Q=q, K=k, V=v, DO=do, LSE=lse, DELTA=delta, DQ_ACC=dq_acc, DK=dk, DV=dv,
                  **_strides("sq", q), **_strides("sk", k), **_strides("sv", v), **_strides("sdo", do),
                  **_strides("sdk", dk), **_strides("sdv", dv), H=Hq, GROUP=Hq // Hkv, Lq=Lq, Lk=Lk,
                  qk_scale=sm_scale * LOG2E, sm_scale=sm_scale, LQ_BUCKET=bucket(Lq), LK_BUCKET=bucket(Lk),
                  HEAD_DIM=d, BLOCK_D=bd, CAUSAL=causal, PRECISION=_precision(q.dtype))
    _run("bwd", kwargs, Lk, (Hkv, B), q.dtype, q.device, interpret, config, use_tma)
    # 3. dq = dq_acc * scale, in q's dtype
    _launch("bwd_dq", pre_grid, (dq_acc, dq, *dq.stride()[:3], Hq, Lq, sm_scale),
            dict(HEAD_DIM=d, BLOCK_D=bd, BLOCK_M=rows_pre, num_warps=4), interpret)
    return dq, dk, dv


def __getattr__(name: str) -> object:
    # the ahead-of-time helpers live in attnkit.flash.aot (imported lazily: aot imports this module)
    if name in ("compile_for_gpu", "dots_per_loop", "ptxas_report", "ptxas_version"):
        from attnkit.flash import aot

        return getattr(aot, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
