r"""A small English -> French corpus written from templates, for the seq2seq chapter.

The grammar is tiny but the word order differs between the languages in the ways that made
attention necessary for translation:

- object pronouns move before the verb: *I love you* -> *je t' aime*, *she sees him* ->
  *elle le voit*;
- negation wraps the verb: *we do not help them* -> *nous ne les aidons pas*;
- colour adjectives follow the noun: *the black cat* -> *le chat noir*;
- adverbs like *often* follow the verb: *I often see the dog* -> *je vois souvent le chien*;
- phrasal verbs split around their object and merge into one French verb: *look it up* ->
  *cherchez -le* (three words to two, crossing);
- *near the park* -> *près du parc* merges *de le* into one word.

Sentences range from 3 to about 20 words (two clauses joined by *and* / *but*). Every English
sentence has exactly one French translation, so exact-match accuracy is well defined.
French clitics are split into their own tokens (``t' aime``, ``cherchez -le``).

The corpus is generated once with :data:`CORPUS_SEED` and shipped as
``attnkit/data/en_fr.tsv`` (tab-separated ``english<TAB>french``, one pair a line); a test
checks that the shipped file equals what :func:`generate_corpus` writes. Shapes below: ``B``
batch, ``S`` source length, ``T`` target length (with the end token).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

CORPUS_SEED = 0
"""Seed of the shipped corpus."""

CORPUS_SIZE = 800
"""Number of sentence pairs in the shipped corpus."""

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIALS = (PAD, BOS, EOS)
"""Special tokens, with ids 0, 1, 2 in every :class:`Vocab`."""

# --- the grammar -------------------------------------------------------------------------
# subjects: (english, french, person index 0..4 = je, tu, il/elle, nous, ils)
SUBJECTS = [("i", "je", 0), ("you", "tu", 1), ("he", "il", 2), ("she", "elle", 2), ("we", "nous", 3),
            ("they", "ils", 4)]
# verbs: english base, english 3rd singular, french forms by person, starts with a vowel
VERBS = [
    ("love", "loves", ("aime", "aimes", "aime", "aimons", "aiment"), True),
    ("help", "helps", ("aide", "aides", "aide", "aidons", "aident"), True),
    ("see", "sees", ("vois", "vois", "voit", "voyons", "voient"), False),
    ("call", "calls", ("appelle", "appelles", "appelle", "appelons", "appellent"), True),
    ("hear", "hears", ("entends", "entends", "entend", "entendons", "entendent"), True),
    ("find", "finds", ("trouve", "trouves", "trouve", "trouvons", "trouvent"), False),
]
# object pronouns: english, french before a consonant, before a vowel, after an imperative, person
OBJ_PRONOUNS = [("me", "me", "m'", "-moi", 0), ("you", "te", "t'", None, 1), ("him", "le", "l'", "-le", 2),
                ("her", "la", "l'", "-la", 2), ("it", "le", "l'", "-le", None), ("us", "nous", "nous", "-nous", 3),
                ("them", "les", "les", "-les", 4)]
# nouns: english, french, feminine, starts with a vowel
NOUNS = [("cat", "chat", False, False), ("dog", "chien", False, False), ("bird", "oiseau", False, True),
         ("car", "voiture", True, False), ("house", "maison", True, False), ("book", "livre", False, False),
         ("friend", "ami", False, True), ("girl", "fille", True, False), ("word", "mot", False, False),
         ("park", "parc", False, False)]
# adjectives: english, french masculine, feminine, comes before the noun in french
ADJECTIVES = [("black", "noir", "noire", False), ("white", "blanc", "blanche", False),
              ("small", "petit", "petite", True), ("big", "grand", "grande", True)]
PREPOSITIONS = [("in", "dans"), ("with", "avec"), ("near", "près de")]
END_ADVERBS = [("today", "aujourd'hui"), ("now", "maintenant")]
# imperatives: english verb, particle of a phrasal verb (or None), french vous form, vowel
IMPERATIVES = [("look", "up", "cherchez", False), ("wake", "up", "réveillez", False),
               ("pick", "up", "ramassez", False), ("call", None, "appelez", True), ("help", None, "aidez", True)]
CONJUNCTIONS = [("and", "et"), ("but", "mais")]


def _np(rng: random.Random, *, adjective: bool = True) -> tuple[list[str], list[str]]:
    """A noun phrase: (english words, french words), e.g. the black cat -> le chat noir."""
    en_n, fr_n, fem, vowel = rng.choice(NOUNS)
    det = rng.choice(["the", "the", "a", "my"])
    adj = rng.choice(ADJECTIVES) if adjective and rng.random() < 0.35 else None
    fr_adj = None if adj is None else (adj[2] if fem else adj[1])
    first_vowel = vowel if (adj is None or not adj[3]) else False  # what follows the determiner
    if det == "the":
        fr_det = "l'" if first_vowel else ("la" if fem else "le")
    elif det == "a":
        fr_det = "une" if fem else "un"
    else:
        fr_det = "ma" if fem else "mon"
    en = [det] + ([adj[0]] if adj else []) + [en_n]
    if adj is None:
        fr = [fr_det, fr_n]
    elif adj[3]:
        fr = [fr_det, fr_adj, fr_n]
    else:
        fr = [fr_det, fr_n, fr_adj]
    return en, fr


def _pp(rng: random.Random) -> tuple[list[str], list[str]]:
    """A prepositional phrase at the end of a clause: near the park -> près du parc."""
    en_p, fr_p = rng.choice(PREPOSITIONS)
    en_np, fr_np = _np(rng, adjective=rng.random() < 0.5)
    fr = fr_p.split() + fr_np
    if fr_p == "près de" and fr_np[0] == "le":
        fr = ["près", "du", *fr_np[1:]]  # de + le -> du
    elif fr_p == "près de" and fr_np[0] in ("un", "une"):
        fr = ["près", "d'", *fr_np]  # de + un -> d' un
    return [en_p, *en_np], fr


def _pas_de(fr_np: list[str]) -> list[str]:
    """After a negation the indefinite article becomes *de*: pas un chat -> pas de chat."""
    if fr_np[0] in ("un", "une"):
        return ["d'" if fr_np[1][0] in "aeiou" else "de", *fr_np[1:]]
    return fr_np


def _declarative(rng: random.Random) -> tuple[list[str], list[str]]:
    """SUBJ [do not | often] VERB (PRONOUN | NP) [PP] [ADVERB]."""
    noun_subject = rng.random() < 0.2
    if noun_subject:
        en_s, fr_s = _np(rng)
        person = 2
    else:
        en_s_word, fr_s_word, person = rng.choice(SUBJECTS)
        en_s, fr_s = [en_s_word], [fr_s_word]
    en_v, en_v3, fr_forms, v_vowel = rng.choice(VERBS)
    fr_v = fr_forms[person]
    third = person == 2
    mode = rng.choices(["plain", "neg", "often"], weights=[3, 2, 1])[0]
    use_pronoun = rng.random() < 0.5
    en, fr = list(en_s), list(fr_s)
    if mode == "neg":
        en += ["does" if third else "do", "not", en_v]
    elif mode == "often":
        en += ["often", en_v3 if third else en_v]
    else:
        en += [en_v3 if third else en_v]
    if use_pronoun:
        choices = [p for p in OBJ_PRONOUNS if p[4] is None or p[4] != person or noun_subject]
        en_o, fr_c, fr_v_o, _, _ = rng.choice(choices)
        en.append(en_o)
        obj = [fr_v_o if v_vowel else fr_c]
        head = ["ne", *obj, fr_v, "pas"] if mode == "neg" else [*obj, fr_v]
        if mode == "neg" and obj[0][0] in "aeiou":
            head[0] = "n'"
        if mode == "often":
            head.append("souvent")
        tail: list[str] = []
    else:
        en_o, fr_o = _np(rng)
        en += en_o
        if mode == "neg":
            head = ["n'" if v_vowel else "ne", fr_v, "pas"]
            fr_o = _pas_de(fr_o)
        else:
            head = [fr_v] + (["souvent"] if mode == "often" else [])
        tail = fr_o
    if fr[-1] == "je" and head[0][0] in "aeiou" and head[0] not in ("n'",):
        fr[-1] = "j'"  # je aime -> j' aime
    fr += head + tail
    if rng.random() < 0.35:
        en_pp, fr_pp = _pp(rng)
        en += en_pp
        fr += fr_pp
    if mode != "often" and rng.random() < 0.25:
        en_a, fr_a = rng.choice(END_ADVERBS)
        en.append(en_a)
        fr.append(fr_a)
    return en, fr


def _imperative(rng: random.Random) -> tuple[list[str], list[str]]:
    """[do not] VERB (PRONOUN [PARTICLE] | [PARTICLE] NP): look it up -> cherchez -le."""
    en_v, particle, fr_v, v_vowel = rng.choice(IMPERATIVES)
    neg = rng.random() < 0.3
    en = ["do", "not", en_v] if neg else [en_v]
    if rng.random() < 0.6:
        en_o, fr_c, fr_v_o, fr_imp, _ = rng.choice([p for p in OBJ_PRONOUNS if p[3] is not None])
        en += [en_o] + ([particle] if particle else [])
        if neg:
            clitic = fr_v_o if v_vowel else fr_c
            fr = ["n'" if clitic[0] in "aeiou" else "ne", clitic, fr_v, "pas"]
        else:
            fr = [fr_v, fr_imp]
    else:
        en_o, fr_o = _np(rng)
        en += ([particle] if particle else []) + en_o
        fr = (["n'" if v_vowel else "ne", fr_v, "pas", *_pas_de(fr_o)] if neg else [fr_v, *fr_o])
    return en, fr


def _sentence(rng: random.Random) -> tuple[str, str]:
    def clause() -> tuple[list[str], list[str]]:
        return _imperative(rng) if rng.random() < 0.15 else _declarative(rng)

    en, fr = clause()
    if rng.random() < 0.35:
        en_c, fr_c = rng.choice(CONJUNCTIONS)
        en2, fr2 = _declarative(rng)
        en, fr = [*en, en_c, *en2], [*fr, fr_c, *fr2]
    return " ".join(en), " ".join(fr)


FIXED_PAIRS = [("i love you", "je t' aime"), ("look it up", "cherchez -le")]
"""Pairs that are always in the corpus (the chapter's worked examples)."""


def generate_corpus(n: int = CORPUS_SIZE, seed: int = CORPUS_SEED) -> list[tuple[str, str]]:
    """``n`` distinct (english, french) pairs from the templates, :data:`FIXED_PAIRS` first.

    Deterministic for a given ``seed`` (Python's ``random.Random``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < len(FIXED_PAIRS):
        raise ValueError(f"n must be an int >= {len(FIXED_PAIRS)}; got {n!r}")
    rng = random.Random(seed)
    pairs = list(FIXED_PAIRS)
    seen = {en for en, _ in pairs}
    while len(pairs) < n:
        en, fr = _sentence(rng)
        if en not in seen:
            seen.add(en)
            pairs.append((en, fr))
    return pairs


def format_corpus(pairs: Iterable[tuple[str, str]]) -> str:
    """The TSV text of ``pairs``: ``english<TAB>french`` lines, ending with a newline."""
    return "".join(f"{en}\t{fr}\n" for en, fr in pairs)


def corpus_path() -> Path:
    """Path of the shipped corpus ``attnkit/data/en_fr.tsv``."""
    return Path(str(resources.files("attnkit") / "data" / "en_fr.tsv"))


def write_corpus(path: str | Path | None = None, *, n: int = CORPUS_SIZE, seed: int = CORPUS_SEED) -> Path:
    """Write :func:`generate_corpus` to ``path`` (default: the shipped file). Returns the path."""
    path = corpus_path() if path is None else Path(path)
    path.write_text(format_corpus(generate_corpus(n, seed)), encoding="utf-8")
    return path


def load_corpus(path: str | Path | None = None) -> list[tuple[str, str]]:
    """Read (english, french) pairs from a TSV file (default: the shipped corpus)."""
    if path is not None and not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or a Path (or None for the shipped corpus); got {type(path).__name__}")
    path = corpus_path() if path is None else Path(path)
    pairs = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        cols = line.split("\t")
        if len(cols) != 2 or not cols[0].strip() or not cols[1].strip():
            raise ValueError(f"{path}:{i}: expected 'english<TAB>french'; got {line!r}")
        pairs.append((cols[0], cols[1]))
    return pairs


def split_corpus(pairs: Sequence[tuple[str, str]], held_out: float = 0.2,
                 seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Shuffle ``pairs`` with ``seed`` and split into (train, held-out), ``held_out`` the fraction."""
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float)) or not 0 < held_out < 1:
        raise ValueError(f"held_out must be a fraction in (0, 1); got {held_out!r}")
    if len(pairs) < 2:
        raise ValueError(f"pairs must hold at least two pairs to split; got {len(pairs)}")
    idx = list(range(len(pairs)))
    random.Random(seed).shuffle(idx)
    n_test = max(1, round(held_out * len(pairs)))
    return [pairs[i] for i in idx[n_test:]], [pairs[i] for i in idx[:n_test]]


@dataclass
class Vocab:
    """Word <-> id tables; ids 0, 1, 2 are ``<pad>``, ``<s>``, ``</s>``."""

    words: list[str]

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Iterable[str]) -> Vocab:
        """A vocabulary of every word in ``sentences`` (sorted), after the special tokens."""
        words = sorted({w for s in sentences for w in s.split()} - set(SPECIALS))
        return cls([*SPECIALS, *words])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: str, *, eos: bool = True) -> list[int]:
        """Ids of the words of ``sentence`` (plus ``</s>``); unknown words raise ``ValueError``."""
        if not isinstance(sentence, str):
            raise TypeError(f"sentence must be a str; got {type(sentence).__name__}")
        words = sentence.split()
        unknown = [w for w in words if w not in self.index]
        if unknown:
            raise ValueError(f"unknown word(s) {unknown} in {sentence!r}; the vocabulary has {len(self)} words")
        if not words:
            raise ValueError("sentence is empty")
        return [self.index[w] for w in words] + ([self.index[EOS]] if eos else [])

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of ``ids``, stopping at ``</s>`` and skipping ``<pad>`` / ``<s>``."""
        out = []
        for i in ids:
            w = self.words[int(i)]
            if w == EOS:
                break
            if w not in (PAD, BOS):
                out.append(w)
        return out


def build_vocabs(pairs: Iterable[tuple[str, str]]) -> tuple[Vocab, Vocab]:
    """Source (English) and target (French) vocabularies of ``pairs``."""
    pairs = list(pairs)
    return Vocab.build(en for en, _ in pairs), Vocab.build(fr for _, fr in pairs)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists into ``(B, L)`` long and return it with the lengths ``(B,)``."""
    if len(seqs) == 0:
        raise ValueError("seqs is empty: nothing to batch")
    if isinstance(pad_id, bool) or not isinstance(pad_id, int) or pad_id < 0:
        raise ValueError(f"pad_id must be a non-negative int; got {pad_id!r}")
    for b, s in enumerate(seqs):
        if isinstance(s, str) or not all(isinstance(i, int) and not isinstance(i, bool) for i in s):
            raise TypeError(f"seqs[{b}] must be a sequence of int ids; got {s!r:.60}")
    lengths = torch.tensor([len(s) for s in seqs])
    out = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for b, s in enumerate(seqs):
        out[b, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out, lengths


@dataclass
class Batch:
    """A padded batch: ``src (B, S)``, ``src_len (B,)``, ``tgt_in (B, T)`` (starts with ``<s>``),
    ``tgt_out (B, T)`` (ends with ``</s>``), ``tgt_len (B,)``; padding is id 0."""

    src: torch.Tensor
    src_len: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    tgt_len: torch.Tensor


def make_batch(pairs: Sequence[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab) -> Batch:
    """Encode and pad ``pairs`` (source ends with ``</s>``; target shifted for teacher forcing)."""
    src, src_len = pad_batch([src_vocab.encode(en) for en, _ in pairs])
    tgt = [tgt_vocab.encode(fr) for _, fr in pairs]
    tgt_out, tgt_len = pad_batch(tgt)
    tgt_in, _ = pad_batch([[tgt_vocab.index[BOS], *t[:-1]] for t in tgt])
    return Batch(src, src_len, tgt_in, tgt_out, tgt_len)
