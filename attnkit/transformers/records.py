"""Recorded multi-seed runs for the Part III chapters: the claims whose seeds do not fit a chapter's budget.

A chapter runs one seed live; the table of several seeds comes from here, recorded with its
provenance (date, versions, machine, command) in ``attnkit/data/records/<name>.json``::

    python -m attnkit.transformers.records warmup       [--seeds 3] [--steps 200]
    python -m attnkit.transformers.records relational   [--seeds 3] [--steps 800 2400]
    python -m attnkit.transformers.records sets         [--seeds 3] [--steps 150]
    python -m attnkit.transformers.records nonlocal     [--seeds 3] [--steps 600]
    python -m attnkit.transformers.records gat          [--seeds 10] [--steps 150]

- ``warmup``: 12-block encoders (post- and pre-norm) on the reversal task at a peak rate of
  1e-2, with a constant rate, Vaswani's warm-up + decay, or the decay alone; and 2-block ones at
  3e-3 (the chapter's scale), to show where the warm-up matters.
- ``relational``: the relation network, the MLP and the self-attention reasoner of the
  Transformer chapter, after the chapter's 800 steps and after longer training.
- ``nonlocal``: the denoiser of *Attention everywhere* on repeated patches, with and without
  its non-local block, several seeds (test error and the weight the block puts on copies).
- ``gat``: one- and eight-head GATs and the uniform-weight baseline on the karate club, one
  run per random split of the labelled nodes (``--seeds`` splits, ``--steps`` epochs).
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


def provenance(argv: list[str], module: str = "attnkit.transformers.records") -> dict[str, object]:
    """Date, versions, machine and the exact command (``python -m module argv...``) of a recording;
    shared by the record commands of every part."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": f"python -m {module} " + " ".join(argv),
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
    from attnkit.transformers.relational import REASONERS, relational_run

    rows = []
    for name in REASONERS:
        for n_steps in steps:
            accs = [relational_run(name, steps=n_steps, seed=seed)["accuracy"] for seed in range(seeds)]
            rows.append({"model": name, "steps": n_steps, "seeds": list(range(seeds)), "accuracy": accs,
                         "per_question": [summary([a[t] for a in accs]) for t in range(3)]})
            print(name, n_steps, [round(s["mean"], 3) for s in rows[-1]["per_question"]], flush=True)
    return {"what": "relational_task (6 objects, 3 question types), batches of 64, Adam lr 3e-3, clip 1.0; "
                    "seed s trains on relational_task(64, seed=1000 (s + 1) + step); accuracy on 2000 test scenes "
                    "(seed 99) per question type",
            "rows": rows}


def record_sets(seeds: int, steps: int) -> dict[str, object]:
    from attnkit.transformers.sets import SET_MODELS, set_max_run

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


def record_nonlocal(seeds: int, steps: int) -> dict[str, object]:
    from attnkit.transformers.nonlocal_block import denoising_run

    rows = []
    for block in (False, True):
        runs = [denoising_run(block, steps=steps, seed=seed, progress=False) for seed in range(seeds)]
        row = {"model": "CNN + non-local block" if block else "CNN only", "steps": steps, "seeds": list(range(seeds)),
               "mse": [r["mse"] for r in runs], "summary": summary([r["mse"] for r in runs])}
        if block:
            row["on_copies"] = [r["on_copies"] for r in runs]
            row["share"] = runs[0]["share"]
        rows.append(row)
        print(row["model"], row["summary"], row.get("on_copies"), flush=True)
    return {"what": "Denoiser (32 channels, one token per 4 x 4 cell) on repeated_patches (noise 0.2, 2048 training "
                    "images of seed 0, 256 test images of seed 1); Adam lr 5e-3 decaying linearly, batches of 32; "
                    "test MSE", "rows": rows}


def record_gat(seeds: int, steps: int) -> dict[str, object]:
    from attnkit.transformers.gat import GRAPH_MODELS, karate_run

    rows = []
    for name in GRAPH_MODELS:
        runs = [karate_run(name, split, epochs=steps) for split in range(seeds)]
        rows.append({"model": name, "epochs": steps, "splits": list(range(seeds)),
                     "test_accuracy": [r["test_acc"] for r in runs], "train_accuracy": [r["train_acc"] for r in runs],
                     "summary": summary([r["test_acc"] for r in runs])})
        print(name, rows[-1]["summary"], flush=True)
    return {"what": "karate club, 2 leaders + 1 random member per faction labelled (split s = karate_club(2, seed=s)), "
                    "30 test nodes; GraphNet with 8 features per head, dropout 0.6 (and 0.6 on GAT's coefficients), "
                    "Adam lr 0.01, weight decay 5e-4, full batch; test accuracy", "rows": rows}


def load_record(name: str, *, prefix: str = "") -> dict[str, object]:
    """The recorded runs ``attnkit/data/records/<prefix><name>.json`` (``provenance`` and ``rows``).

    Part III's files have no prefix; other parts name theirs ``part2_<name>``, ``llm-<name>``.
    """
    path = RECORDS / f"{prefix}{name}.json"
    if not path.exists():
        others = ("part2_", "llm-")
        have = sorted(p.stem.removeprefix(prefix) for p in RECORDS.glob(f"{prefix}*.json")
                      if prefix or not p.stem.startswith(others))
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
    nl = sub.add_parser("nonlocal")
    nl.add_argument("--seeds", type=int, default=3)
    nl.add_argument("--steps", type=int, default=600)
    gt = sub.add_parser("gat")
    gt.add_argument("--seeds", type=int, default=10)
    gt.add_argument("--steps", type=int, default=150)
    st = sub.add_parser("sets")
    st.add_argument("--seeds", type=int, default=3)
    st.add_argument("--steps", type=int, default=150)
    for p in (w, r, st, nl, gt):
        p.add_argument("--out", type=Path, default=None, help="output file (default: attnkit/data/records/NAME.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    record = {"warmup": record_warmup, "relational": record_relational, "sets": record_sets,
              "nonlocal": record_nonlocal, "gat": record_gat}[args.name]
    body = record(args.seeds, args.steps)
    out = args.out or RECORDS / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"provenance": provenance(argv), **body}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
