"""Recorded multi-seed runs for the Part V chapters (too slow for a chapter's budget).

    python -m attnkit.llm.records kv-heads    [--seeds 3] [--steps 600]
    python -m attnkit.llm.records positions   [--seeds 3] [--steps 600]

- ``kv-heads``: the tiny decoder (2 layers, 8 query heads, width 64, context 64, learned
  positions) trained with ``H_kv`` = 1, 2, 4, 8 key/value heads; validation loss and cache
  bytes per token. Then each seed's multi-head model mean-pooled to ``H_kv`` = 1, 2, 4
  (``attnkit.llm.train.pool_kv_heads``), evaluated before and after uptraining for 5% of
  the steps.
- ``positions``: the same decoder (``H_kv = H``) with each kind of position
  (learned, sinusoidal, rotary, ALiBi, none), trained at context 64 and evaluated on windows
  of 256 characters: the loss at every position (learned positions stop at 64). Rotary is also
  evaluated with position interpolation (angles scaled by 64 / 256, no fine-tuning).

JSON with provenance in ``attnkit/data/records/llm-<name>.json``; ``load_record(name)`` reads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from attnkit.llm.cache import cache_bytes
from attnkit.llm.corpus import eval_windows, load_corpus
from attnkit.llm.gpt import POSITIONS, GPTConfig, nll_per_position
from attnkit.llm.train import evaluate, pool_kv_heads, train_gpt
from attnkit.transformers.records import RECORDS, provenance, summary

KV_HEADS = (1, 2, 4, 8)
EVAL_N = 128
EXTRAP_LEN = 256


def record_kv_heads(seeds: int, steps: int) -> dict[str, object]:
    corpus = load_corpus()
    rows, pooled = [], []
    for hkv in KV_HEADS:
        cfg = GPTConfig(n_kv_head=hkv)
        runs = [train_gpt(cfg, steps=steps, seed=s, eval_every=steps) for s in range(seeds)]
        losses = [evaluate(r["model"], corpus.val, n=EVAL_N) for r in runs]
        rows.append({"n_kv_head": hkv, "params": runs[0]["model"].num_params(), "val": losses,
                     "summary": summary(losses),
                     "cache_bytes_per_token": cache_bytes(cfg.n_layer, hkv, cfg.d_head, 1)})
        print("H_kv", hkv, rows[-1]["summary"], flush=True)
        if hkv == cfg.n_head:
            mha = [r["model"] for r in runs]
    uptrain = max(1, steps // 20)
    for hkv in KV_HEADS[:-1]:
        before, after = [], []
        for s, m in enumerate(mha):
            p = pool_kv_heads(m, hkv)
            before.append(evaluate(p, corpus.val, n=EVAL_N))
            up = train_gpt(p, steps=uptrain, seed=100 + s, lr=3e-3, warmup=2, eval_every=uptrain)["model"]
            after.append(evaluate(up, corpus.val, n=EVAL_N))
        pooled.append({"n_kv_head": hkv, "uptrain_steps": uptrain, "before": before, "after": after,
                       "before_summary": summary(before), "after_summary": summary(after)})
        print("pooled", hkv, pooled[-1]["before_summary"]["mean"], pooled[-1]["after_summary"]["mean"], flush=True)
    return {"what": f"GPT 2 layers, 8 query heads, d_model 64, context 64, learned positions; {steps} steps of "
                    "AdamW (lr 1e-2, warm-up 20, cosine to 10%), batches of 32; validation cross-entropy "
                    f"(nats/char) on {EVAL_N} fixed windows of 64. Pooled: each seed's MHA model mean-pooled, "
                    f"then uptrained {uptrain} steps at lr 3e-3.",
            "steps": steps, "seeds": list(range(seeds)), "rows": rows, "pooled": pooled}


def record_positions(seeds: int, steps: int) -> dict[str, object]:
    corpus = load_corpus()
    x, y = eval_windows(corpus.val, 64, EXTRAP_LEN)
    rows = []
    for kind in POSITIONS:
        curves, pi = [], []
        for s in range(seeds):
            m = train_gpt(GPTConfig(positions=kind), steps=steps, seed=s, eval_every=steps)["model"]
            L = EXTRAP_LEN if kind != "learned" else m.cfg.block_size
            curves.append(nll_per_position(m, x[:, :L], y[:, :L]).tolist())
            if kind == "rotary":
                m.set_rope_scale(m.cfg.block_size / EXTRAP_LEN)
                pi.append(nll_per_position(m, x, y).tolist())
        rows.append({"positions": kind, "curves": curves})
        if pi:
            rows.append({"positions": "rotary + PI", "curves": pi})
        for r in rows[-2 if pi else -1:]:
            print(r["positions"], [round(sum(c[a:b]) / len(c[a:b]), 3) for c in r["curves"]
                                   for a, b in ((0, 64), (64, 128), (128, 256)) if len(c) >= b], flush=True)
    return {"what": f"GPT 2 layers, 8 heads, d_model 64, trained at context 64 ({steps} steps, as kv-heads); "
                    f"cross-entropy (nats/char) at each position of 64 fixed validation windows of {EXTRAP_LEN} "
                    "(learned positions: the first 64 only). 'rotary + PI': the rotary models with angles "
                    f"scaled by 64/{EXTRAP_LEN} (position interpolation, no fine-tuning).",
            "steps": steps, "seeds": list(range(seeds)), "train_length": 64, "eval_length": EXTRAP_LEN,
            "rows": rows}


def load_record(name: str) -> dict[str, object]:
    """The recorded runs ``attnkit/data/records/llm-<name>.json``."""
    path = RECORDS / f"llm-{name}.json"
    if not path.exists():
        raise ValueError(f"no recorded Part V runs named {name!r}; run python -m attnkit.llm.records {name}")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m attnkit.llm.records", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=["kv-heads", "positions"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    body = (record_kv_heads if args.name == "kv-heads" else record_positions)(args.seeds, args.steps)
    prov = provenance(argv)
    prov["command"] = "python -m attnkit.llm.records " + " ".join(argv)
    out = args.out or RECORDS / f"llm-{args.name}.json"
    out.write_text(json.dumps({"provenance": prov, **body}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
