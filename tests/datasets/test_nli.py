"""The synthetic entailment set: the labelling rule, balance, padding, hard negatives, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit.datasets.nli import CATEGORY_OF, COLORS, LABELS, NOUNS, VOCAB, make_nli, nli_label


@pytest.mark.parametrize(("hypothesis", "label"), [
    ("a red animal", "entailment"), ("a red dog", "entailment"), ("a blue dog", "contradiction"),
    ("a green animal", "contradiction"), ("a red cat", "neutral"), ("a red fruit", "neutral"),
    ("a blue vehicle", "entailment"), ("a red vehicle", "contradiction"),
])
def test_rule_by_hand(hypothesis: str, label: str) -> None:
    assert nli_label("a red dog and a blue car and a red cow", hypothesis) == label


def test_shapes_balance_and_padding() -> None:
    d = make_nli(300, seed=0)
    assert len(d) == 300 and d.labels.shape == (300,)
    assert torch.bincount(d.labels, minlength=3).tolist() == [100, 100, 100]
    assert d.hypothesis.shape == (300, 3) and (d.hypothesis_lengths == 3).all()
    assert d.premise.shape == (300, 15)  # 4 items: 4 * 3 words + 3 "and"
    assert set(d.premise_lengths.tolist()) == {7, 11, 15}
    for row, n, text in zip(d.premise, d.premise_lengths, d.premises, strict=True):
        assert (row[n:] == 0).all() and (row[:n] > 0).all()
        assert " ".join(VOCAB.decode(row.tolist())) == text


def test_labels_follow_the_rule_and_reproduce() -> None:
    d, d2 = make_nli(200, seed=5), make_nli(200, seed=5)
    assert d.premises == d2.premises and torch.equal(d.labels, d2.labels)
    for p, h, y in zip(d.premises, d.hypotheses, d.labels.tolist(), strict=True):
        assert nli_label(p, h) == LABELS[y]


def test_hard_negatives_reuse_premise_colours() -> None:
    # contradictions whose colour occurs in the premise: a bag of words cannot tell them from entailments
    def share(hard: float) -> float:
        d = make_nli(600, seed=1, hard_negatives=hard)
        idx = (d.labels == LABELS.index("contradiction")).nonzero()[:, 0].tolist()
        return sum(d.hypotheses[i].split()[1] in d.premises[i].split() for i in idx) / len(idx)
    assert share(1.0) > 0.75 and share(0.0) < 0.05  # (1.0: unless every premise colour matches)


@given(st.lists(st.tuples(st.sampled_from(COLORS), st.sampled_from(NOUNS)), min_size=1, max_size=4,
                unique_by=lambda t: t[1]),
       st.sampled_from(COLORS), st.sampled_from(NOUNS), st.booleans())
def test_rule_properties(items, hc: str, hn: str, use_category: bool) -> None:
    premise = " and ".join(f"a {c} {n}" for c, n in items)
    word = CATEGORY_OF[hn] if use_category else hn
    label = nli_label(premise, f"a {hc} {word}")
    matched = [c for c, n in items if n == hn or (use_category and CATEGORY_OF[n] == word)]
    assert label == ("neutral" if not matched else "entailment" if hc in matched else "contradiction")
    # naming the category is never less true than naming the noun
    if nli_label(premise, f"a {hc} {hn}") == "entailment":
        assert nli_label(premise, f"a {hc} {CATEGORY_OF[hn]}") == "entailment"


def test_errors() -> None:
    with pytest.raises(ValueError, match="premise must read"):
        nli_label("red dog", "a red dog")
    with pytest.raises(ValueError, match="unknown colour or noun"):
        nli_label("a red unicorn", "a red dog")
    with pytest.raises(ValueError, match="hypothesis must name one thing; got 2"):
        nli_label("a red dog", "a red dog and a blue car")
    with pytest.raises(ValueError, match="n must be a positive int"):
        make_nli(0)
    with pytest.raises(ValueError, match="min_items <= max_items"):
        make_nli(5, min_items=3, max_items=2)
    with pytest.raises(ValueError, match="hard_negatives must be a probability"):
        make_nli(5, hard_negatives=1.5)
