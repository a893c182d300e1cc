"""``python -m attnkit.bench efficient``: time and peak memory of exact and efficient attention.

For N = 256, 512, ..., 65536 (CPU, float32, d = 64, one head, batch 1, i.i.d. normal q, k, v)
it runs exact ``attend``, chunked-exact (online softmax), Linformer, Performer, Reformer and
local attention, and prints a table, writes ``efficient.json`` and a log-log figure
``efficient.png`` to ``--out``. A method whose analytic memory estimate at some N exceeds
``--mem-cap-gb`` is skipped there (and the table says so).

**Peak memory** is measured, not estimated: the Linux kernel keeps a high-water mark of the
process's resident memory (``VmHWM`` in ``/proc/self/status``), which writing ``5`` to
``/proc/self/clear_refs`` resets. We allocate the inputs, reset the mark, read the resident
size, call the method once, and report the high-water mark minus that resident size: the extra
memory the call needed at its peak (the output included). ``tracemalloc`` cannot see PyTorch's
allocations, hence this route; to make freed blocks go back to the OS (so they are not silently
reused and hidden), glibc's ``mallopt`` sets a fixed 64 KiB mmap threshold for the rest of the
process and ``malloc_trim`` releases free heap pages before every measurement. Every method is
called once at a small N before anything is measured, so one-off set-up costs (thread pools,
lazy initialisation) are not charged to the first method. Where ``/proc`` is missing the
analytic estimate is reported instead, marked ``est``.

**Time** is the CPU time of the process (``time.process_time``) for one call, best of
``--repeats`` calls (one call when a call takes longer than ``--slow-s``), with one PyTorch
thread: on a machine shared with other jobs the wall time of a long call is inflated by every
time slice it waits for, the CPU time is not. The wall time is in the table and the JSON too
(the summary's ``wall_over_cpu``, total wall time over total CPU time, says how loaded the
machine was), but the ``--time-cap-s`` skip decision uses the CPU time: a method is skipped at
an N where its CPU time per call, extrapolated from its two largest sizes so far, would exceed
the cap, so a busy machine does not drop the largest sizes.

**Relative error** ``||O_approx - O||_F / ||O||_F`` is measured against the exact
output up to ``--err-max-n`` (default 16384): for Reformer against exact attention with its
shared-QK keys ``q / |q|``. Slopes are least-squares fits of log(CPU time) on log(N) from
``--fit-from`` (4096) to the largest N run. Reformer uses ``min(N / chunk, --buckets)`` buckets
(hashing into ``b`` buckets costs ``N b d``: with ``b = N / chunk`` it would be quadratic).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from attnkit.bench._common import provenance as _provenance
from attnkit.bench._common import write_results
from attnkit.core import attend
from attnkit.efficient._common import relative_error
from attnkit.efficient.chunked import chunked_attention, chunked_attention_bytes, exact_attention_bytes
from attnkit.efficient.data import random_qkv, smooth_sequence
from attnkit.efficient.linformer import linformer_attention, linformer_projection
from attnkit.efficient.local import local_attention
from attnkit.efficient.performer import orthogonal_gaussian, performer_attention
from attnkit.efficient.reformer import lsh_attention, random_rotations, shared_keys

METHODS = ("exact", "chunked", "linformer", "performer", "reformer", "local")
RECORDED = Path(__file__).resolve().parent.parent / "data" / "bench" / "efficient-cpu.json"
"""The recorded full run shown in the chapter."""

MB = 2 ** 20


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m attnkit.bench efficient", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--min-n", type=int, default=256, help="smallest sequence length (a power of 2)")
    p.add_argument("--max-n", type=int, default=65536, help="largest sequence length (a power of 2)")
    p.add_argument("--d", type=int, default=64, help="head width")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per (method, N); the best is kept")
    p.add_argument("--slow-s", type=float, default=5.0, help="do not repeat a call that took longer than this")
    p.add_argument("--mem-cap-gb", type=float, default=8.0, help="skip a method where its memory estimate exceeds this")
    p.add_argument("--err-max-n", type=int, default=16384, help="measure relative errors up to this N")
    p.add_argument("--fit-from", type=int, default=4096, help="fit log-log slopes from this N up")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--features", type=int, default=256, help="Performer random features m")
    p.add_argument("--proj", type=int, default=256, help="Linformer projected length r")
    p.add_argument("--rounds", type=int, default=2, help="Reformer hash rounds")
    p.add_argument("--chunk", type=int, default=64, help="Reformer chunk size")
    p.add_argument("--buckets", type=int, default=64,
                   help="Reformer buckets: N / chunk, at most this (hashing costs N * buckets * d)")
    p.add_argument("--window", type=int, default=128, help="local attention half-window")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-cap-s", type=float, default=100.0,
                   help="skip a method where its predicted CPU time per call (extrapolated) exceeds this")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads during the run (0: PyTorch's default); one is steadier on a shared machine")
    p.add_argument("--out", default="bench-results", help="folder for efficient.json and efficient.png")
    p.add_argument("--no-plot", action="store_true", help="skip the figure")
    return p


# ---------------------------------------------------------------- memory measurement

def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def can_measure_rss() -> bool:
    """Whether the peak-RSS route (Linux ``/proc``) works here."""
    return _status_kb("VmHWM") is not None and _reset_peak()


def _trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc ``malloc_trim``), so that reusing them counts."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _fixed_mmap_threshold(nbytes: int = 64 * 1024) -> bool:
    """Ask glibc to serve blocks above ``nbytes`` by mmap (returned to the OS when freed)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, nbytes))  # M_MMAP_THRESHOLD = -3
    except (OSError, AttributeError):
        return False


def measure(fn: Callable[[], torch.Tensor], *, rss: bool) -> tuple[torch.Tensor, float, float, float | None]:
    """Call ``fn`` once: ``(output, CPU seconds, wall seconds, peak extra MB or None)``."""
    if rss:
        _trim_heap()
        _reset_peak()
        base = _status_kb("VmRSS")
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = None
    if rss:
        hwm = _status_kb("VmHWM")
        peak = max(hwm - base, 0) / 1024 if hwm is not None and base is not None else None
    return out, cpu, dt, peak


# ---------------------------------------------------------------- the methods

def estimate_bytes(method: str, n: int, d: int, args: argparse.Namespace) -> int:
    """Analytic memory estimate (bytes, float32) used for the ``--mem-cap-gb`` decision."""
    f = 4
    if method == "exact":
        return exact_attention_bytes(n, n, d, d)
    if method == "chunked":
        return chunked_attention_bytes(n, n, d, d)
    if method == "linformer":
        r = min(args.proj, n)
        return f * (r * n + 2 * r * d + 3 * n * r + n * d)
    if method == "performer":
        return f * (4 * n * args.features + args.features * d + 2 * n * d)
    if method == "reformer":
        c = min(args.chunk, n)
        return f * (n * 5 * d + 8 * n * 2 * c + 4 * n * d)
    if method == "local":
        w = min(args.window, n)
        return f * (7 * n * d + 4 * n * 3 * w)
    raise ValueError(f"unknown method {method!r}")


def _make_calls(n: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                args: argparse.Namespace) -> dict[str, Callable[[], torch.Tensor]]:
    d = q.shape[-1]
    # the random parameters are drawn once, outside the timed call (they are a layer's weights)
    E = linformer_projection(n, min(args.proj, n), kind="pool")
    omega = orthogonal_gaussian(args.features, d, seed=args.seed + 1)
    n_buckets = max(2, min(args.buckets, 2 * ((n // min(args.chunk, n)) // 2)))
    rot = random_rotations(d, n_buckets, args.rounds, seed=args.seed + 2)
    chunk = min(args.chunk, n)
    return {
        "exact": lambda: attend(q, k, v)[0],
        "chunked": lambda: chunked_attention(q, k, v),
        "linformer": lambda: linformer_attention(q, k, v, E=E),
        "performer": lambda: performer_attention(q, k, v, omega=omega),
        "reformer": lambda: lsh_attention(q, v, n_buckets=n_buckets, chunk_size=chunk, rotations=rot,
                                          exclude_self=False),
        "local": lambda: local_attention(q, k, v, window=min(args.window, n)),
    }


def fit_slope(ns: list[int], ts: list[float]) -> float | None:
    """Least-squares slope of log(t) against log(n); ``None`` for fewer than two points."""
    if len(ns) < 2:
        return None
    x = [math.log(n) for n in ns]
    y = [math.log(t) for t in ts]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxx = sum((a - mx) ** 2 for a in x)
    return sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sxx


def _sizes(lo: int, hi: int) -> list[int]:
    for name, n in (("--min-n", lo), ("--max-n", hi)):
        if n < 2 or n & (n - 1):
            raise SystemExit(f"{name} must be a power of 2 >= 2; got {n}")
    if lo > hi:
        raise SystemExit(f"--min-n ({lo}) must be <= --max-n ({hi})")
    return [2 ** e for e in range(int(math.log2(lo)), int(math.log2(hi)) + 1)]


def run_benchmark(args: argparse.Namespace, *, log: Callable[[str], None] = print) -> dict:
    """Run the sweep described by ``args`` (see ``python -m attnkit.bench efficient --help``); return the results."""
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, log)
    finally:
        torch.set_num_threads(threads)


def _predicted_time(history: list[tuple[int, float]], n: int) -> float | None:
    """Extrapolate a method's CPU time per call to ``n`` from its last two sizes (slope clamped to [1, 2.2])."""
    if not history:
        return None
    n1, t1 = history[-1]
    slope = 2.0
    if len(history) >= 2:
        n0, t0 = history[-2]
        slope = min(max(math.log(t1 / t0) / math.log(n1 / n0), 1.0), 2.2)
    return t1 * (n / n1) ** slope


def _run(args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    load_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    rss = can_measure_rss()
    if rss:
        _fixed_mmap_threshold()
    cap = args.mem_cap_gb * 2 ** 30
    rows = []
    history: dict[str, list[tuple[int, float]]] = {m: [] for m in args.methods}
    n0 = min(256, args.min_n)
    warm = _make_calls(n0, *random_qkv(n0, args.d, seed=args.seed), args)
    for method in args.methods:  # warm-up: one-off initialisation is not measured
        warm[method]()
    for n in _sizes(args.min_n, args.max_n):
        q, k, v = random_qkv(n, args.d, seed=args.seed)
        calls = _make_calls(n, q, k, v, args)
        ref = ref_shared = None
        outputs: dict[str, torch.Tensor] = {}
        for method in args.methods:
            est = estimate_bytes(method, n, args.d, args)
            row = {"method": method, "n": n, "est_mb": est / MB}
            t_pred = _predicted_time(history[method], n)
            if est > cap:
                row.update(skipped=True, reason=f"estimated {est / 2 ** 30:.1f} GB > cap {args.mem_cap_gb:g} GB")
            elif t_pred is not None and t_pred > args.time_cap_s:
                row.update(skipped=True,
                           reason=f"predicted {t_pred:.0f} s CPU per call > cap {args.time_cap_s:g} s")
            if row.get("skipped"):
                log(f"  skip {method:9s} N={n:6d}: {row['reason']}")
                rows.append(row)
                continue
            out, cpu, dt, peak = measure(calls[method], rss=rss)
            cpus, walls = [cpu], [dt]
            while len(walls) < args.repeats and dt < args.slow_s:
                _, cpu, dt, _ = measure(calls[method], rss=False)
                cpus.append(cpu)
                walls.append(dt)
            row.update(skipped=False, time_s=min(cpus), cpu_s=cpus, wall_s=min(walls), walls_s=walls,
                       peak_mb=peak if rss else est / MB, peak_kind="rss" if rss else "est")
            history[method].append((n, min(cpus)))  # CPU time: the cap does not depend on the machine's load
            if n <= args.err_max_n:
                outputs[method] = out
            rows.append(row)
            log(f"  {method:9s} N={n:6d}: {min(cpus) * 1e3:10.2f} ms CPU {min(walls) * 1e3:10.2f} ms wall  "
                f"peak {row['peak_mb']:9.1f} MB")
        if n <= args.err_max_n and outputs:
            # the reference: exact attention (its own output, or the chunked one, which is exact)
            ref = outputs.get("exact")
            if ref is None:
                ref = chunked_attention(q, k, v)
            if "reformer" in outputs:
                ref_shared = chunked_attention(q, shared_keys(q), v, scale=1.0)
            uniform = relative_error(v.mean(0).expand_as(v), ref)
            # the same methods on a structured sequence of the same size (errors only)
            qs, ks, vs = smooth_sequence(n, args.d, seed=args.seed)
            calls_s = _make_calls(n, qs, ks, vs, args)
            ref_s = chunked_attention(qs, ks, vs)
            ref_s_shared = chunked_attention(qs, shared_keys(qs), vs, scale=1.0)
            uniform_s = relative_error(vs.mean(0).expand_as(vs), ref_s)
            for row in rows:
                if row["n"] == n and row["method"] in outputs:
                    m = row["method"]
                    row["rel_err"] = relative_error(outputs[m], ref_shared if m == "reformer" else ref)
                    row["uniform_rel_err"] = uniform
                    out_s = calls_s[m]()
                    row["rel_err_smooth"] = relative_error(out_s, ref_s_shared if m == "reformer" else ref_s)
                    row["uniform_rel_err_smooth"] = uniform_s
    prov = provenance(args)
    prov["load_average_at_start"] = load_start
    return {"provenance": prov, "config": {k: v for k, v in vars(args).items()}, "results": rows,
            "summary": summarize(rows, args.fit_from)}


def provenance(args: argparse.Namespace) -> dict:
    """Where and when the numbers were taken, and on what inputs."""
    return {
        **_provenance("python -m attnkit.bench efficient " + " ".join(getattr(args, "argv", []))),
        "dtype": "float32", "memory": "peak RSS (VmHWM after clear_refs) minus RSS before the call",
        "inputs": f"timed on i.i.d. N(0, 1) q, k, v of shape (N, {args.d}), one head, batch 1; errors also on "
                  "attnkit.efficient.data.smooth_sequence",
    }


def summarize(rows: list[dict], fit_from: int) -> dict:
    """Fitted slopes, the chunked/exact memory ratio at 16k, and the errors at the largest N measured."""
    out: dict = {"slope_from": fit_from, "time_slope": {}, "mem_slope": {}, "rel_err": {}}
    by = {}
    for r in rows:
        if not r.get("skipped"):
            by.setdefault(r["method"], []).append(r)
    for m, rs in by.items():
        big = [r for r in rs if r["n"] >= fit_from]
        s = fit_slope([r["n"] for r in big], [r["time_s"] for r in big])
        out["time_slope"][m] = s
        big_mem = [r for r in big if r["peak_mb"] > 0]
        out["mem_slope"][m] = fit_slope([r["n"] for r in big_mem], [r["peak_mb"] for r in big_mem])
        errs = [r for r in rs if "rel_err" in r]
        if errs:
            e = errs[-1]
            out["rel_err"][m] = {key: e[key] for key in ("n", "rel_err", "uniform_rel_err", "rel_err_smooth",
                                                         "uniform_rel_err_smooth")}
    done = [r for r in rows if not r.get("skipped")]
    cpu_total = sum(sum(r["cpu_s"]) for r in done)
    if cpu_total > 0:
        out["wall_over_cpu"] = sum(sum(r["walls_s"]) for r in done) / cpu_total
    peak = {(r["method"], r["n"]): r["peak_mb"] for r in done}
    ref_n = max((n for (m, n) in peak if m == "exact" and ("chunked", n) in peak), default=None)
    if ref_n is not None:
        out["mem_ratio"] = {"n": ref_n, "chunked_mb": peak[("chunked", ref_n)], "exact_mb": peak[("exact", ref_n)],
                            "ratio": peak[("chunked", ref_n)] / max(peak[("exact", ref_n)], 1e-9)}
    return out


def format_table(data: dict) -> str:
    """The results as a text table (one row per N and method) and the summary lines."""
    lines = [f"{'N':>6} {'method':>10} {'CPU (ms)':>10} {'wall (ms)':>10} {'peak (MB)':>10} {'err (iid)':>10} "
             f"{'err (smooth)':>12}"]
    for r in data["results"]:
        if r.get("skipped"):
            lines.append(f"{r['n']:>6} {r['method']:>10}   skipped: {r['reason']}")
            continue
        err = f"{r['rel_err']:.2e}" if "rel_err" in r else "-"
        err_s = f"{r['rel_err_smooth']:.2e}" if "rel_err_smooth" in r else "-"
        mark = "" if r.get("peak_kind") == "rss" else " est"
        lines.append(f"{r['n']:>6} {r['method']:>10} {r['time_s'] * 1e3:>10.2f} {r['wall_s'] * 1e3:>10.2f} "
                     f"{r['peak_mb']:>10.1f}{mark} {err:>10} {err_s:>12}")
    s = data["summary"]
    lines.append("")
    lines.append(f"fitted log-log slopes from N = {s['slope_from']} (2 = quadratic, 1 = linear):")
    for m, v in s["time_slope"].items():
        mem = s["mem_slope"].get(m)
        lines.append(f"  {m:>10}: CPU time {v:5.2f}   memory {mem:5.2f}" if v is not None and mem is not None
                     else f"  {m:>10}: too few sizes to fit")
    if "wall_over_cpu" in s:
        lines.append(f"wall time / CPU time over all calls: {s['wall_over_cpu']:.2f} (1 on an idle machine)")
    if "mem_ratio" in s:
        mr = s["mem_ratio"]
        lines.append(f"peak memory at N = {mr['n']}: chunked {mr['chunked_mb']:.1f} MB vs exact "
                     f"{mr['exact_mb']:.1f} MB (ratio {mr['ratio']:.4f})")
    if s["rel_err"]:
        e0 = next(iter(s["rel_err"].values()))
        lines.append(f"relative error vs exact at N = {e0['n']}, i.i.d. / smooth inputs (plain averaging of v scores "
                     f"{e0['uniform_rel_err']:.3f} / {e0['uniform_rel_err_smooth']:.3f}):")
        for m, e in s["rel_err"].items():
            lines.append(f"  {m:>10}: {e['rel_err']:.3e} / {e['rel_err_smooth']:.3e}")
    return "\n".join(lines)


def plot(data: dict):  # -> matplotlib Figure
    """Log-log time and memory against N, and error against time at the largest N with errors."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    res = [r for r in data["results"] if not r.get("skipped")]
    methods = list(dict.fromkeys(r["method"] for r in res))
    for m in methods:
        rs = [r for r in res if r["method"] == m]
        ns = [r["n"] for r in rs]
        axes[0].loglog(ns, [r["time_s"] * 1e3 for r in rs], "o-", label=m)
        axes[1].loglog(ns, [max(r["peak_mb"], 1e-2) for r in rs], "o-", label=m)
    ns_all = sorted({r["n"] for r in res})
    if ns_all:
        for ax, y0 in ((axes[0], min(r["time_s"] * 1e3 for r in res)), (axes[1], 1.0)):
            n0 = ns_all[0]
            ax.loglog(ns_all, [y0 * (n / n0) ** 2 for n in ns_all], "k--", lw=0.8, label="slope 2")
            ax.loglog(ns_all, [y0 * (n / n0) for n in ns_all], "k:", lw=0.8, label="slope 1")
    axes[0].set(xlabel="sequence length N (tokens)", ylabel="CPU time per call (ms)",
                title="Time (d = 64, float32, one CPU thread)")
    axes[1].set(xlabel="sequence length N (tokens)", ylabel="peak extra memory (MB)", title="Peak memory")
    errs = [r for r in res if "rel_err" in r and r["method"] != "exact"]  # exact is the reference
    if errs:
        n_err = max(r["n"] for r in errs)
        for i, r in enumerate(r for r in errs if r["n"] == n_err):
            t = r["time_s"] * 1e3
            for key, marker, label in (("rel_err", "o", "i.i.d. inputs"), ("rel_err_smooth", "^", "structured inputs")):
                axes[2].scatter(t, max(r[key], 1e-9), marker=marker, color=f"C{methods.index(r['method'])}", s=45)
                if i == 0:
                    axes[2].scatter([], [], marker=marker, color="grey", label=label)
            axes[2].annotate(r["method"], (t, max(r["rel_err_smooth"], 1e-9)), fontsize=9, xytext=(4, -10),
                             textcoords="offset points")
        axes[2].set_xscale("log")
        axes[2].set_yscale("log")
        axes[2].legend(fontsize=8, loc="center right")
        axes[2].set(xlabel="CPU time per call (ms)", ylabel="relative error (Frobenius)",
                    title=f"Accuracy against speed at N = {n_err}")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
    axes[2].grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def load_recorded(path: str | Path = RECORDED) -> dict:
    """The recorded full run (``attnkit/data/bench/efficient-cpu.json``)."""
    with open(path) as f:
        return json.load(f)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1; got {args.repeats}")
    if args.mem_cap_gb <= 0:
        raise SystemExit(f"--mem-cap-gb must be positive; got {args.mem_cap_gb}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"efficient attention benchmark: N = {args.min_n}..{args.max_n}, d = {args.d}, "
          f"memory cap {args.mem_cap_gb:g} GB, time cap {args.time_cap_s:g} s, "
          f"{args.threads or torch.get_num_threads()} threads")
    data = run_benchmark(args)
    print()
    print(format_table(data))
    written = write_results(out, "efficient", data, None if args.no_plot else plot)
    print("wrote " + " and ".join(map(str, written)))
    return 0
