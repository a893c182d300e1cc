"""The Part V corpus: the shipped text, its split, batches and the trivial baselines."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from attnkit.llm.corpus import baselines, eval_windows, get_batch, load_corpus, load_text


def test_text_matches_its_provenance() -> None:
    text = load_text()
    assert len(text) == 1_115_394
    assert hashlib.sha256(text.encode()).hexdigest().startswith("86c4e6aa")
    c = load_corpus()
    assert c.vocab_size == 65 and len(c.train) + len(c.val) == len(text)
    assert len(c.train) == int(0.9 * len(text))


def test_encode_decode_round_trip_and_unknown_characters() -> None:
    c = load_corpus()
    s = "First Citizen:\nBefore we proceed"
    assert c.decode(c.encode(s)) == s
    with pytest.raises(ValueError, match="outside the corpus vocabulary"):
        c.encode("été")


def test_batches_are_shifted_windows() -> None:
    data = torch.arange(100)
    x, y = get_batch(data, 4, 10, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 10)
    assert torch.equal(y, x + 1)
    a, b = eval_windows(data, 3, 5), eval_windows(data, 3, 5)
    assert torch.equal(a[0], b[0])
    with pytest.raises(ValueError, match="longer than block_size"):
        get_batch(data, 2, 100)


def test_baselines_against_direct_counts() -> None:
    c = load_corpus()
    b = baselines(c)
    assert b["uniform"] == pytest.approx(math.log(65))
    # unigram by an independent count (numpy-free, a Python Counter)
    from collections import Counter

    counts = Counter(c.train.tolist())
    total = len(c.train) + 65
    val = c.val.tolist()
    uni = -sum(math.log((counts.get(t, 0) + 1) / total) for t in val) / len(val)
    assert b["unigram"] == pytest.approx(uni, rel=1e-9)
    assert b["uniform"] > b["unigram"] > b["bigram"] > 2.0
