"""attnkit.transformers.relational: pairs against a loop, the RN formula, order invariance, errors, training."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit.datasets.sequences import relational_task
from attnkit.transformers.blocks import train_steps
from attnkit.transformers.relational import (
    AttentionReasoner,
    MLPReasoner,
    RelationNetwork,
    accuracy_by_question,
    object_pairs,
    reasoning_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_object_pairs_match_a_loop() -> None:
    o, q = torch.randn(2, 4, 3), torch.randn(2, 5)
    pairs = object_pairs(o, q)
    assert pairs.shape == (2, 4, 4, 11)
    for b in range(2):
        for i in range(4):
            for j in range(4):
                assert torch.equal(pairs[b, i, j], torch.cat([o[b, i], o[b, j], q[b]]))


def test_relation_network_is_f_of_the_sum_of_g_over_pairs() -> None:
    rn = RelationNetwork(3, 2, 4, hidden=8).double()
    o, q = torch.randn(1, 3, 3, dtype=torch.float64), torch.randn(1, 2, dtype=torch.float64)
    total = sum(torch.relu(rn.g(torch.cat([o[0, i], o[0, j], q[0]]))) for i in range(3) for j in range(3))
    torch.testing.assert_close(rn(o, q)[0], rn.f(total))
    assert rn.pair_activations.shape == (1, 3, 3)


@given(seed=st.integers(0, 10_000))
def test_rn_and_attention_reasoner_ignore_the_order_of_objects(seed: int) -> None:
    torch.manual_seed(seed)
    data = relational_task(4, seed=seed)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(seed))
    for model in (RelationNetwork(10, 9, 6, hidden=16), AttentionReasoner(10, 9, 6, d_model=16)):
        model = model.double()
        o, q = data["objects"].double(), data["questions"].double()
        torch.testing.assert_close(model(o[:, perm], q), model(o, q))


def test_the_mlp_baseline_depends_on_the_order() -> None:
    data = relational_task(4, seed=0)
    mlp = MLPReasoner(10, 9, 6, n_objects=6)
    o, q = data["objects"], data["questions"]
    assert not torch.allclose(mlp(o.flip(1), q), mlp(o, q))


def test_bad_input() -> None:
    rn = RelationNetwork(10, 9, 6)
    with pytest.raises(ValueError, match=r"objects must be \(B, N, 10\); got shape \(2, 6, 8\)"):
        rn(torch.randn(2, 6, 8), torch.randn(2, 9))
    with pytest.raises(ValueError, match=r"questions must be \(B, Dq\) = \(2, 9\); got shape \(3, 9\)"):
        rn(torch.randn(2, 6, 10), torch.randn(3, 9))
    with pytest.raises(TypeError, match="objects must be a torch.Tensor"):
        rn([[0.0]], torch.randn(2, 9))
    with pytest.raises(ValueError, match="objects must have N = 6 objects"):
        MLPReasoner(10, 9, 6, n_objects=6)(torch.randn(2, 5, 10), torch.randn(2, 9))


def test_accuracy_by_question_counts_per_type() -> None:
    data = relational_task(30, seed=2, question_types=(0, 2))

    class Oracle(torch.nn.Module):
        def forward(self, objects: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(data["answers"], 6).float()

    acc = accuracy_by_question(Oracle(), data)
    assert acc[0] == 1 and acc[2] == 1 and torch.isnan(acc[1])


def test_short_training_run_reduces_the_loss() -> None:
    model = RelationNetwork(10, 9, 6, hidden=32)
    test = relational_task(256, seed=7)
    before = reasoning_loss(model, test).item()
    train_steps(model, lambda s: relational_task(64, seed=100 + s), reasoning_loss, steps=60, lr=3e-3)
    with torch.no_grad():
        after = reasoning_loss(model, test).item()
    assert after < 0.8 * before


def test_relational_run_is_seeded() -> None:
    from attnkit.transformers.relational import REASONERS, relational_run

    assert list(REASONERS) == ["relation network", "MLP on all objects", "self-attention"]
    a = relational_run("MLP on all objects", steps=5, seed=2)
    b = relational_run("MLP on all objects", steps=5, seed=2)
    assert len(a["accuracy"]) == 3 and a["accuracy"] == b["accuracy"] and len(a["losses"]) == 5
    with pytest.raises(ValueError, match="name must be one of"):
        relational_run("transformer", steps=1)

