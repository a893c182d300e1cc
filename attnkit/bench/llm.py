"""``python -m attnkit.bench llm``: decoding time per token with and without a KV cache.

The Part V decoder (2 layers, 8 heads, width 64, rotary positions, untrained: the time does
not depend on the weights), float32, batch 1, one PyTorch thread. For each context length
``n`` (``--contexts``) it fills the context, then times ``--tokens`` decoding steps:

- ``recompute``: no cache, every step runs the model over the whole sequence (``n + t``);
- ``cache``: a ``attnkit.llm.cache.KVCache``, one token per step;
- ``window``: a ``attnkit.llm.cache.StreamingCache`` of ``--window`` tokens (sliding
  window, the cache stops growing);

and reports milliseconds per token (CPU time, ``time.process_time``, best of ``--repeats``)
and the cache's bytes, measured on its tensors and by the formula
``2 n_layer Hkv n Dh * 4``. Prints a table; writes ``llm.json`` (with provenance) and a
figure ``llm.png`` to ``--out``. The recorded run is ``attnkit/data/bench/llm-cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from attnkit.bench._common import provenance, write_results
from attnkit.llm.cache import KVCache, StreamingCache, cache_bytes
from attnkit.llm.gpt import GPT, GPTConfig

RECORDED = Path(__file__).resolve().parent.parent / "data" / "bench" / "llm-cpu.json"
METHODS = ("recompute", "cache", "window")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m attnkit.bench llm", description=__doc__.split("\n")[0])
    p.add_argument("--contexts", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    p.add_argument("--tokens", type=int, default=16, help="decoding steps timed per context")
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="bench-results")
    p.add_argument("--no-plot", action="store_true")
    return p


def _fill(model: GPT, ctx: torch.Tensor, method: str, window: int) -> object | None:
    if method == "recompute":
        return None
    if method == "cache":
        cache = KVCache()
        model(ctx, cache)
        return cache
    cache = StreamingCache(window)
    for t in range(ctx.shape[1]):  # a rolling cache is filled one token at a time
        model(ctx[:, t:t + 1], cache)
    return cache


@torch.no_grad()
def time_decode(model: GPT, n: int, method: str, *, tokens: int = 16, window: int = 64,
                repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """Milliseconds per decoded token after a context of ``n`` (best of ``repeats``) and the cache bytes."""
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randint(model.cfg.vocab_size, (1, n), generator=g)  # (1, n)
    new = torch.randint(model.cfg.vocab_size, (1, tokens), generator=g)  # (1, tokens)
    best, nbytes = float("inf"), 0
    for _ in range(repeats):
        cache = _fill(model, ctx, method, window)
        seq = ctx
        t0 = time.process_time()
        for t in range(tokens):
            tok = new[:, t:t + 1]  # (1, 1)
            if cache is None:
                seq = torch.cat([seq, tok], 1)
                model(seq)
            else:
                model(tok, cache)
        best = min(best, (time.process_time() - t0) / tokens * 1e3)
        nbytes = cache.nbytes() if cache is not None else 0
    return {"ms_per_token": best, "cache_bytes": nbytes}


def run_benchmark(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model = GPT(GPTConfig(positions="rotary")).eval()
    cfg = model.cfg
    for m in METHODS:  # warm-up: one-off costs are not charged to the first size
        time_decode(model, args.contexts[0], m, tokens=2, window=args.window, repeats=1)
    rows = []
    for n in args.contexts:
        row: dict = {"context": n}
        for m in METHODS:
            row[m] = time_decode(model, n, m, tokens=args.tokens, window=args.window, repeats=args.repeats)
        row["formula_bytes"] = cache_bytes(cfg.n_layer, cfg.kv_heads, cfg.d_head, n + args.tokens)
        rows.append(row)
        print(f"n={n:6d}  " + "  ".join(f"{m} {row[m]['ms_per_token']:.2f} ms" for m in METHODS), flush=True)
    return {"config": {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "d_model": cfg.d_model,
                       "positions": cfg.positions, "tokens": args.tokens, "window": args.window},
            "rows": rows}


def format_table(data: dict) -> str:
    lines = ["context | recompute ms/tok | cache ms/tok | window ms/tok | cache bytes (measured / formula)",
             "---|---|---|---|---"]
    for r in data["rows"]:
        lines.append(f"{r['context']} | {r['recompute']['ms_per_token']:.2f} | {r['cache']['ms_per_token']:.2f} | "
                     f"{r['window']['ms_per_token']:.2f} | {r['cache']['cache_bytes']} / {r['formula_bytes']}")
    return "\n".join(lines)


def plot(data: dict):  # -> matplotlib Figure
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ns = [r["context"] for r in data["rows"]]
    for m, style in zip(METHODS, ("o-", "s-", "^-"), strict=True):
        label = {"recompute": "no cache (recompute the prefix)", "cache": "KV cache",
                 "window": f"rolling cache of {data['config']['window']}"}[m]
        ax.loglog(ns, [r[m]["ms_per_token"] for r in data["rows"]], style, label=label)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("CPU time per decoded token (ms)")
    ax.set_title("Decoding the tiny GPT, one thread")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def load_recorded(path: str | Path = RECORDED) -> dict:
    """The recorded run (``attnkit/data/bench/llm-cpu.json``)."""
    return json.loads(Path(path).read_text())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = run_benchmark(args)
    prov = {**provenance("python -m attnkit.bench llm " + " ".join(argv)), "dtype": "float32",
            "inputs": "random token ids, batch 1; CPU time per token, best of --repeats"}
    data = {"provenance": prov, **data}
    print()
    print(format_table(data))
    written = write_results(out, "llm", data, None if args.no_plot else plot)
    print("wrote " + " and ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
