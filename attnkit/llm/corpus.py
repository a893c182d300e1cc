"""The corpus of Part V: Tiny Shakespeare, character level, and the baselines to beat.

The text ships gzipped in ``attnkit/data/tinyshakespeare.txt.gz`` (provenance in
``attnkit/data/tinyshakespeare.README.md``: karpathy/char-rnn, public-domain plays,
1,115,394 characters, 65 distinct). The split is nanoGPT's ``shakespeare_char``: the first
90% trains, the last 10% validates.

Shapes: ``B`` batch, ``T`` context length, ``V`` vocabulary size.
"""

from __future__ import annotations

import gzip
import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from attnkit._checks import check_index_tensor, check_int, check_tensor, check_values

DATA = Path(__file__).resolve().parent.parent / "data" / "tinyshakespeare.txt.gz"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
"""sha256 of the uncompressed text."""


@dataclass(frozen=True)
class Corpus:
    """The encoded corpus: ``train`` and ``val`` int64 tensors and the character vocabulary."""

    chars: str
    train: torch.Tensor
    val: torch.Tensor

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Characters -> ids ``(len(text),)``; an unknown character raises ``ValueError``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}")
        table = {c: i for i, c in enumerate(self.chars)}
        bad = sorted(set(text) - set(table))
        if bad:
            raise ValueError(f"text has characters outside the corpus vocabulary: {bad[:5]}")
        return torch.tensor([table[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """Ids -> characters."""
        if isinstance(ids, list):
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise TypeError(f"ids must be ints; got {ids[:5]!r}")
            ids = torch.tensor(ids, dtype=torch.long)
        check_index_tensor("ids", ids, low=0, high=len(self.chars), rank=1)  # a negative id would wrap around
        return "".join(self.chars[int(i)] for i in ids)


@lru_cache(maxsize=1)
def load_text() -> str:
    """The whole text (checked against its sha256)."""
    raw = gzip.decompress(DATA.read_bytes())
    if hashlib.sha256(raw).hexdigest() != SHA256:
        raise ValueError(f"{DATA} does not match its recorded sha256 {SHA256}")
    return raw.decode("utf-8")


@lru_cache(maxsize=1)
def load_corpus() -> Corpus:
    """Tiny Shakespeare split 90/10 into ``train`` and ``val`` ids (nanoGPT's split)."""
    text = load_text()
    chars = "".join(sorted(set(text)))
    table = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([table[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(ids))
    return Corpus(chars, ids[:n], ids[n:])


def get_batch(data: torch.Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of ``data``: inputs ``x: (B, T)`` and next-character targets ``y: (B, T)``."""
    check_int("batch_size", batch_size, minimum=1)
    check_int("block_size", block_size, minimum=1)
    check_tensor("data", data, floating=False)
    if data.dtype == torch.bool or data.is_floating_point() or data.is_complex():
        raise TypeError(f"data must be an integer tensor of ids; got dtype {data.dtype}")
    check_values("data", data)
    if data.ndim != 1 or len(data) <= block_size:
        raise ValueError(f"data must be 1-d and longer than block_size={block_size}; got {tuple(data.shape)}")
    start = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    offs = torch.arange(block_size)  # (T,)
    x = data[start[:, None] + offs]  # (B, T)
    y = data[start[:, None] + offs + 1]  # (B, T)
    return x, y


def eval_windows(data: torch.Tensor, n: int, length: int, seed: int = 1234) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` fixed windows of ``length`` (the same for every model): ``x, y: (n, length)``."""
    check_int("n", n, minimum=1)
    check_int("length", length, minimum=1)
    return get_batch(data, n, length, torch.Generator().manual_seed(seed))


def baselines(corpus: Corpus | None = None) -> dict[str, float]:
    """Validation cross-entropy (nats per character) of three trivial predictors.

    - ``uniform``: every character equally likely, ``log V``;
    - ``unigram``: the training frequencies (add-one smoothed);
    - ``bigram``: the training counts of (previous, next) pairs (add-one smoothed), the best
      a model that sees one character of context can do (up to smoothing).
    """
    c = corpus or load_corpus()
    V = c.vocab_size
    uni = torch.bincount(c.train, minlength=V).double() + 1.0  # (V,)
    p_uni = uni / uni.sum()
    pairs = torch.bincount(c.train[:-1] * V + c.train[1:], minlength=V * V).double().view(V, V) + 1.0  # (V, V)
    p_bi = pairs / pairs.sum(-1, keepdim=True)
    val = c.val
    return {"uniform": math.log(V),
            "unigram": float(-p_uni[val].log().mean()),
            "bigram": float(-p_bi[val[:-1], val[1:]].log().mean())}


__all__ = ["Corpus", "baselines", "eval_windows", "get_batch", "load_corpus", "load_text"]
