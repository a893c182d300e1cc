"""Tiny CLIP: captions, InfoNCE against a loop, zero-shot through attend, bad input, training."""

from __future__ import annotations

import math

import pytest
import torch

from attnkit.datasets.patterns import shapes_dataset
from attnkit.transformers._train import minibatches
from attnkit.transformers.clip import (
    VOCAB,
    TinyCLIP,
    all_captions,
    caption_text,
    caption_tokens,
    info_nce,
    info_nce_floor,
    prompt_ensemble,
    similarity,
    train_clip,
    training_floors,
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


def test_info_nce_halves_and_floor() -> None:
    g = torch.Generator().manual_seed(1)
    u, t = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    i2t, t2i = info_nce(u, t, 0.5, halves=True)
    assert info_nce(u, t, 0.5).item() == pytest.approx(0.5 * (i2t + t2i).item())
    S = similarity(u, t, 0.5)
    assert i2t.item() == pytest.approx(torch.nn.functional.cross_entropy(S, torch.arange(6)).item())
    classes = torch.tensor([0, 0, 1, 2, 2, 2])
    expected = (2 * math.log(2) + math.log(1) + 3 * math.log(3)) / 6  # mean of log n_i
    assert info_nce_floor(classes) == pytest.approx(expected)
    assert info_nce_floor(torch.arange(5)) == 0.0
    # the floor is reached when copies share one embedding and the temperature goes to 0
    emb = torch.nn.functional.one_hot(classes, 3).double()
    i2t_copies, _ = info_nce(emb, emb, 1e-3, halves=True)
    assert i2t_copies.item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(TypeError, match="integer tensor"):
        info_nce_floor(torch.zeros(3))


def test_training_floors_follow_the_training_batches() -> None:
    classes = torch.randint(0, 4, (50,), generator=torch.Generator().manual_seed(2))
    floors = training_floors(classes, epochs=2, batch_size=16, seed=3)
    batches = list(minibatches(50, 16, 2, 3))
    assert len(floors) == len(batches) == 8
    assert floors == [info_nce_floor(classes[idx]) for idx in batches]


def test_prompt_ensemble_averages_unit_text_embeddings() -> None:
    torch.manual_seed(0)
    model = TinyCLIP(dim=8)
    tokens, _ = all_captions()
    prompts = tokens.reshape(4, 4, 3)  # 4 classes of 4 prompts
    ens = prompt_ensemble(model, prompts)
    with torch.no_grad():
        t = torch.nn.functional.normalize(model.text(tokens), dim=-1).reshape(4, 4, 8)
    torch.testing.assert_close(ens, torch.nn.functional.normalize(t.mean(1), dim=-1))
    images = torch.randn(5, 1, 16, 16)
    probs, _ = zero_shot(model, images, class_embeddings=ens)
    with torch.no_grad():
        expected = torch.softmax(similarity(model.image(images), ens, model.temperature), -1)
    torch.testing.assert_close(probs, expected)
    with pytest.raises(ValueError, match="exactly one"):
        zero_shot(model, images)
    with pytest.raises(ValueError, match="exactly one"):
        zero_shot(model, images, tokens, class_embeddings=ens)
    with pytest.raises(ValueError, match="prompts must be"):
        prompt_ensemble(model, tokens)


def test_text_encoder_is_linear_in_its_words() -> None:
    torch.manual_seed(0)
    model = TinyCLIP(dim=8)
    tokens, _ = all_captions()
    with torch.no_grad():
        T = model.text(tokens)
    c = lambda s, q: 4 * s + q  # noqa: E731
    torch.testing.assert_close(T[c(2, 2)], T[c(2, 0)] + T[c(1, 2)] - T[c(1, 0)])


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
