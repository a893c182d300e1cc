"""The template corpus: the shipped file, its grammar's landmarks, vocabularies and batches."""

from __future__ import annotations

import pytest
import torch

from attnkit.datasets.translation import (
    CORPUS_SIZE,
    EOS,
    FIXED_PAIRS,
    Vocab,
    build_vocabs,
    corpus_path,
    format_corpus,
    generate_corpus,
    load_corpus,
    make_batch,
    pad_batch,
    split_corpus,
    write_corpus,
)


def test_shipped_corpus_is_what_the_generator_writes() -> None:
    assert corpus_path().read_text(encoding="utf-8") == format_corpus(generate_corpus())
    assert load_corpus() == generate_corpus()
    assert len(load_corpus()) == CORPUS_SIZE


def test_generator_is_deterministic_and_seeded() -> None:
    assert generate_corpus(50, seed=3) == generate_corpus(50, seed=3)
    assert generate_corpus(50, seed=3) != generate_corpus(50, seed=4)


def test_corpus_landmarks() -> None:
    pairs = dict(load_corpus())
    for en, fr in FIXED_PAIRS:
        assert pairs[en] == fr
    assert pairs["i love you"] == "je t' aime"
    assert pairs["look it up"] == "cherchez -le"
    assert len(pairs) == CORPUS_SIZE  # english sentences are distinct, so one translation each
    lengths = [len(en.split()) for en in pairs]
    assert min(lengths) <= 3 and max(lengths) >= 18
    # word-order phenomena the chapter relies on
    frs = list(pairs.values())
    assert any(" du " in fr for fr in frs)  # near the park -> près du parc
    assert any(" ne " in f" {fr} " and " pas" in fr for fr in frs)  # negation wraps the verb
    assert any("souvent" in fr for fr in frs)


@pytest.mark.parametrize(("en", "fr"), [
    ("she hears you", "elle t' entend"),  # object pronoun before the verb, elided before a vowel
    ("do not look it up", "ne le cherchez pas"),  # negation wraps the verb, pronoun moves first
    ("they call the black house", "ils appellent la maison noire"),  # adjective after the noun
    ("i often hear my book", "j' entends souvent mon livre"),  # adverb after the verb, je -> j'
])
def test_grammar_examples(en: str, fr: str) -> None:
    # a larger sample from the same grammar contains these sentences, with these translations
    pairs = dict(generate_corpus(3000, seed=1))
    assert pairs[en] == fr


def test_split_is_a_partition() -> None:
    pairs = load_corpus()
    train, test = split_corpus(pairs, 0.2, seed=0)
    assert len(test) == round(0.2 * len(pairs))
    assert sorted(train + test) == sorted(pairs)
    assert not set(train) & set(test)
    assert split_corpus(pairs, 0.2, seed=0) == (train, test)


def test_vocab_round_trip_and_specials() -> None:
    src, tgt = build_vocabs(load_corpus())
    assert src.words[:3] == ["<pad>", "<s>", "</s>"]
    ids = tgt.encode("je t' aime")
    assert ids[-1] == tgt.index[EOS]
    assert tgt.decode([*ids, 0, 0]) == ["je", "t'", "aime"]


def test_batch_shapes_and_padding() -> None:
    pairs = [("i love you", "je t' aime"), ("look it up", "cherchez -le"),
             ("she sees him now", "elle le voit maintenant")]
    src_v, tgt_v = build_vocabs(load_corpus())
    b = make_batch(pairs, src_v, tgt_v)
    assert b.src.shape == (3, 5) and b.src_len.tolist() == [4, 4, 5]
    assert b.tgt_in.shape == b.tgt_out.shape == (3, 5) and b.tgt_len.tolist() == [4, 3, 5]
    assert (b.tgt_in[:, 0] == 1).all()  # <s>
    assert b.tgt_out[1, 2].item() == 2 and b.tgt_out[1, 3:].eq(0).all()  # </s> then padding
    assert torch.equal(b.tgt_in[:, 1:][b.tgt_out[:, 1:] != 0], b.tgt_out[:, :-1][b.tgt_out[:, 1:] != 0])


def test_bad_input_errors(tmp_path) -> None:
    v = Vocab.build(["a b c"])
    with pytest.raises(ValueError, match="unknown word"):
        v.encode("a zebra")
    with pytest.raises(ValueError, match="empty"):
        v.encode("   ")
    with pytest.raises(TypeError, match="sentence must be a str"):
        v.encode(["a"])
    with pytest.raises(ValueError, match="held_out"):
        split_corpus([("a", "b")] * 4, held_out=1.5)
    with pytest.raises(ValueError, match="n must be"):
        generate_corpus(1)
    with pytest.raises(ValueError, match="nothing to batch"):
        pad_batch([])
    bad = tmp_path / "bad.tsv"
    bad.write_text("only one column\n", encoding="utf-8")
    with pytest.raises(ValueError, match="english<TAB>french"):
        load_corpus(bad)
    good = write_corpus(tmp_path / "c.tsv", n=10, seed=5)
    assert load_corpus(good) == generate_corpus(10, seed=5)
