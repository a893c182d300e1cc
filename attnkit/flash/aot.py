r"""Ahead-of-time compilation of attnkit's Triton kernels for an NVIDIA GPU, without one.

``compile_for_gpu`` builds the kernels of ``attnkit.flash.forward`` and ``attnkit.flash.backward``
for an architecture (90 = H100/H200) with Triton's own compiler and reports what became of
them: shared memory, the intermediate languages (TTIR, TTGIR), the PTX assembly, and, from
``ptxas -v`` (the assembler Triton's wheel ships), registers and spills. ``dots_per_loop``
counts the GEMMs of each tile loop in the IR. The tests, the compile sweep
(``attnkit.flash.autotune``) and the chapter use them.
"""

# No ``from __future__ import annotations``: see attnkit/flash/forward.py.
import functools
import re
import subprocess
import tempfile
from pathlib import Path

import torch
import triton
from triton.runtime.jit import JITFunction

from attnkit.flash import autotune
from attnkit.flash.triton_kernel import _DESC_ROWS, KERNELS, _precision, kernel_config

__all__ = ["compile_for_gpu", "dots_per_loop", "ptxas_report", "ptxas_version"]



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

    if not isinstance(KERNELS["fwd"], JITFunction):
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
