r"""The tiles the GPU autotuner chooses from, how they are pruned, and the compile sweep that checks them.

Each kernel (``"fwd"``: the forward; ``"bwd"``: the main backward kernel) has, per head-dim
class (the tile width ``BLOCK_D``: up to 64, 128, or 256), a list of configurations
``(BLOCK_M, BLOCK_N, num_warps, num_stages)``. ``CANDIDATES`` are all those tried;
``AUTOTUNE_CONFIGS`` keeps the ones whose sm_90 code spills no register in any of the swept
cases (d = 64 and 128, and 256 for its class; causal and not; bf16 and fp16; with TMA
descriptors and with pointers), as reported by ``ptxas -v``. The sweep is one command, and
its JSON is committed (the chapter's compile table is drawn from it)::

    python -m attnkit.flash.autotune --out attnkit/data/flash

At run time, before any timing, ``prune`` drops the entries whose shared memory (estimated by
``shared_bytes``, an upper bound checked against the compiler in the tests) exceeds what the
device offers, and float32 (for checking only) gets the last, smallest entry of each list. The
autotuner keys on the next powers of two of ``Lq`` and ``Lk``, so a new length retunes only when
it crosses a power of two.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import hashlib
import itertools
import json
import platform
from pathlib import Path

import torch

from attnkit._checks import check_int

__all__ = ["AUTOTUNE_CONFIGS", "CANDIDATES", "RECORDED", "VARIANTS", "block_d", "bucket", "d_class", "load_sweep",
           "prune", "shared_bytes", "sweep", "uses_tma"]

Entry = tuple[int, int, int, int]   # (BLOCK_M, BLOCK_N, num_warps, num_stages)

# fwd: BLOCK_M query rows per program, BLOCK_N keys per step. bwd: BLOCK_N keys per program (dk, dv on
# chip), BLOCK_M query rows per step.
CANDIDATES: dict[str, dict[int, tuple[Entry, ...]]] = {
    "fwd": {
        64: ((128, 64, 4, 3), (128, 128, 8, 3), (128, 32, 4, 4), (64, 64, 4, 3)),
        128: ((128, 64, 8, 3), (128, 64, 4, 3), (128, 128, 8, 2), (64, 32, 4, 2)),
        256: ((64, 64, 8, 2), (64, 32, 4, 2), (32, 32, 4, 2)),
    },
    "bwd": {
        64: ((64, 128, 8, 2), (32, 128, 4, 3), (64, 64, 4, 3), (32, 64, 4, 2)),
        128: ((64, 128, 8, 2), (32, 128, 8, 3), (32, 128, 8, 2), (64, 64, 8, 2), (32, 64, 8, 2),
              (32, 64, 4, 2), (16, 64, 4, 2)),
        256: ((32, 64, 8, 2), (32, 32, 8, 2), (16, 32, 8, 2)),
    },
}

# The load paths each kernel takes on sm_90, per head-dim class: TMA descriptors for 16-byte-aligned
# tensors, pointers otherwise; the d = 256 backward always uses pointers (its TMA variant spilled in
# every tile tried: 376 to 1896 bytes for (16..32, 32..64) tiles, where the pointer variant of the two
# smaller ones spills nothing). The sweep compiles exactly these.
VARIANTS: dict[tuple[str, int], tuple[str, ...]] = {
    (name, cls): ("tma", "pointer") for name in ("fwd", "bwd") for cls in (64, 128, 256)}
VARIANTS["bwd", 256] = ("pointer",)


def _plain(value: object) -> object:
    """A NumPy integer as a Python int (anything else unchanged), for the int checks."""
    import numpy as np

    return int(value) if isinstance(value, np.integer) else value


def _check_name(name: object) -> str:
    if name not in ("fwd", "bwd"):
        raise ValueError(f"name must be 'fwd' or 'bwd'; got {name!r}")
    return name


def _check_entry(entry: object) -> Entry:
    if (not isinstance(entry, (tuple, list)) or len(entry) != 4
            or any(isinstance(e, bool) or not isinstance(e, int) or e < 1 for e in entry)):
        raise ValueError(f"entry must be (BLOCK_M, BLOCK_N, num_warps, num_stages), four positive ints; "
                         f"got {entry!r}")
    return tuple(entry)


def uses_tma(name: str, d: int) -> bool:
    """Whether kernel ``name`` takes TMA descriptors (where the hardware and the strides allow) at head dim ``d``."""
    _check_name(name)
    return "tma" in VARIANTS[name, d_class(d)]

# The spill-free entries of CANDIDATES, as the recorded sweep found them (a test checks that this list is
# exactly the record's spill-free candidates). The first entry of each list is the default tile, the last
# the one float32 gets.
AUTOTUNE_CONFIGS: dict[str, dict[int, tuple[Entry, ...]]] = {
    "fwd": {
        64: ((128, 64, 4, 3), (128, 128, 8, 3), (128, 32, 4, 4), (64, 64, 4, 3)),
        128: ((128, 64, 8, 3), (128, 128, 8, 2), (64, 32, 4, 2)),
        256: ((64, 64, 8, 2), (64, 32, 4, 2)),
    },
    "bwd": {
        64: ((64, 128, 8, 2), (64, 64, 4, 3), (32, 64, 4, 2)),
        128: ((32, 128, 8, 3), (32, 128, 8, 2), (32, 64, 8, 2), (16, 64, 4, 2)),
        256: ((32, 32, 8, 2), (16, 32, 8, 2)),
    },
}

RECORDED = Path(__file__).resolve().parent.parent / "data" / "flash" / "compile-sm90.json"
SWEEP_DIMS = {64: (64,), 128: (128,), 256: (256,)}       # head dims compiled for each class
SWEEP_DTYPES = (torch.bfloat16, torch.float16)


def bucket(n: int) -> int:
    """The autotuner's key for a length: the next power of two (at least 16)."""
    check_int("n", _plain(n), minimum=0)
    return max(16, 1 << max(0, int(n) - 1).bit_length())


def block_d(d: int) -> int:
    """The tile width for head dim ``d``: the next power of two, at least 16 (d = 80, 96 -> 128)."""
    check_int("d", _plain(d), minimum=1)
    return max(16, 1 << (int(d) - 1).bit_length())


def d_class(d: int) -> int:
    """Which list of ``AUTOTUNE_CONFIGS`` serves head dim ``d``: 64 (d <= 64), 128 or 256."""
    check_int("d", _plain(d), minimum=1)
    if d > 256:
        raise ValueError(f"d must be a head dim of at most 256 (the largest tile class); got {d}")
    return max(64, block_d(d))


def shared_bytes(name: str, entry: Entry, d: int, elem_bytes: int = 2) -> int:
    """An upper bound on the shared memory a configuration needs (bytes), checked against every compile
    of the recorded sweep: the operand tiles the pipeline keeps in flight, plus the staging of the
    tiles that feed a second ``tl.dot``.

    fwd: ``q`` once, ``num_stages`` copies of the ``k`` and ``v`` blocks, and ``p``;
    bwd: ``k`` and ``v`` once and ``k`` again, ``num_stages`` copies of ``q``, ``do`` and ``q`` again
    (the pointer variant keeps a second copy, in the other layout, of a tile that feeds two products),
    and ``p^T`` and ``ds^T``.
    """
    _check_name(name)
    bm, bn, _, stages = _check_entry(entry)
    check_int("elem_bytes", _plain(elem_bytes), minimum=1)
    bd = block_d(d)
    if name == "fwd":
        tiles = bm * bd + stages * 2 * bn * bd + bm * bn
    elif name == "bwd":
        tiles = 3 * bn * bd + stages * 3 * bm * bd + 2 * bm * bn
    else:
        raise ValueError(f"name must be 'fwd' or 'bwd'; got {name!r}")
    return tiles * elem_bytes + 4 * 1024          # + barriers, the row statistics and layout conversions


def prune(name: str, d: int, dtype: torch.dtype, max_shared: int) -> list[Entry]:
    """The entries of ``AUTOTUNE_CONFIGS[name]`` for head dim ``d`` that fit ``max_shared`` bytes;
    float32 gets the last (smallest) entry only. Never empty: the smallest entry is kept."""
    _check_name(name)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype; got {dtype!r}")
    check_int("max_shared", _plain(max_shared), minimum=0)
    entries = AUTOTUNE_CONFIGS[name][d_class(d)]
    elem = torch.empty((), dtype=dtype).element_size()
    if dtype == torch.float32:
        return [entries[-1]]
    fits = [e for e in entries if shared_bytes(name, e, d, elem) <= max_shared]
    return fits or [min(entries, key=lambda e: shared_bytes(name, e, d, elem))]


def _source_hash() -> str:
    """A hash of the kernels' code (forward.py, backward.py), blind to comments and docstrings: a sweep
    stays valid when only the prose around the code changes."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("forward.py", "backward.py"):
        tree = ast.parse((here / name).read_text())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()[:16]


def sweep(names: tuple[str, ...] = ("fwd", "bwd"), classes: tuple[int, ...] = (64, 128, 256),
          entries: dict[str, dict[int, tuple[Entry, ...]]] | None = None, arch: int = 90,
          progress: bool = True, resume: str | Path | None = None) -> dict:
    """Compile every candidate for sm_``arch`` and read registers, spills and shared memory.

    For each kernel, head-dim class, head dim of ``SWEEP_DIMS``, causal or not, dtype of
    ``SWEEP_DTYPES`` and variant of ``VARIANTS`` (TMA descriptors, what sm_90 runs on aligned
    tensors; pointers otherwise), one row: ``{"kernel", "entry", "d", "causal", "dtype", "variant", "registers",
    "spill_stores", "spill_loads", "stack", "shared_bytes", "shared_estimate"}``. With ``resume``
    (a JSON-lines file), every row is appended there as it is made, and rows already there from
    the same kernel source, Triton and ptxas are reused (a sweep takes minutes per row on a busy CPU).
    """
    from attnkit.flash.aot import compile_for_gpu, ptxas_version

    rows = []
    todo = entries or CANDIDATES
    # rows already compiled by an interrupted run of the same source, Triton and ptxas: resume from them
    stamp = {"source": _source_hash(), "triton": _triton_version(), "ptxas": ptxas_version(arch)}
    done = {}
    if resume is not None and Path(resume).exists():
        for line in Path(resume).read_text().splitlines():
            row = json.loads(line)
            if row.pop("stamp", None) == stamp:
                done[_row_key(row)] = row
    for name in names:
        for cls in classes:
            for entry in todo[name].get(cls, ()):
                variants = [v == "tma" for v in VARIANTS[name, cls]]
                for d, causal, dtype, tma in itertools.product(SWEEP_DIMS[cls], (False, True), SWEEP_DTYPES,
                                                               variants):
                    row = {"kernel": name, "entry": list(entry), "d": d, "causal": causal,
                           "dtype": str(dtype).removeprefix("torch."), "variant": "tma" if tma else "pointer"}
                    if _row_key(row) in done:   # the compile's numbers; the estimate is recomputed
                        rows.append({**done[_row_key(row)], "shared_estimate": shared_bytes(name, entry, d)})
                        continue
                    info = compile_for_gpu(d=d, dtype=dtype, causal=causal, arch=arch, kernels=(name,),
                                           config={name: _as_config(entry)}, ptxas=True, tma=tma)[name]
                    row.update(**info["ptxas"], shared_bytes=info["shared_bytes"],
                               shared_estimate=shared_bytes(name, entry, d))
                    rows.append(row)
                    if resume is not None:
                        with Path(resume).open("a") as f:
                            f.write(json.dumps({**row, "stamp": stamp}) + "\n")
                    if progress:
                        print(f"{name} {entry} d={d} causal={causal!s:5} {row['dtype']} {row['variant']:>7}: "
                              f"{row['registers']} regs, {row['spill_stores']} B spill stores, "
                              f"{row['shared_bytes'] // 1024} KB shared", flush=True)
    return {"provenance": {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "triton": _triton_version(), "torch": torch.__version__, "ptxas": ptxas_version(arch),
                           "arch": f"sm_{arch}a", "python": platform.python_version(),
                           "machine": platform.machine(), "kernel_source_sha256": _source_hash(),
                           "command": "python -m attnkit.flash.autotune --out attnkit/data/flash"},
            "candidates": {n: {str(c): [list(e) for e in es] for c, es in CANDIDATES[n].items()} for n in names},
            "rows": rows}


def _row_key(row: dict) -> tuple:
    return row["kernel"], tuple(row["entry"]), row["d"], row["causal"], row["dtype"], row["variant"]


def spill_free(result: dict) -> dict[str, dict[int, tuple[Entry, ...]]]:
    """The candidates that spilled in none of their rows of a sweep result, in their order."""
    spilled = {(r["kernel"], tuple(r["entry"]), max(64, block_d(r["d"]))) for r in result["rows"]
               if r["spill_stores"] or r["spill_loads"]}
    return {name: {cls: tuple(e for e in es if (name, e, cls) not in spilled) for cls, es in per_class.items()}
            for name, per_class in CANDIDATES.items()}


def load_sweep(path: str | Path = RECORDED) -> dict | None:
    """The recorded compile sweep, or ``None`` if there is none."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or a pathlib.Path; got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _as_config(entry: Entry) -> dict[str, int]:
    bm, bn, warps, stages = entry
    return {"BLOCK_M": bm, "BLOCK_N": bn, "num_warps": warps, "num_stages": stages}


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def main(argv: list[str] | None = None) -> int:
    """``python -m attnkit.flash.autotune``: run the compile sweep and write ``<out>/compile-sm90.json``."""
    p = argparse.ArgumentParser(prog="python -m attnkit.flash.autotune", description=main.__doc__)
    p.add_argument("--out", default="attnkit/data/flash", help="folder for compile-sm90.json")
    p.add_argument("--kernels", default="fwd,bwd")
    p.add_argument("--classes", default="64,128,256", help="head-dim classes to sweep")
    p.add_argument("--resume", default=None, help="JSON-lines file of rows: reuse those made, append new ones")
    args = p.parse_args(argv)
    result = sweep(tuple(args.kernels.split(",")), tuple(int(c) for c in args.classes.split(",")),
                   resume=args.resume)
    free = spill_free(result)
    result["spill_free"] = {n: {str(c): [list(e) for e in es] for c, es in per.items()} for n, per in free.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile-sm90.json").write_text(json.dumps(result, indent=1))
    for name, per_class in free.items():
        for cls, es in per_class.items():
            dropped = [e for e in CANDIDATES[name][cls] if e not in es]
            print(f"{name} d<={cls}: {len(es)} spill-free; spilling (drop from AUTOTUNE_CONFIGS): {dropped}")
    print(f"wrote {out / 'compile-sm90.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
