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

``compile_for_gpu`` builds the kernels for an NVIDIA architecture without a GPU, with Triton's
compiler and the ``ptxas`` it ships, and reports what became of them: shared memory, the
intermediate languages (TTIR, TTGIR), the PTX, and, from ``ptxas -v``, registers and spills.
No input checks here: ``attnkit.flash.api.flash_attention`` validates first.
"""

# No ``from __future__ import annotations``: see attnkit/flash/forward.py.
import contextlib
import functools
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

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

__all__ = ["KERNELS", "attn_backward", "attn_forward", "compile_for_gpu", "dots_per_loop", "interpreted",
           "kernel_config", "ptxas_report", "ptxas_version", "tma_available", "tuned_configs"]

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


def _use_tma(tma: bool | None, interpret: bool, *tensors: torch.Tensor) -> bool:
    if tma is None:   # automatic: compiled, on Hopper or later, with aligned strides
        return not interpret and tma_available(tensors[0].device) and _tma_aligned(*tensors)
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
    use_tma = _use_tma(tma, interpret, q, k, v, o)
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
    use_tma = _use_tma(tma, interpret, q, k, v, do, dk, dv)
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


# ---------------------------------------------------------------------------------------------
# ahead-of-time compilation and ptxas


_PTR_ARGS = {"Q", "K", "V", "O", "DO", "DK", "DV", "DQ"}
_F32_PTRS = {"LSE", "DELTA", "DQ_ACC", "DLSE"}
_TRITON_TYPES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


def _ptxas(arch: int) -> list[str]:
    """The ptxas binaries Triton ships, the one its compiler uses for ``arch`` first."""
    from triton.backends.nvidia import compiler

    first = compiler.get_ptxas(arch).path
    here = Path(first).parent
    return [first, *(str(p) for p in sorted(here.glob("ptxas*")) if str(p) != first)]


@functools.lru_cache
def ptxas_version(arch: int = 90) -> str:
    """``"<name> <release>"`` of the ptxas Triton uses for ``arch`` (e.g. ``ptxas-blackwell 13.4``)."""
    path = _ptxas(arch)[0]
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    release = re.search(r"release ([\d.]+)", out)
    return f"{Path(path).name} {release.group(1) if release else '?'}"


def ptxas_report(ptx: str, arch: int = 90) -> dict[str, object]:
    """Assemble ``ptx`` with ``ptxas -v`` (Triton's own flags) and read what it reports.

    Returns ``{"registers", "spill_stores", "spill_loads", "stack", "ptxas"}`` (bytes for spills and
    stack). Tries the ptxas Triton uses for ``arch`` first, then the others it ships, and keeps
    the first that accepts the PTX's version.
    """
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        for path in _ptxas(arch):
            cmd = [path, "-lineinfo", "-v", "--regAllocOptLevel=2", f"--gpu-name=sm_{arch}a", str(src),
                   "-o", str(Path(tmp) / "kernel.cubin")]
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if run.returncode != 0:
                errors.append(f"{Path(path).name}: {run.stderr.strip()[-300:]}")
                continue
            log = run.stderr + run.stdout
            regs = re.search(r"Used (\d+) registers", log)
            spills = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
            if not (regs and spills):
                raise RuntimeError(f"could not read ptxas -v's report:\n{log}")
            return {"registers": int(regs.group(1)), "stack": int(spills.group(1)),
                    "spill_stores": int(spills.group(2)), "spill_loads": int(spills.group(3)),
                    "ptxas": Path(path).name}
    raise RuntimeError("no ptxas shipped with Triton accepts this PTX:\n" + "\n".join(errors))


def compile_for_gpu(d: int = 64, dtype: torch.dtype = torch.bfloat16, causal: bool = True, arch: int = 90,
                    even: bool = True, kernels: tuple[str, ...] = ("fwd", "bwd"),
                    config: dict[str, dict[str, int]] | None = None, group: int = 1,
                    ptxas: bool = False, tma: bool = False) -> dict[str, dict[str, object]]:
    """Compile the kernels ahead of time for an NVIDIA architecture (90 = H100/H200), without a GPU.

    Uses Triton's own compiler and the ``ptxas`` it ships, with the specialisation a launch on
    16-byte-aligned tensors gets (strides, and ``Lq``, ``Lk`` if ``even``, multiples of 16;
    ``group`` query heads per K/V head, 1 = plain multi-head). ``config`` gives the tiles, warps
    and stages per kernel as ``kernel_config`` returns them (its choice by default). ``tma``
    compiles the variant a Hopper GPU runs on 16-byte-aligned tensors (TMA descriptors); the
    pointer variant otherwise.

    Returns, for each of ``kernels`` (``"fwd"``, ``"bwd"``): ``shared_bytes``, the intermediate
    languages ``ttir`` and ``ttgir``, the ``ptx``, the launch configuration, and with ``ptxas``
    the ``ptxas -v`` report (``ptxas_report``). Needs Triton >= 3.3 (the ``ASTSource`` API).
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if not isinstance(_attn_fwd, JITFunction):
        raise RuntimeError("compile_for_gpu cannot compile: TRITON_INTERPRET=1 was set when triton was imported, "
                           "so the kernels were built for the interpreter only")
    cfgs = config or kernel_config(d, dtype, interpret=False)
    out = {}
    for name in kernels:
        kernel = KERNELS[name]
        cfg = dict(cfgs[name])
        opts = {"num_warps": cfg.pop("num_warps"), "num_stages": cfg.pop("num_stages")}
        bd = autotune.block_d(d)
        consts = dict(HEAD_DIM=d, BLOCK_D=bd, CAUSAL=causal, PRECISION=_precision(dtype), TMA=tma, **cfg)
        if group == 1:
            consts["GROUP"] = 1          # Triton specialises an int argument equal to 1 into a constant
        sig, attrs = {}, {}
        for i, arg in enumerate(kernel.arg_names):
            if arg in consts:
                sig[arg] = "constexpr"
            elif tma and arg in _DESC_ROWS[name]:
                sig[arg] = f"tensordesc<{_TRITON_TYPES[dtype]}[1,1,{cfg[_DESC_ROWS[name][arg]]},{bd}]>"
            elif arg in _PTR_ARGS or arg in _F32_PTRS:
                sig[arg] = "*fp32" if arg in _F32_PTRS else "*" + _TRITON_TYPES[dtype]
                attrs[(i,)] = [["tt.divisibility", 16]]
            elif arg in ("qk_scale", "sm_scale"):
                sig[arg] = "fp32"
            else:                        # strides, head counts, lengths, buckets
                sig[arg] = "i32"
                if arg.startswith("s") or arg.endswith("BUCKET") or (even and arg in ("Lq", "Lk")):
                    attrs[(i,)] = [["tt.divisibility", 16]]
        try:
            src = ASTSource(fn=kernel, signature=sig, constexprs=consts, attrs=attrs)
        except TypeError as err:  # older Triton: a different ahead-of-time API
            raise RuntimeError(f"compile_for_gpu needs Triton >= 3.3 ({err})") from None
        compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                                  options={**opts, "enable_fp_fusion": True})
        info = {"shared_bytes": int(compiled.metadata.shared), "ptx": compiled.asm["ptx"],
                "ttir": compiled.asm["ttir"], "ttgir": compiled.asm["ttgir"], "tma": tma, **opts, **cfg}
        if ptxas:
            info["ptxas"] = ptxas_report(info["ptx"], arch)
        out[name] = info
    return out


def dots_per_loop(ir: str, op: str = "tt.dot") -> list[int]:
    """How many ``op`` operations each innermost ``scf.for`` loop of an MLIR text (TTIR, TTGIR) holds,
    in the order the loops close.

    The kernels call their tile loops several times (unmasked and masked), so a kernel's IR has one
    loop per call; each must hold the kernel's GEMMs per tile. A region opens at a line ending in
    ``{`` and closes at a line starting with ``}`` (MLIR's printed form)."""
    counts: list[int] = []
    frames: list[list] = []                  # [is a loop, ops counted, holds an inner loop]
    pattern = re.compile(rf"\b{re.escape(op)}\b")
    for line in ir.splitlines():
        text = line.strip()
        if text.startswith("}") and frames:
            is_loop, n, inner = frames.pop()
            if is_loop and not inner:
                counts.append(n)
        if text.endswith("{"):
            is_loop = bool(re.search(r"\bscf\.for\b", text)) and not text.startswith("}")
            if is_loop:
                for frame in frames:
                    if frame[0]:
                        frame[2] = True
            frames.append([is_loop, 0, False])
        elif pattern.search(text):
            for frame in reversed(frames):
                if frame[0]:
                    frame[1] += 1
                    break
    return counts
