"""Wang et al. (2014) feedback demo: the gate is attend with a sigmoid normaliser, the task is as documented."""

from __future__ import annotations

import pytest
import torch

from attnkit.recurrent.feedback import (
    FeedbackClassifier,
    feedback_accuracy,
    feedback_task,
    mlp_baseline,
    train_feedback,
)


def test_task_is_target_plus_weaker_distractor() -> None:
    data = feedback_task(50, noise=0.0, contrast=0.5, seed=3)
    assert data.x.shape == (50, 64) and data.y.shape == (50,)
    assert (data.y != data.distractor).all()
    expected = data.prototypes[data.y] + 0.5 * data.prototypes[data.distractor]
    torch.testing.assert_close(data.x, expected)
    assert (data.prototypes.sum(1) == 12).all()
    # the same prototypes for another draw of examples, other ones for another task_seed
    torch.testing.assert_close(feedback_task(5, seed=4).prototypes, data.prototypes)
    assert not torch.equal(feedback_task(5, task_seed=1).prototypes, data.prototypes)


def test_targets_of_a_segmentation() -> None:
    data = feedback_task(4, noise=0.0, contrast=0.5)
    idx = torch.arange(4)
    t = data.target(idx, data.y)
    torch.testing.assert_close(t, data.clean)
    torch.testing.assert_close(data.target(idx, data.distractor), 0.5 * data.prototypes[data.distractor])
    absent = torch.tensor([c for c in range(10) if c not in (int(data.y[0]), int(data.distractor[0]))][:1])
    assert not data.target(idx[:1], absent).any()


def test_gate_is_sigmoid_of_bias_query_times_features() -> None:
    torch.manual_seed(0)
    model = FeedbackClassifier(features=8, classes=3, hidden=6, embed=4).double()
    x, bias = torch.randn(5, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])
    sel, g = model.gate(x, bias)
    h = torch.relu(model.encoder(x))
    g_ref = torch.sigmoid(model.bias_embed(bias) @ model.keys.T)  # (B, K), independent of attend
    torch.testing.assert_close(g, g_ref)
    torch.testing.assert_close(sel, g_ref * h)
    scores = model(x)
    for k in range(3):
        x_hat = model.segment(x, torch.full((5,), k))
        torch.testing.assert_close(scores[:, k], -((x - x_hat) ** 2).sum(-1))


def test_training_learns_and_rejects_bad_input() -> None:
    torch.manual_seed(0)
    train, test = feedback_task(400, seed=0), feedback_task(200, seed=1)
    model = FeedbackClassifier()
    losses = train_feedback(model, train, epochs=4)
    assert losses[-1] < losses[0]
    assert feedback_accuracy(model, test) > 0.3 and feedback_accuracy(model, test, feedback=False) > 0.3
    mlp = mlp_baseline(hidden=16)
    train_feedback(mlp, train, epochs=2)
    assert 0.0 <= feedback_accuracy(mlp, test) <= 1.0
    with pytest.raises(ValueError, match="epochs"):
        train_feedback(model, train, epochs=0)
    with pytest.raises(ValueError, match="contrast"):
        feedback_task(3, contrast=1.5)
    with pytest.raises(ValueError, match="classes"):
        feedback_task(3, classes=1)
