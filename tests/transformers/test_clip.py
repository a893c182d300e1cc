"""Tiny CLIP: captions, InfoNCE against a loop, zero-shot through attend, bad input, training."""

from __future__ import annotations

import math

import pytest
import torch

from attnkit.datasets.patterns import shapes_dataset
from attnkit.transformers.clip import (
    VOCAB,
    TinyCLIP,
    all_captions,
    caption_text,
    caption_tokens,
    info_nce,
    similarity,
    train_clip,
    zero_shot,
)


def test_captions() -> None:
    tokens = caption_tokens(torch.tensor([2, 0]), torch.tensor([3, 0]))
    assert caption_text(tokens) == ["ring bottom right", "square top left"]
    all_tok, words = all_captions()
    assert all_tok.shape == (16, 3) and len(set(words)) == 16 and len(VOCAB) == 8
    assert words[4 * 1 + 2] == "cross bottom left"  # class 4 * shape + quadrant


def test_info_nce_matches_loop() -> None:
    g = torch.Generator().manual_seed(0)
    u, t = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    tau = 0.3
    cos = [[float(u[i] @ t[j] / (u[i].norm() * t[j].norm())) / tau for j in range(5)] for i in range(5)]
    rows = -sum(cos[i][i] - math.log(sum(math.exp(c) for c in cos[i])) for i in range(5)) / 5
    cols = -sum(cos[j][j] - math.log(sum(math.exp(cos[i][j]) for i in range(5))) for j in range(5)) / 5
    assert info_nce(u, t, tau).item() == pytest.approx(0.5 * (rows + cols), rel=1e-10)
    torch.testing.assert_close(similarity(u, t, tau), torch.tensor(cos, dtype=torch.float64))


def test_zero_shot_is_softmax_of_similarity() -> None:
    model = TinyCLIP(dim=8)
    images = torch.randn(3, 1, 16, 16)
    tokens, _ = all_captions()
    probs, pred = zero_shot(model, images, tokens)
    with torch.no_grad():
        expected = torch.softmax(similarity(model.image(images), model.text(tokens), model.temperature), -1)
    torch.testing.assert_close(probs, expected)
    assert torch.equal(pred, expected.argmax(-1))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="same width D"):
        similarity(torch.randn(2, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="matched pairs"):
        info_nce(torch.randn(2, 3), torch.randn(3, 3), 0.1)
    with pytest.raises(ValueError, match="temperature"):
        similarity(torch.randn(2, 3), torch.randn(4, 3), 0.0)
    with pytest.raises(TypeError, match="tokens must be int64"):
        TinyCLIP().text(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="1-D of one length"):
        caption_tokens(torch.tensor([1, 2]), torch.tensor([1]))
    with pytest.raises(ValueError, match="pair up"):
        train_clip(TinyCLIP(), torch.randn(3, 1, 16, 16), torch.zeros(2, 3, dtype=torch.long), progress=False)


def test_short_training_reduces_the_loss(one_thread: None) -> None:
    images, shape, quad = shapes_dataset(256, seed=0, noise=0.1)
    torch.manual_seed(0)
    model = TinyCLIP(dim=16)
    losses = train_clip(model, images, caption_tokens(shape, quad), epochs=4, batch_size=32, progress=False)
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4
