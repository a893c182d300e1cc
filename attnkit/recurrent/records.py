"""Recorded multi-seed runs for the Part II chapters: the claims whose seeds do not fit a chapter's budget.

A chapter runs one seed live; the table of several seeds comes from here, recorded with its
provenance (date, versions, machine, command) in ``attnkit/data/records/part2_<name>.json``::

    python -m attnkit.recurrent.records seq2seq   [--seeds 3] [--epochs 30]
    python -m attnkit.recurrent.records captions  [--seeds 3] [--epochs 4]
    python -m attnkit.recurrent.records nli       [--seeds 3]
    python -m attnkit.recurrent.records feedback  [--seeds 3]

- ``seq2seq``: the chapter's corpus and split (``split_corpus(seed=0)``); for every model seed,
  Bahdanau, no attention and Luong's dot / general / concat / local-p decoders, all with the
  same budget (``--epochs``): held-out and training exact match, token and edit accuracy, exact
  matches per length group, and the Bahdanau alignments of a training sentence (*i love you*)
  and of held-out ones.
- ``captions``: the shapes captioner after ``--epochs`` and twice as many epochs; with the
  doubly stochastic penalty (lambda 1); without coordinate channels; hard attention
  (REINFORCE) with and without Xu's semi-sampling (p = 0.5), decoded hard and soft.
- ``nli``: the Self-attention (2016) chapter's models and budgets, training and held-out
  accuracy, plus the LSTMN trained three times longer.
- ``feedback``: the Wang et al. (2014) feedback demo of the seq2seq chapter (the feedback
  classifier, its feed-forward half and a plain MLP of similar size).

``load_record(name)`` reads a recorded file (what the chapters call; ``name`` without the
``part2_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from attnkit.transformers.records import load_record as _load_record
from attnkit.transformers.records import provenance, summary

RECORDS = Path(__file__).resolve().parent.parent / "data" / "records"
"""Where the recorded JSON files live (inside the package, so chapters find them offline)."""

SEQ2SEQ_SIZES = {"E": 64, "H": 128, "A": 64, "dropout": 0.3}
"""The seq2seq chapter's model sizes."""

SEQ2SEQ_MODELS = {
    "Bahdanau additive (global)": {"attention": "bahdanau", "score": "additive"},
    "no attention (Cho et al.)": {"attention": None},
    "Luong dot (global)": {"attention": "luong", "score": "dot"},
    "Luong general (global)": {"attention": "luong", "score": "general"},
    "Luong concat (global)": {"attention": "luong", "score": "concat"},
    "Luong general, local-p (D = 3)": {"attention": "luong", "score": "general", "window": 3},
}
"""Name -> ``Seq2Seq`` keyword arguments of the recorded translation models."""

LENGTH_BINS = ((2, 4), (5, 7), (8, 10), (11, 13), (14, 16), (17, 22))
"""English sentence-length groups (inclusive) of the seq2seq chapter."""

SHOWCASE = ("i love you", "we love him", "pick it up", "she does not love me", "look it up")
"""Sentences whose Bahdanau alignments are recorded (the first and the last are training sentences)."""


def by_length(lengths: list[int], flags: list[bool]) -> list[list[int]]:
    """``[correct, count]`` per ``LENGTH_BINS`` group (English sentence lengths, inclusive)."""
    out = []
    for lo, hi in LENGTH_BINS:
        sel = [f for L, f in zip(lengths, flags, strict=True) if lo <= L <= hi]
        out.append([int(sum(sel)), len(sel)])
    return out


def record_seq2seq(seeds: int, epochs: int) -> dict[str, object]:
    from attnkit.datasets.translation import build_vocabs, load_corpus, split_corpus
    from attnkit.recurrent.seq2seq import Seq2Seq, evaluate, train_seq2seq, translate

    pairs = load_corpus()
    train, test = split_corpus(pairs, held_out=0.2, seed=0)
    sv, tv = build_vocabs(pairs)
    in_train = {en for en, _ in train}
    rows = []
    for name, cfg in SEQ2SEQ_MODELS.items():
        row: dict[str, object] = {"model": name, "epochs": epochs, "seeds": list(range(seeds)), "runs": []}
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = Seq2Seq(len(sv), len(tv), **cfg, **SEQ2SEQ_SIZES)
            t0 = time.perf_counter()
            train_seq2seq(model, train, sv, tv, epochs=epochs, batch_size=32, lr=1e-2, seed=seed, progress=False)
            secs = time.perf_counter() - t0
            res, res_tr = evaluate(model, test, sv, tv), evaluate(model, train, sv, tv)
            run = {"seed": seed, "seconds": secs, "held_out_exact": res["exact"], "held_out_token": res["token"],
                   "held_out_edit": res["edit"], "train_exact": res_tr["exact"], "train_token": res_tr["token"],
                   "by_length": by_length(res["lengths"], res["exact_each"])}
            if cfg["attention"] is not None:
                run["alignments"] = {}
                for sent in SHOWCASE:
                    sw, ow, W = translate(model, sent, sv, tv)
                    run["alignments"][sent] = {"source": sw, "output": ow, "weights": W.tolist(),
                                               "split": "training" if sent in in_train else "held-out"}
            row["runs"].append(run)
            print(name, seed, f"{res['exact']:.3f} (train {res_tr['exact']:.3f}) {secs:.0f}s", flush=True)
        row["summary"] = summary([r["held_out_exact"] for r in row["runs"]])
        rows.append(row)
    return {"what": "seq2seq chapter: templated en->fr corpus, split_corpus(held_out=0.2, seed=0) (640 training, "
                    "160 held-out pairs); E 64, H 128, A 64, dropout 0.3; Adam lr 1e-2 with cosine decay, batches of "
                    "32, clip 1.0; torch.manual_seed(s) before building, train_seq2seq(seed=s); greedy decoding",
            "length_bins": [list(b) for b in LENGTH_BINS], "rows": rows}


def record_captions(seeds: int, epochs: int) -> dict[str, object]:
    from attnkit.datasets.shapes import make_shapes
    from attnkit.recurrent.show_attend_tell import ShowAttendTell, caption_accuracy, train_captioner

    train, test = make_shapes(3000, seed=0), make_shapes(500, seed=1)
    V = len(train.vocab)
    settings = [
        ("soft", {"attention": "soft"}, epochs, {}),
        ("soft", {"attention": "soft"}, 2 * epochs, {}),
        ("soft + doubly stochastic (lambda 1)", {"attention": "soft", "doubly_stochastic": 1.0}, epochs, {}),
        ("soft, no coordinate channels", {"attention": "soft"}, 2 * epochs, {"coords": False}),
        ("hard (REINFORCE)", {"attention": "hard"}, epochs, {}),
        ("hard, semi-sampling p = 0.5", {"attention": "hard", "semi_sampling_p": 0.5}, epochs, {}),
    ]
    rows = []
    for name, kw, n_epochs, model_kw in settings:
        row: dict[str, object] = {"model": name, "epochs": n_epochs, "seeds": list(range(seeds)), "runs": []}
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = ShowAttendTell(V, **model_kw)
            train_captioner(model, train.images, train.tokens, epochs=n_epochs, lr=1e-2, seed=seed, progress=False,
                            **kw)
            run: dict[str, object] = {"seed": seed}
            decodes = ("argmax", "soft") if kw["attention"] == "hard" else ("soft",)
            for dec in decodes:
                ex, wd = caption_accuracy(model, test.images, test.tokens, attention=dec)
                tr_ex, _ = caption_accuracy(model, train.images[:500], train.tokens[:500], attention=dec)
                run[f"{dec}_decoding"] = {"held_out_exact": ex, "held_out_words": wd, "train_exact_500": tr_ex}
            pred, _ = model.generate(test.images, max_len=test.tokens.shape[1] - 1,
                                     attention="argmax" if kw["attention"] == "hard" else "soft")
            ref = test.tokens[:, 1:]
            real = ref != 0
            run["per_position"] = [float(((pred[:, t] == ref[:, t]) & real[:, t]).sum() / real[:, t].sum())
                                   for t in range(ref.shape[1])]
            row["runs"].append(run)
            print(name, n_epochs, seed, run[f"{decodes[0]}_decoding"], flush=True)
        key = f"{'argmax' if kw['attention'] == 'hard' else 'soft'}_decoding"
        row["summary"] = summary([r[key]["held_out_exact"] for r in row["runs"]])
        rows.append(row)
    return {"what": "show-attend-tell chapter: make_shapes(3000, seed=0) training, make_shapes(500, seed=1) held "
                    "out; ShowAttendTell defaults (8 x 8 grid), Adam lr 1e-2, batches of 64; torch.manual_seed(s), "
                    "train_captioner(seed=s); exact caption match and word accuracy, greedy decoding",
            "rows": rows}


def record_nli(seeds: int) -> dict[str, object]:
    from attnkit.datasets.nli import make_nli
    from attnkit.recurrent.self_attention import (
        BagOfWords,
        DecomposableAttention,
        LSTMNClassifier,
        StructuredSelfAttention,
        nli_accuracy,
        train_nli,
    )

    train, test = make_nli(3000, seed=0), make_nli(600, seed=1)
    V = len(train.vocab)
    settings = [
        ("bag of words", lambda: BagOfWords(V), {"epochs": 8, "lr": 1e-2}),
        ("decomposable attention", lambda: DecomposableAttention(V), {"epochs": 12, "lr": 3e-3}),
        ("decomposable attention + intra-sentence", lambda: DecomposableAttention(V, intra=True),
         {"epochs": 12, "lr": 3e-3}),
        ("LSTMN (intra-attention reader)", lambda: LSTMNClassifier(V), {"epochs": 5, "lr": 1e-2, "batch_size": 128}),
        ("LSTMN, 15 epochs", lambda: LSTMNClassifier(V), {"epochs": 15, "lr": 1e-2, "batch_size": 128}),
        ("structured self-attention, no penalty", lambda: StructuredSelfAttention(V, heads=4),
         {"epochs": 8, "lr": 1e-2}),
        ("structured self-attention, penalty 0.1", lambda: StructuredSelfAttention(V, heads=4),
         {"epochs": 8, "lr": 1e-2, "penalty": 0.1}),
    ]
    rows = []
    for name, build, kw in settings:
        row: dict[str, object] = {"model": name, **kw, "seeds": list(range(seeds)), "held_out": [], "train": []}
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = build()
            torch.manual_seed(seed)
            train_nli(model, train, progress=False, **kw)
            row["held_out"].append(nli_accuracy(model, test))
            row["train"].append(nli_accuracy(model, train))
            print(name, seed, row["held_out"][-1], row["train"][-1], flush=True)
        row["summary"] = summary(row["held_out"])
        rows.append(row)
    return {"what": "self-attention-2016 chapter: make_nli(3000, seed=0) training, make_nli(600, seed=1) held out; "
                    "torch.manual_seed(s) before building and before train_nli; accuracy", "rows": rows}


def record_feedback(seeds: int) -> dict[str, object]:
    from attnkit.recurrent.feedback import feedback_run

    rows: dict[str, dict[str, object]] = {}
    for seed in range(seeds):
        res = feedback_run(seed=seed)
        for name, acc in res["accuracy"].items():
            row = rows.setdefault(name, {"model": name, "seeds": [], "held_out": [], "parameters":
                                         res["parameters"][name]})
            row["seeds"].append(seed)
            row["held_out"].append(acc)
        print(seed, res["accuracy"], flush=True)
    for row in rows.values():
        row["summary"] = summary(row["held_out"])
    return {"what": "feedback_task (attnkit.recurrent.feedback): a target pattern overlaid with a distractor and "
                    "noise; feedback_run(seed=s) trains every model on the task of seed s; held-out accuracy",
            "rows": list(rows.values())}


def load_record(name: str) -> dict[str, object]:
    """The recorded runs ``attnkit/data/records/part2_<name>.json`` (``provenance`` and ``rows``)."""
    return _load_record(name, prefix="part2_")


def main(argv: list[str] | None = None) -> int:
    """The command line: ``python -m attnkit.recurrent.records NAME [--seeds N] ...``."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m attnkit.recurrent.records", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="name", required=True)
    s2s = sub.add_parser("seq2seq")
    s2s.add_argument("--epochs", type=int, default=30)
    cap = sub.add_parser("captions")
    cap.add_argument("--epochs", type=int, default=4)
    nli = sub.add_parser("nli")
    fb = sub.add_parser("feedback")
    for p in (s2s, cap, nli, fb):
        p.add_argument("--seeds", type=int, default=3)
        p.add_argument("--out", type=Path, default=None,
                       help="output file (default: attnkit/data/records/part2_NAME.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.name == "seq2seq":
        body = record_seq2seq(args.seeds, args.epochs)
    elif args.name == "captions":
        body = record_captions(args.seeds, args.epochs)
    elif args.name == "nli":
        body = record_nli(args.seeds)
    else:
        body = record_feedback(args.seeds)
    out = args.out or RECORDS / f"part2_{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"provenance": provenance(argv, "attnkit.recurrent.records"), **body}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


__all__ = ["load_record", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
