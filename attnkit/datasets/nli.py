"""A synthetic natural-language-inference set: does the premise entail the hypothesis?

Premises list 2-4 coloured things of a scene; hypotheses claim one coloured thing, named
either by its noun or by its category::

    premise:     a red dog and a blue car and a green apple
    hypothesis:  a red animal        -> entailment     (the dog is a red animal)
    hypothesis:  a blue dog          -> contradiction  (the only dog is red)
    hypothesis:  a red cat           -> neutral        (the premise names no cat)

The label follows :func:`nli_label`, whose reading rule is: *the premise is complete about a
kind of thing if and only if it mentions that kind* (a noun, or a category through one of its
nouns). A hypothesis about a kind the premise names is decided (entailment or contradiction);
one about a kind it never names is neutral (an open world: the speaker did not mention cats).
It is a convention, applied to the kind the hypothesis names: under it *a blue animal* is a
contradiction of *a red dog* while *a blue cat* is neutral, although a blue cat would be a blue
animal; a strict logician would call the first neutral too. Contradictions and neutrals mostly use a colour that does
occur in the premise (on another thing), so a model must *bind* each colour to its noun:
counting words (a bag of words) is not enough.

Shapes: ``premise: (N, Lp)`` and ``hypothesis: (N, Lh)`` word ids padded with 0,
``premise_lengths``/``hypothesis_lengths: (N,)``, ``labels: (N,)`` in ``{0, 1, 2}`` =
:data:`LABELS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from attnkit._checks import check_int
from attnkit.datasets.shapes import Vocab

COLORS = ("red", "blue", "green", "yellow", "black", "white")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "animal": ("dog", "cat", "horse", "cow"),
    "vehicle": ("car", "bus", "bike", "boat"),
    "fruit": ("apple", "pear", "plum", "lemon"),
}
"""Each category word and the nouns it covers (a tiny WordNet)."""

NOUNS = tuple(n for ns in CATEGORIES.values() for n in ns)
CATEGORY_OF = {n: c for c, ns in CATEGORIES.items() for n in ns}
LABELS = ("entailment", "neutral", "contradiction")
"""Label names, in the order of the label ids."""

VOCAB = Vocab.from_words(["a", "and", *COLORS, *NOUNS, *CATEGORIES])
"""The vocabulary of premises and hypotheses (26 words with the three specials)."""


def _items(words: Sequence[str], name: str) -> list[tuple[str, str]]:
    # "a c n and a c n ..." -> [(c, n), ...]
    if len(words) % 4 != 3 or any(w != "a" for w in words[0::4]) or any(w != "and" for w in words[3::4]):
        raise ValueError(f"{name} must read 'a <colour> <noun> [and a <colour> <noun> ...]'; got {' '.join(words)!r}")
    out = list(zip(words[1::4], words[2::4], strict=True))
    for c, n in out:
        if c not in COLORS or (n not in NOUNS and n not in CATEGORIES):
            raise ValueError(f"{name}: unknown colour or noun in {c!r} {n!r}")
    return out


def nli_label(premise: str | Sequence[str], hypothesis: str | Sequence[str]) -> str:
    """The gold label: ``"entailment"``, ``"neutral"`` or ``"contradiction"``.

    The premise is read as complete about the kinds it mentions and silent about the others
    (see the module docstring). Things that *match* the hypothesis noun are those with that
    noun or, for a category word, a noun of that category. No match: neutral (the premise
    never mentions that kind); a match of the hypothesis colour: entailment; matches of other
    colours only: contradiction.
    """
    for name, text in (("premise", premise), ("hypothesis", hypothesis)):
        if not isinstance(text, str) and not (isinstance(text, Sequence) and all(isinstance(w, str) for w in text)):
            raise TypeError(f"{name} must be a sentence (a str or a sequence of words); got {type(text).__name__}")
    p = _items(premise.split() if isinstance(premise, str) else list(premise), "premise")
    h = _items(hypothesis.split() if isinstance(hypothesis, str) else list(hypothesis), "hypothesis")
    if len(h) != 1:
        raise ValueError(f"hypothesis must name one thing; got {len(h)}")
    hc, hn = h[0]
    matches = [c for c, n in p if n == hn or CATEGORY_OF[n] == hn]
    if not matches:
        return "neutral"
    return "entailment" if hc in matches else "contradiction"


@dataclass
class NLIData:
    """Premise/hypothesis pairs as padded id tensors plus the strings; slice it like a tensor."""

    premise: torch.Tensor
    premise_lengths: torch.Tensor
    hypothesis: torch.Tensor
    hypothesis_lengths: torch.Tensor
    labels: torch.Tensor
    premises: list[str]
    hypotheses: list[str]
    vocab: Vocab = VOCAB

    def __len__(self) -> int:
        return len(self.premises)

    def __getitem__(self, idx: slice | Sequence[int] | torch.Tensor) -> NLIData:
        if isinstance(idx, int):
            idx = [idx]
        pick = (lambda xs: xs[idx]) if isinstance(idx, slice) else (lambda xs: [xs[int(i)] for i in idx])
        return NLIData(self.premise[idx], self.premise_lengths[idx], self.hypothesis[idx],
                       self.hypothesis_lengths[idx], self.labels[idx], pick(self.premises),
                       pick(self.hypotheses), self.vocab)


def _pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    L = max(map(len, rows))
    out = torch.zeros(len(rows), L, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out, torch.tensor([len(r) for r in rows])


def make_nli(n: int, *, seed: int = 0, min_items: int = 2, max_items: int = 4,
             hard_negatives: float = 0.8) -> NLIData:
    """Generate ``n`` labelled pairs, a third of each label (reproducible from ``seed``).

    Args:
        n: number of pairs.
        min_items, max_items: how many things a premise lists (distinct nouns).
        hard_negatives: probability that a contradiction or neutral hypothesis reuses a colour
            that occurs in the premise, which defeats models that ignore word order.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    check_int("min_items", min_items, minimum=1)
    check_int("max_items", max_items, minimum=1)
    if isinstance(hard_negatives, bool) or not isinstance(hard_negatives, (int, float)):
        raise TypeError(f"hard_negatives must be a probability in [0, 1]; got {type(hard_negatives).__name__}")
    if not 1 <= min_items <= max_items <= len(NOUNS) // 2:
        raise ValueError(f"need 1 <= min_items <= max_items <= {len(NOUNS) // 2}; got {min_items}, {max_items}")
    if not 0 <= hard_negatives <= 1:
        raise ValueError(f"hard_negatives must be a probability in [0, 1]; got {hard_negatives}")
    rng = np.random.default_rng(seed)
    prem_ids, hyp_ids, labels, prems, hyps = [], [], [], [], []
    for i in range(n):
        label = LABELS[i % 3]
        while True:
            k = int(rng.integers(min_items, max_items + 1))
            nouns = [NOUNS[j] for j in rng.choice(len(NOUNS), size=k, replace=False)]
            colors = [COLORS[j] for j in rng.integers(len(COLORS), size=k)]
            items = list(zip(colors, nouns, strict=True))
            use_category = bool(rng.random() < 0.5)
            if label == "neutral":
                cats = {CATEGORY_OF[x] for x in nouns}
                pool = [c for c in CATEGORIES if c not in cats] if use_category else \
                    [x for x in NOUNS if x not in nouns]
                if not pool:
                    continue
                hn = pool[rng.integers(len(pool))]
                matched: list[str] = []
            else:
                _, n0 = items[rng.integers(k)]
                hn = CATEGORY_OF[n0] if use_category else n0
                matched = [c for c, x in items if x == hn or CATEGORY_OF[x] == hn]
            if label == "entailment":
                hc = matched[rng.integers(len(matched))]
            else:
                present = [c for c in colors if c not in matched]
                absent = [c for c in COLORS if c not in matched and c not in colors]
                pool = present if (present and rng.random() < hard_negatives) or not absent else absent
                hc = pool[rng.integers(len(pool))]
            break
        p_words = " and ".join(f"a {c} {x}" for c, x in items).split()
        h_words = ["a", hc, hn]
        assert nli_label(p_words, h_words) == label  # the generator follows the rule
        prem_ids.append(VOCAB.encode(p_words))
        hyp_ids.append(VOCAB.encode(h_words))
        labels.append(LABELS.index(label))
        prems.append(" ".join(p_words))
        hyps.append(" ".join(h_words))
    order = rng.permutation(n)
    prem_ids, hyp_ids = [prem_ids[j] for j in order], [hyp_ids[j] for j in order]
    p, pl = _pad(prem_ids)
    h, hl = _pad(hyp_ids)
    return NLIData(p, pl, h, hl, torch.tensor(labels)[torch.from_numpy(order)], [prems[j] for j in order],
                   [hyps[j] for j in order])
