"""Recorded multi-seed runs for the Part V chapters (too slow for a chapter's budget).

    python -m attnkit.llm.records kv-heads    [--seeds 3] [--steps 600] [--jobs 1]
    python -m attnkit.llm.records positions   [--seeds 3] [--steps 600] [--jobs 1] [--kinds K ...]

- ``kv-heads``: the tiny decoder (2 layers, 8 query heads, width 64, context 64, learned
  positions) trained with ``H_kv`` = 1, 2, 4, 8 key/value heads; validation loss and cache
  bytes per token. Then each seed's multi-head model mean-pooled to ``H_kv`` = 1, 2, 4
  (``attnkit.llm.train.pool_kv_heads``), evaluated before and after uptraining for 5% of
  the steps.
- ``positions``: the same decoder (``H_kv = H``) with each kind of position
  (learned, sinusoidal, rotary, ALiBi, none), trained at context 64 and evaluated on windows
  of 256 characters: the loss at every position (learned positions stop at 64). Rotary is also
  evaluated with position interpolation (angles scaled by 64 / 256, no fine-tuning).
  ``--kinds`` reruns only those kinds and merges their rows into the existing JSON (the other
  rows are kept; each row keeps the provenance of the run that made it); the seeds and steps
  default to the existing record's and must match them.

``--jobs`` runs the training runs in that many processes (one thread each; the results do not
depend on it). JSON with provenance in ``attnkit/data/records/llm-<name>.json``; ``load_record(name)`` reads it.
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


def _kv_job(job: tuple[int, int, int]) -> dict[str, object]:
    """One seed of one ``H_kv``; the multi-head runs also pool to every smaller ``H_kv`` and uptrain."""
    hkv, seed, steps = job
    torch.set_num_threads(1)
    corpus = load_corpus()
    cfg = GPTConfig(n_kv_head=hkv)
    model = train_gpt(cfg, steps=steps, seed=seed, eval_every=steps)["model"]
    out: dict[str, object] = {"n_kv_head": hkv, "seed": seed, "params": model.num_params(),
                              "val": evaluate(model, corpus.val, n=EVAL_N)}
    if hkv == cfg.n_head:
        uptrain = max(1, steps // 20)
        pooled = {}
        for h in KV_HEADS[:-1]:
            p = pool_kv_heads(model, h)
            before = evaluate(p, corpus.val, n=EVAL_N)
            up = train_gpt(p, steps=uptrain, seed=100 + seed, lr=3e-3, warmup=2, eval_every=uptrain)["model"]
            pooled[h] = (before, evaluate(up, corpus.val, n=EVAL_N))
        out["pooled"], out["uptrain"] = pooled, uptrain
    print("H_kv", hkv, "seed", seed, round(out["val"], 4), flush=True)
    return out


def _run_jobs(fn: object, jobs: list, n_jobs: int) -> list:
    if n_jobs <= 1:
        return [fn(j) for j in jobs]
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(n_jobs) as pool:
        return pool.map(fn, jobs, chunksize=1)


def record_kv_heads(seeds: int, steps: int, jobs: int = 1) -> dict[str, object]:
    todo = [(h, s, steps) for h in reversed(KV_HEADS) for s in range(seeds)]  # the pooling runs first
    done = _run_jobs(_kv_job, todo, jobs)
    rows, pooled = [], []
    for hkv in KV_HEADS:
        runs = sorted((r for r in done if r["n_kv_head"] == hkv), key=lambda r: r["seed"])
        losses = [r["val"] for r in runs]
        rows.append({"n_kv_head": hkv, "params": runs[0]["params"], "val": losses, "summary": summary(losses),
                     "cache_bytes_per_token": cache_bytes(GPTConfig().n_layer, hkv, GPTConfig().d_head, 1)})
    mha = sorted((r for r in done if "pooled" in r), key=lambda r: r["seed"])
    uptrain = mha[0]["uptrain"]
    for hkv in KV_HEADS[:-1]:
        before = [r["pooled"][hkv][0] for r in mha]
        after = [r["pooled"][hkv][1] for r in mha]
        pooled.append({"n_kv_head": hkv, "uptrain_steps": uptrain, "before": before, "after": after,
                       "before_summary": summary(before), "after_summary": summary(after)})
    return {"what": f"GPT 2 layers, 8 query heads, d_model 64, context 64, learned positions; {steps} steps of "
                    "AdamW (lr 1e-2, warm-up 20, cosine to 10%), batches of 32; validation cross-entropy "
                    f"(nats/char) on {EVAL_N} fixed windows of 64. Pooled: each seed's MHA model mean-pooled, "
                    f"then uptrained {uptrain} steps at lr 3e-3.",
            "steps": steps, "seeds": list(range(seeds)), "rows": rows, "pooled": pooled}


def _pos_job(job: tuple[str, int, int]) -> dict[str, object]:
    kind, seed, steps = job
    torch.set_num_threads(1)
    corpus = load_corpus()
    x, y = eval_windows(corpus.val, 64, EXTRAP_LEN)
    m = train_gpt(GPTConfig(positions=kind), steps=steps, seed=seed, eval_every=steps)["model"]
    L = EXTRAP_LEN if kind != "learned" else m.cfg.block_size
    curve = nll_per_position(m, x[:, :L], y[:, :L]).tolist()  # (L,)
    out: dict[str, object] = {"positions": kind, "seed": seed, "curve": curve}
    if kind == "rotary":
        m.set_rope_scale(m.cfg.block_size / EXTRAP_LEN)
        out["pi"] = nll_per_position(m, x, y).tolist()
    print(kind, "seed", seed, round(sum(out["curve"]) / L, 4), flush=True)
    return out


def record_positions(seeds: int, steps: int, jobs: int = 1,
                     kinds: tuple[str, ...] = POSITIONS) -> dict[str, object]:
    """Train ``seeds`` decoders of ``steps`` steps for each of ``kinds``; rows in ``POSITIONS`` order."""
    bad = [k for k in kinds if k not in POSITIONS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {POSITIONS}; got {tuple(kinds)!r}")
    kinds = tuple(k for k in POSITIONS if k in kinds)
    done = _run_jobs(_pos_job, [(k, s, steps) for k in kinds for s in range(seeds)], jobs)
    rows = []
    for kind in kinds:
        runs = sorted((r for r in done if r["positions"] == kind), key=lambda r: r["seed"])
        rows.append({"positions": kind, "curves": [r["curve"] for r in runs]})
        if kind == "rotary":
            rows.append({"positions": "rotary + PI", "curves": [r["pi"] for r in runs]})
    return {"what": f"GPT 2 layers, 8 heads, d_model 64, trained at context 64 ({steps} steps, as kv-heads); "
                    f"cross-entropy (nats/char) at each position of 64 fixed validation windows of {EXTRAP_LEN} "
                    "(learned positions: the first 64 only). 'rotary + PI': the rotary models with angles "
                    f"scaled by 64/{EXTRAP_LEN} (position interpolation, no fine-tuning). Sinusoidal: "
                    "token embeddings times sqrt(64) before the sinusoids are added (Vaswani et al., "
                    "sec. 3.4).",
            "steps": steps, "seeds": list(range(seeds)), "train_length": 64, "eval_length": EXTRAP_LEN,
            "rows": rows}


def _row_kind(row: dict[str, object]) -> str:
    return str(row["positions"]).split(" + ")[0]  # "rotary + PI" comes from the rotary runs


def _merge_positions(old: dict[str, object], new: dict[str, object], prov: dict[str, object]) -> dict[str, object]:
    """``old`` record with the rows of ``new``'s kinds replaced by ``new``'s, each stamped with ``prov``.

    The rows kept from ``old`` get ``old``'s provenance (if they had none of their own); the
    top-level ``provenance`` stays the first full run's and ``updates`` lists each rerun.
    ``new`` must have been run with ``old``'s seeds and steps.
    """
    for key in ("steps", "seeds", "train_length", "eval_length"):
        if old.get(key) != new.get(key):
            raise ValueError(f"a rerun must keep the record's {key}={old.get(key)!r}; got {new.get(key)!r}")
    kinds = {_row_kind(r) for r in new["rows"]}
    rows = {r["positions"]: r for r in old["rows"]}
    for r in rows.values():
        r.setdefault("provenance", old["provenance"])
    for r in new["rows"]:
        rows[r["positions"]] = {**r, "provenance": prov}
    order = [p for k in POSITIONS for p in (k, k + " + PI") if p in rows]
    updates = [*old.get("updates", []), {"kinds": sorted(kinds), "provenance": prov}]
    return {**old, "what": new["what"], "rows": [rows[p] for p in order], "updates": updates}


def load_record(name: str) -> dict[str, object]:
    """The recorded runs ``attnkit/data/records/llm-<name>.json``."""
    if name not in ("kv-heads", "positions"):
        raise ValueError(f"name must be 'kv-heads' or 'positions'; got {name!r}")
    path = RECORDS / f"llm-{name}.json"
    if not path.exists():
        raise ValueError(f"no recorded Part V runs named {name!r}; run python -m attnkit.llm.records {name}")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m attnkit.llm.records", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=["kv-heads", "positions"])
    parser.add_argument("--seeds", type=int, default=None, help="default 3 (with --kinds: the record's)")
    parser.add_argument("--steps", type=int, default=None, help="default 600 (with --kinds: the record's)")
    parser.add_argument("--jobs", type=int, default=1, help="training runs in parallel processes")
    parser.add_argument("--kinds", nargs="+", choices=POSITIONS, default=None,
                        help="positions only: rerun these kinds and merge them into the existing record")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or RECORDS / f"llm-{args.name}.json"
    old = None
    if args.kinds is not None:
        if args.name != "positions":
            parser.error("--kinds applies to the positions record only")
        if not out.exists():
            parser.error(f"--kinds merges into an existing record; {out} does not exist")
        old = json.loads(out.read_text())
        seeds, steps = len(old["seeds"]), old["steps"]
        if (args.seeds not in (None, seeds)) or (args.steps not in (None, steps)):
            parser.error(f"--kinds must keep the record's {seeds} seeds and {steps} steps; "
                         f"got --seeds {args.seeds} --steps {args.steps}")
    else:
        seeds, steps = args.seeds or 3, args.steps or 600
    torch.set_num_threads(1)
    if args.name == "kv-heads":
        body = record_kv_heads(seeds, steps, args.jobs)
    else:
        body = record_positions(seeds, steps, args.jobs, tuple(args.kinds or POSITIONS))
    prov = provenance(argv, "attnkit.llm.records")
    record = {"provenance": prov, **body} if old is None else _merge_positions(old, body, prov)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
