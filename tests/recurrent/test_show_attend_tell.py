"""Show-attend-tell in miniature: shapes, attention through attend, padding, hard attention, training, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnkit.datasets.shapes import make_shapes
from attnkit.recurrent.show_attend_tell import (
    GridEncoder,
    ShowAttendTell,
    attention_on_object,
    caption_accuracy,
    caption_loss,
    coordinate_channels,
    train_captioner,
    upsample_weights,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data():
    return make_shapes(24, seed=0)


def test_encoder_grid_and_coordinates() -> None:
    enc = GridEncoder(channels=8)
    feats = enc(torch.rand(2, 3, 32, 32))
    assert feats.shape == (2, 64, 10)
    # the last two channels are the (x, y) position of each cell, row-major over the 8 x 8 grid
    xy = coordinate_channels(1, 8, 8)[0].flatten(1).T  # (64, 2)
    torch.testing.assert_close(feats[0, :, -2:], xy)
    assert xy[1, 0] > xy[0, 0] and xy[8, 1] > xy[0, 1]


def test_attention_step_matches_an_explicit_loop() -> None:
    model = ShowAttendTell(10, hidden=6, att=5, channels=4).double()
    h, feats = torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 7, 6, dtype=torch.float64)
    z, a = model.attention(h, feats)
    for b in range(2):
        s = torch.stack([model.w @ torch.tanh(model.W_q @ h[b] + model.W_k @ feats[b, j]) for j in range(7)])
        w = torch.exp(s - s.max()) / torch.exp(s - s.max()).sum()
        torch.testing.assert_close(a[b], w)
        torch.testing.assert_close(z[b], (w[:, None] * feats[b]).sum(0))
    z_hard, a_hard = model.attention(h, feats, normalize="hard")
    assert torch.equal(a_hard.argmax(-1), a.argmax(-1)) and torch.equal(a_hard.sum(-1), torch.ones(2, dtype=a.dtype))
    torch.testing.assert_close(z_hard, feats[torch.arange(2), a.argmax(-1)])  # hard: the feature at the argmax


def test_forward_shapes_and_modes(data) -> None:
    model = ShowAttendTell(len(data.vocab))
    out = model(data.images[:4], data.tokens[:4])
    T = data.tokens.shape[1] - 1
    assert out.logits.shape == (4, T, len(data.vocab)) and out.weights.shape == (4, T, 64)
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(4, T))
    assert out.log_prob_locations is None
    g = torch.Generator().manual_seed(0)
    hard = model(data.images[:4], data.tokens[:4], attention="hard", generator=g)
    assert hard.log_prob_locations.shape == (4, T) and (hard.log_prob_locations <= 0).all()
    assert torch.equal(hard.weights.sum(-1), torch.ones(4, T)) and set(hard.weights.unique().tolist()) == {0.0, 1.0}
    arg = model(data.images[:4], data.tokens[:4], attention="argmax")
    # the first look (before any context differs) is the argmax of the soft weights
    assert torch.equal(arg.weights[:, 0].argmax(-1), out.weights[:, 0].argmax(-1))
    tokens, weights = model.generate(data.images[:3], max_len=5)
    assert tokens.shape == (3, 5) and weights.shape == (3, 5, 64)


def test_padding_does_not_change_a_caption_s_loss(data) -> None:
    # a 5-word caption padded to the 6-word length scores the same as alone, unpadded
    model = ShowAttendTell(len(data.vocab)).eval()
    short = int((data.lengths == 7).nonzero()[0, 0])
    padded = data.tokens[short:short + 1]
    assert padded[0, -1] == 0
    out_pad = model(data.images[short:short + 1], padded)
    out_cut = model(data.images[short:short + 1], padded[:, :-1])
    loss_pad = caption_loss(out_pad.logits, padded[:, 1:], reduction="sum_per_caption")
    loss_cut = caption_loss(out_cut.logits, padded[:, 1:-1], reduction="sum_per_caption")
    torch.testing.assert_close(loss_pad, loss_cut)
    # the mean is over real words only
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[3, 4, 0], [1, 2, 3]])
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1), ignore_index=0)
    torch.testing.assert_close(caption_loss(logits, targets), ref)


def test_attention_on_object_and_upsampling() -> None:
    w = torch.zeros(1, 2, 64)
    w[0, 0, 0] = 1.0  # cell (row 0, col 0): centre pixel (1.5, 1.5)
    w[0, 1, 63] = 1.0  # cell (7, 7): centre (29.5, 29.5)
    centers = torch.tensor([[[2.0, 2.0], [30.0, 29.0]]])
    share = attention_on_object(w, centers, 32, radius=3)
    torch.testing.assert_close(share, torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
    up = upsample_weights(torch.rand(2, 3, 64), 32)
    assert up.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(upsample_weights(torch.ones(1, 16), 8).numpy(), np.ones((1, 8, 8)), atol=1e-6)


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_short_training_reduces_the_loss(attention: str) -> None:
    torch.manual_seed(0)
    data = make_shapes(64, seed=0)
    model = ShowAttendTell(len(data.vocab), channels=8, hidden=32)
    log = train_captioner(model, data.images, data.tokens, epochs=5, batch_size=32, lr=1e-2,
                          attention=attention, progress=False)
    assert len(log.loss) == 10
    assert np.mean(log.loss[-2:]) < 0.75 * np.mean(log.loss[:2])
    if attention == "hard":
        assert len(log.baseline) == 10
    exact, words = caption_accuracy(model, data.images, data.tokens,
                                    attention="soft" if attention == "soft" else "argmax")
    assert 0.0 <= exact <= words <= 1.0 and words > 0.2


def test_errors(data) -> None:
    model = ShowAttendTell(len(data.vocab))
    with pytest.raises(ValueError, match=r"images must be \(B, 3, S, S\); got shape \(2, 1, 32, 32\)"):
        model.encoder(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="multiples of 4"):
        model.encoder(torch.rand(2, 3, 30, 30))
    with pytest.raises(TypeError, match="images must be a floating-point tensor"):
        model.encoder(torch.zeros(2, 3, 32, 32, dtype=torch.long))
    with pytest.raises(TypeError, match="tokens must be a \\(B, T\\) long tensor"):
        model(data.images[:2], data.tokens[:2].float())
    with pytest.raises(ValueError, match="same batch size"):
        model(data.images[:2], data.tokens[:3])
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 13\); got range \[1, 99\]"):
        model(data.images[:1], torch.tensor([[1, 99]]))
    with pytest.raises(ValueError, match="attention must be 'soft', 'hard' or 'argmax'"):
        model(data.images[:1], data.tokens[:1], attention="glimpse")
    with pytest.raises(ValueError, match="generate takes attention='soft' or 'argmax'"):
        model.generate(data.images[:1], attention="hard")
    with pytest.raises(ValueError, match=r"targets must be \(B, T\)"):
        caption_loss(torch.randn(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="square grid"):
        upsample_weights(torch.rand(2, 10), 32)
    with pytest.raises(ValueError, match="attention must be 'soft' or 'hard'"):
        train_captioner(model, data.images, data.tokens, attention="argmax", progress=False)


def test_reinforce_checker_accepts_the_reference_and_rejects_bugs() -> None:
    from attnkit.exercises.recurrent import check_reinforce_surrogate, reinforce_surrogate

    assert check_reinforce_surrogate(reinforce_surrogate, quiet=True)
    leaky = check_reinforce_surrogate(lambda lp, R, b: -((R - b) * lp.sum(-1)).mean(), quiet=True)
    assert not leaky and leaky.failed_case == "gradients"
    no_baseline = check_reinforce_surrogate(lambda lp, R, b: -(R.detach() * lp.sum(-1)).mean(), quiet=True)
    assert not no_baseline and no_baseline.failed_case == "a baseline"


def test_no_coordinates_zeroes_the_position_channels() -> None:
    torch.manual_seed(0)
    enc = GridEncoder(8, coords=False)
    feats = enc(torch.rand(2, 3, 16, 16))  # (B, G, D)
    assert feats.shape == (2, 16, 10)
    assert not feats[..., -2:].any()
    with pytest.raises(TypeError, match="coords"):
        GridEncoder(8, coords="no")


def test_semi_sampling_uses_the_expected_context_for_some_captions() -> None:
    torch.manual_seed(0)
    model = ShowAttendTell(6, embed=4, hidden=8, att=4, channels=4)
    images, tokens = torch.rand(8, 3, 16, 16), torch.randint(1, 6, (8, 4))
    g = torch.Generator().manual_seed(0)
    out = model(images, tokens, attention="hard", generator=g, semi_sampling_p=0.5)
    soft = ~out.sampled
    assert soft.any() and out.sampled.any()
    one_hot = (out.weights == 1).sum(-1) == 1  # (B, T)
    assert one_hot[out.sampled].all() and not one_hot[soft].any()
    assert model(images, tokens, attention="hard", generator=g).sampled.all()
    with pytest.raises(ValueError, match="semi_sampling_p"):
        model(images, tokens, attention="hard", semi_sampling_p=1.5)
