"""Tiny ViT: patches, shapes, rollout against an explicit product, bad input and a short training run."""

from __future__ import annotations

import pytest
import torch

from attnkit.datasets.patterns import shapes_dataset
from attnkit.transformers.vit import TinyViT, accuracy, attention_rollout, cls_rollout_map, patchify, train_classifier


def test_patchify_matches_slicing() -> None:
    x = torch.randn(2, 3, 8, 12)
    p = patchify(x, 4)
    assert p.shape == (2, 6, 48)
    for n in range(6):
        r, c = divmod(n, 3)
        torch.testing.assert_close(p[:, n], x[:, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4].reshape(2, 48))
    # equals the convolution view used by most ViT code: unfold with stride = kernel
    unfolded = torch.nn.functional.unfold(x, 4, stride=4).transpose(1, 2)
    torch.testing.assert_close(p, unfolded)


def test_model_shapes_and_attentions() -> None:
    model = TinyViT(image_size=8, patch=2, dim=16, depth=3, heads=4, classes=5)
    with pytest.raises(RuntimeError, match="run the model"):
        model.attentions()
    out = model(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 5)
    att = model.attentions()
    assert len(att) == 3 and all(a.shape == (3, 4, 17, 17) for a in att)
    torch.testing.assert_close(att[0].sum(-1), torch.ones(3, 4, 17))


def test_rollout_matches_explicit_product() -> None:
    g = torch.Generator().manual_seed(0)
    atts = [torch.softmax(torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64), -1) for _ in range(3)]
    eye = torch.eye(5, dtype=torch.float64)
    expected = eye.expand(2, 5, 5)
    for A in atts:
        Ab = 0.5 * A.mean(1) + 0.5 * eye  # rows already sum to 1
        expected = torch.einsum("bij,bjk->bik", Ab, expected)
    torch.testing.assert_close(attention_rollout(atts), expected)
    torch.testing.assert_close(attention_rollout(atts).sum(-1), torch.ones(2, 5, dtype=torch.float64))
    torch.testing.assert_close(attention_rollout(atts[:1], residual=False), atts[0].mean(1))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="patch must be a positive int dividing"):
        patchify(torch.randn(1, 1, 6, 6), 4)
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\)"):
        patchify(torch.randn(1, 1, 1, 6, 6), 2)
    with pytest.raises(ValueError, match="empty"):
        attention_rollout([])
    with pytest.raises(ValueError, match=r"attentions\[0\] must be"):
        attention_rollout([torch.rand(1, 2, 3, 4)])
    with pytest.raises(ValueError, match=r"attentions\[1\] has shape"):
        attention_rollout([torch.rand(1, 2, 3, 3), torch.rand(1, 2, 4, 4)])
    with pytest.raises(ValueError, match="patch=3 must divide"):
        TinyViT(image_size=16, patch=3)
    with pytest.raises(ValueError, match="labels"):
        train_classifier(TinyViT(), torch.randn(4, 1, 16, 16), torch.zeros(3, dtype=torch.long), progress=False)


def test_short_training_reduces_the_loss(one_thread: None) -> None:
    images, shape, _ = shapes_dataset(256, seed=0, noise=0.1)
    torch.manual_seed(0)
    model = TinyViT(dim=16, depth=1, heads=2)
    losses = train_classifier(model, images, shape, epochs=10, batch_size=32, lr=5e-3, progress=False)
    assert sum(losses[-8:]) / 8 < 0.8 * sum(losses[:8]) / 8
    assert accuracy(model, images, shape) > 0.4
    maps = cls_rollout_map(model, images[:3])
    assert maps.shape == (3, 4, 4) and (maps >= 0).all() and (maps.sum((-1, -2)) <= 1 + 1e-5).all()
