"""Coloured shapes with captions: a tiny image-captioning set for "show, attend and tell".

Each image is a black ``size x size`` canvas (32 pixels by default) with two objects, each a
coloured square, circle or triangle, at random positions. Its caption names the objects and
how they are placed, always in the same canonical order so that the caption is a function of
the image: the left object first when they sit side by side, the top object first when they
are stacked::

    red square left of blue circle
    yellow triangle above green square

Shapes: ``images: (N, 3, S, S)`` in ``[0, 1]``, ``tokens: (N, T)`` (``<bos> ... <eos>``, padded
with ``<pad>`` = 0), ``lengths: (N,)`` counting ``<bos>`` and ``<eos>``, ``centers: (N, 2, 2)`` the
``(x, y)`` pixel centres of the first- and second-named objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.95, 0.15, 0.1),
    "green": (0.1, 0.8, 0.15),
    "blue": (0.15, 0.35, 1.0),
    "yellow": (0.95, 0.85, 0.1),
}
"""Colour words and their RGB values."""

SHAPES = ("square", "circle", "triangle")
"""Shape words."""

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


@dataclass(frozen=True)
class Vocab:
    """Word <-> id table. Id 0 is ``<pad>``; ``<bos>`` and ``<eos>`` come next."""

    itos: tuple[str, ...]

    @classmethod
    def from_words(cls, words: Iterable[str]) -> Vocab:
        """``<pad>, <bos>, <eos>`` followed by the distinct ``words`` in first-seen order."""
        seen = dict.fromkeys([PAD, BOS, EOS, *words])
        return cls(tuple(seen))

    @property
    def stoi(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    def encode(self, words: Sequence[str]) -> list[int]:
        """Ids of ``words``; an unknown word raises a ``ValueError`` naming it."""
        table = self.stoi
        unknown = [w for w in words if w not in table]
        if unknown:
            raise ValueError(f"words not in the vocabulary: {unknown}; known words: {list(self.itos[3:])}")
        return [table[w] for w in words]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of ``ids``, skipping ``<bos>``/``<pad>`` and stopping at ``<eos>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(self.itos[i])
        return out


VOCAB = Vocab.from_words([*COLORS, *SHAPES, "left", "of", "above"])
"""The captions' vocabulary (14 words with the three specials)."""


@dataclass
class ShapesCaptions:
    """A captioned shapes set; index it or slice it like a tensor (``data[:100]``)."""

    images: torch.Tensor
    tokens: torch.Tensor
    lengths: torch.Tensor
    centers: torch.Tensor
    captions: list[str]
    vocab: Vocab = VOCAB

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, idx: slice | torch.Tensor | Sequence[int]) -> ShapesCaptions:
        if isinstance(idx, int):
            idx = [idx]
        caps = self.captions[idx] if isinstance(idx, slice) else [self.captions[int(i)] for i in idx]
        return ShapesCaptions(self.images[idx], self.tokens[idx], self.lengths[idx], self.centers[idx], caps,
                              self.vocab)


def draw_shape(canvas: np.ndarray, shape: str, color: str, cx: float, cy: float, r: float) -> None:
    """Paint one ``shape`` of ``color`` centred at pixel ``(cx, cy)`` with half-size ``r`` (in place).

    ``canvas: (3, S, S)``; ``x`` runs along the columns, ``y`` down the rows.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}; got {shape!r}")
    for name, value in (("cx", cx), ("cy", cy), ("r", r)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise TypeError(f"{name} must be a number (pixels); got {value!r}")
    if not 0 < r < float("inf"):
        raise ValueError(f"r must be a finite positive half-size; got {r}")
    if color not in COLORS:
        raise ValueError(f"color must be one of {tuple(COLORS)}; got {color!r}")
    S = canvas.shape[-1]
    y, x = np.mgrid[0:S, 0:S].astype(np.float64)  # (S, S) pixel coordinates
    dx, dy = x - cx, y - cy
    if shape == "square":
        inside = (np.abs(dx) <= r) & (np.abs(dy) <= r)
    elif shape == "circle":
        inside = dx**2 + dy**2 <= (r + 0.5) ** 2
    else:  # an upward triangle: apex at the top, base at the bottom
        inside = (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2 + 0.5)
    canvas[:, inside] = np.asarray(COLORS[color])[:, None]


def _place(rng: np.random.Generator, size: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    # two centres whose layout is clearly horizontal or clearly vertical, and that do not overlap
    lo, hi = r, size - 1 - r
    while True:
        a, b = rng.integers(lo, hi + 1, size=2), rng.integers(lo, hi + 1, size=2)
        dx, dy = abs(int(a[0] - b[0])), abs(int(a[1] - b[1]))
        if max(dx, dy) >= 2 * r + 3 and abs(dx - dy) >= r:
            return a, b


def make_shapes(n: int, *, size: int = 32, seed: int = 0, noise: float = 0.05) -> ShapesCaptions:
    """Generate ``n`` captioned images of two coloured shapes (reproducible from ``seed``).

    Args:
        n: number of images.
        size: canvas side ``S`` in pixels (at least 24); the objects have half-size ``S // 6``.
        seed: seed of the NumPy generator.
        noise: standard deviation of the Gaussian pixel noise (clipped to ``[0, 1]``).

    Returns:
        :class:`ShapesCaptions` with ``images: (n, 3, S, S)``, ``tokens: (n, T)``,
        ``lengths: (n,)``, ``centers: (n, 2, 2)`` and the caption strings.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 24:
        raise ValueError(f"size must be an int >= 24 (pixels); got {size!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < float("inf"):
        raise ValueError(f"noise must be non-negative (and finite); got {noise!r}")
    rng = np.random.default_rng(seed)
    r = size // 6
    colors, shapes = list(COLORS), list(SHAPES)
    images = np.zeros((n, 3, size, size), dtype=np.float32)
    centers = np.zeros((n, 2, 2), dtype=np.float32)
    captions, ids = [], []
    for i in range(n):
        a, b = _place(rng, size, r)
        objs = [(colors[rng.integers(len(colors))], shapes[rng.integers(len(shapes))], c) for c in (a, b)]
        horizontal = abs(int(a[0] - b[0])) > abs(int(a[1] - b[1]))
        axis = 0 if horizontal else 1
        objs.sort(key=lambda o: int(o[2][axis]))  # canonical order: left (or top) object first
        for color, shape, c in objs:
            draw_shape(images[i], shape, color, float(c[0]), float(c[1]), r)
        centers[i] = [objs[0][2], objs[1][2]]
        relation = ["left", "of"] if horizontal else ["above"]
        words = [objs[0][0], objs[0][1], *relation, objs[1][0], objs[1][1]]
        captions.append(" ".join(words))
        ids.append([VOCAB.bos_id, *VOCAB.encode(words), VOCAB.eos_id])
    if noise > 0:
        images = np.clip(images + rng.normal(0.0, noise, images.shape).astype(np.float32), 0.0, 1.0)
    T = max(map(len, ids))
    tokens = torch.zeros(n, T, dtype=torch.long)
    for i, row in enumerate(ids):
        tokens[i, : len(row)] = torch.tensor(row)
    lengths = torch.tensor([len(row) for row in ids])
    return ShapesCaptions(torch.from_numpy(images), tokens, lengths, torch.from_numpy(centers), captions)
