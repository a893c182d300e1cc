"""Recorded multi-seed runs for the Part III chapters: the claims whose seeds do not fit a chapter's budget.

A chapter runs one seed live; the table of several seeds comes from here, recorded with its
provenance (date, versions, machine, command) in ``attnkit/data/records/<name>.json``::

    python -m attnkit.transformers.records warmup       [--seeds 3] [--steps 200]
    python -m attnkit.transformers.records relational   [--seeds 3] [--steps 800 2400]
    python -m attnkit.transformers.records sets         [--seeds 3] [--steps 150]

- ``warmup``: 12-block encoders (post- and pre-norm) on the reversal task at a peak rate of
  1e-2, with a constant rate, Vaswani's warm-up + decay, or the decay alone; and 2-block ones at
  3e-3 (the chapter's scale), to show where the warm-up matters.
- ``relational``: the relation network, the MLP and the self-attention reasoner of the
  Transformer chapter, after the chapter's 800 steps and after longer training.
- ``sets``: the maximum of a set with Deep Sets (sum, mean, max and attention pooling) and the
  Set Transformer, the chapter's models and budget, several seeds.

``load_record(name)`` reads a recorded file (what the chapters call).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

RECORDS = Path(__file__).resolve().parent.parent / "data" / "records"
"""Where the recorded JSON files live (inside the package, so chapters find them offline)."""


def provenance(argv: list[str]) -> dict[str, object]:
    """Date, versions, machine and the exact command of a recording."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m attnkit.transformers.records " + " ".join(argv),
        "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores (shared), "
                   f"{platform.system()} {platform.release()}",
    }


def summary(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd, "min": min(values), "max": max(values)}


def record_warmup(seeds: int, steps: int) -> dict[str, object]:
    from attnkit.transformers.warmup import SCHEDULES, warmup_run

    settings = [{"n_layers": 12, "lr": 1e-2, "schedule": s} for s in SCHEDULES]
    settings += [{"n_layers": 2, "lr": 3e-3, "schedule": s} for s in ("constant", "noam")]
    rows = []
    for cfg in settings:
        for norm in ("post", "pre"):
            runs = [warmup_run(norm, steps=steps, seed=seed, **cfg) for seed in range(seeds)]
            rows.append({**cfg, "norm": norm, "steps": steps, "seeds": list(range(seeds)),
                         "final_loss": [r["final_loss"] for r in runs],
                         "token_accuracy": [r["token_accuracy"] for r in runs],
                         "accuracy": summary([r["token_accuracy"] for r in runs])})
            print(rows[-1]["norm"], cfg, rows[-1]["accuracy"], flush=True)
    return {"what": "EncoderTagger (d_model 32, 2 heads, d_ff 64) reversing 8 digits; Adam betas (0.9, 0.98), "
                    "no clipping, warm-up 50 steps, batches of 64; token accuracy on 500 test sequences",
            "rows": rows}


def record_relational(seeds: int, steps: list[int]) -> dict[str, object]:
    from attnkit.datasets.sequences import relational_task
    from attnkit.transformers.blocks import train_steps
    from attnkit.transformers.relational import (
        AttentionReasoner,
        MLPReasoner,
        RelationNetwork,
        accuracy_by_question,
        reasoning_loss,
    )

    makers = {"relation network": lambda: RelationNetwork(10, 9, 6, hidden=64),
              "MLP on all objects": lambda: MLPReasoner(10, 9, 6, n_objects=6),
              "self-attention": lambda: AttentionReasoner(10, 9, 6, d_model=32, n_heads=2, n_layers=2)}
    test = relational_task(2000, seed=99)
    rows = []
    for name, make in makers.items():
        for n_steps in steps:
            accs = []
            for seed in range(seeds):
                torch.manual_seed(seed)
                model = make()
                train_steps(model, lambda step, s=seed: relational_task(64, seed=1000 * (s + 1) + step),
                            reasoning_loss, steps=n_steps, lr=3e-3, seed=seed, desc=f"{name}, {n_steps}")
                accs.append(accuracy_by_question(model, test).tolist())
            rows.append({"model": name, "steps": n_steps, "seeds": list(range(seeds)), "accuracy": accs,
                         "per_question": [summary([a[t] for a in accs]) for t in range(3)]})
            print(name, n_steps, [round(s["mean"], 3) for s in rows[-1]["per_question"]], flush=True)
    return {"what": "relational_task (6 objects, 3 question types), batches of 64, Adam lr 3e-3, clip 1.0; "
                    "seed s trains on relational_task(64, seed=1000 (s + 1) + step); accuracy on 2000 test scenes "
                    "(seed 99) per question type",
            "rows": rows}


SET_MODELS = {
    "Set Transformer (ISAB + PMA)": ("set_transformer", {}),
    "Deep Sets, sum pooling": ("deep_sets", {"pool": "sum"}),
    "Deep Sets, mean pooling": ("deep_sets", {"pool": "mean"}),
    "Deep Sets, max pooling": ("deep_sets", {"pool": "max"}),
    "Deep Sets, attention pooling (PMA)": ("deep_sets", {"pool": "attention"}),
}
"""The set models of the Transformer chapter: name -> (kind, keyword arguments)."""


def make_set_model(name: str) -> torch.nn.Module:
    """A fresh model of ``SET_MODELS`` (the chapter's sizes)."""
    from attnkit.transformers.sets import DeepSets, SetTransformer

    kind, kw = SET_MODELS[name]
    if kind == "set_transformer":
        return SetTransformer(1, 1, d_model=32, n_heads=4, n_layers=1, n_inducing=4)
    return DeepSets(1, 1, d_hidden=64, **kw)


def set_max_run(name: str, *, steps: int = 150, seed: int = 0) -> dict[str, object]:
    """Train ``SET_MODELS[name]`` on the set maximum; returns losses, test MAE and the model.

    Batches ``set_max_task(64, seed=1000 (seed + 1) + step)``, Adam lr 3e-3, clip 1.0, MSE; the
    test set is ``set_max_task(1000, seed=99)``.
    """
    from attnkit.datasets.sequences import set_max_task
    from attnkit.masks import padding_mask
    from attnkit.transformers.blocks import train_steps

    def loss(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
        x, lengths, y = batch
        return torch.nn.functional.mse_loss(model(x, padding_mask(lengths, x.shape[1]))[:, 0], y)

    torch.manual_seed(seed)
    model = make_set_model(name)
    losses = train_steps(model, lambda step: set_max_task(64, seed=1000 * (seed + 1) + step), loss, steps=steps,
                         lr=3e-3, seed=seed, desc=name)
    x, lengths, y = set_max_task(1000, seed=99)
    with torch.no_grad():
        mae = float((model(x, padding_mask(lengths, x.shape[1]))[:, 0] - y).abs().mean())
    return {"losses": losses, "mae": mae, "model": model}


def record_sets(seeds: int, steps: int) -> dict[str, object]:
    rows = []
    for name in SET_MODELS:
        runs = [set_max_run(name, steps=steps, seed=seed) for seed in range(seeds)]
        params = sum(p.numel() for p in runs[0]["model"].parameters())
        rows.append({"model": name, "parameters": params, "steps": steps, "seeds": list(range(seeds)),
                     "mae": [r["mae"] for r in runs], "summary": summary([r["mae"] for r in runs])})
        print(name, rows[-1]["summary"], flush=True)
    return {"what": "maximum of 2-10 numbers in [0, 1) (set_max_task); batches of 64, Adam lr 3e-3, clip 1.0, MSE; "
                    "mean absolute error on 1000 test sets (seed 99)",
            "rows": rows}


def load_record(name: str) -> dict[str, object]:
    """The recorded runs ``attnkit/data/records/<name>.json`` (``provenance`` and ``rows``)."""
    path = RECORDS / f"{name}.json"
    if not path.exists():
        have = sorted(p.stem for p in RECORDS.glob("*.json"))
        raise ValueError(f"no recorded runs named {name!r}; recorded: {have}")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m attnkit.transformers.records", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="name", required=True)
    w = sub.add_parser("warmup")
    w.add_argument("--seeds", type=int, default=3)
    w.add_argument("--steps", type=int, default=200)
    r = sub.add_parser("relational")
    r.add_argument("--seeds", type=int, default=3)
    r.add_argument("--steps", type=int, nargs="+", default=[800, 2400])
    st = sub.add_parser("sets")
    st.add_argument("--seeds", type=int, default=3)
    st.add_argument("--steps", type=int, default=150)
    for p in (w, r, st):
        p.add_argument("--out", type=Path, default=None, help="output file (default: attnkit/data/records/NAME.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    record = {"warmup": record_warmup, "relational": record_relational, "sets": record_sets}[args.name]
    body = record(args.seeds, args.steps)
    out = args.out or RECORDS / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"provenance": provenance(argv), **body}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
