"""The captioned-shapes generator: shapes, reproducibility, captions that match the pixels, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnkit.datasets.shapes import COLORS, SHAPES, VOCAB, Vocab, draw_shape, make_shapes


def test_shapes_and_reproducibility() -> None:
    a, b, c = make_shapes(20, seed=3), make_shapes(20, seed=3), make_shapes(20, seed=4)
    assert a.images.shape == (20, 3, 32, 32) and a.images.dtype == torch.float32
    assert a.tokens.shape[0] == 20 and a.tokens.dtype == torch.long and a.centers.shape == (20, 2, 2)
    assert 0.0 <= float(a.images.min()) and float(a.images.max()) <= 1.0
    torch.testing.assert_close(a.images, b.images)
    assert a.captions == b.captions and a.captions != c.captions
    assert make_shapes(3, size=48).images.shape == (3, 3, 48, 48)


def test_tokens_are_the_captions_with_bos_eos_and_padding() -> None:
    data = make_shapes(50, seed=1)
    for row, length, caption in zip(data.tokens, data.lengths, data.captions, strict=True):
        assert row[0] == VOCAB.bos_id and row[length - 1] == VOCAB.eos_id
        assert (row[length:] == VOCAB.pad_id).all()
        assert " ".join(VOCAB.decode(row.tolist())) == caption
    assert set(data.lengths.tolist()) == {7, 8}  # "above" (5 words) and "left of" (6 words): padded batches


def test_caption_matches_the_drawing() -> None:
    data = make_shapes(60, seed=2, noise=0.0)
    for img, caption, centers in zip(data.images, data.captions, data.centers, strict=True):
        words = caption.split()
        (x1, y1), (x2, y2) = centers.tolist()
        # canonical order: left object first for "left of", top object first for "above"
        if words[2] == "left":
            assert x1 < x2 and abs(x2 - x1) > abs(y2 - y1)
        else:
            assert words[2] == "above" and y1 < y2 and abs(y2 - y1) > abs(x2 - x1)
        # the pixel at each centre has the named colour
        for (x, y), color in zip(((x1, y1), (x2, y2)), (words[0], words[-2]), strict=True):
            np.testing.assert_allclose(img[:, int(y), int(x)].numpy(), COLORS[color], atol=1e-6)


def test_draw_shape_areas() -> None:
    areas = {}
    for shape in SHAPES:
        canvas = np.zeros((3, 32, 32))
        draw_shape(canvas, shape, "red", 16, 16, 5)
        areas[shape] = int((canvas[0] > 0).sum())
    assert areas["square"] == 121  # 11 x 11
    assert areas["triangle"] < areas["circle"] < areas["square"]


def test_vocab_and_slicing() -> None:
    v = Vocab.from_words(["a", "b", "a"])
    assert v.itos == ("<pad>", "<bos>", "<eos>", "a", "b") and len(v) == 5
    assert v.decode([1, 3, 4, 2, 3]) == ["a", "b"]
    data = make_shapes(10)
    sub = data[2:5]
    assert len(sub) == 3 and sub.captions == data.captions[2:5]
    assert data[[0, 9]].captions == [data.captions[0], data.captions[9]]


def test_errors() -> None:
    with pytest.raises(ValueError, match="n must be a positive int; got 0"):
        make_shapes(0)
    with pytest.raises(ValueError, match="size must be an int >= 24"):
        make_shapes(2, size=16)
    with pytest.raises(ValueError, match="noise must be non-negative"):
        make_shapes(2, noise=-1.0)
    with pytest.raises(ValueError, match=r"words not in the vocabulary: \['purple'\]"):
        VOCAB.encode(["red", "purple"])
    with pytest.raises(ValueError, match="shape must be one of"):
        draw_shape(np.zeros((3, 32, 32)), "star", "red", 5, 5, 3)
    with pytest.raises(ValueError, match="color must be one of"):
        draw_shape(np.zeros((3, 32, 32)), "square", "pink", 5, 5, 3)
