"""The 2016 self-attention models: references, padding masks, penalty, perturbations, training, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit.datasets.nli import VOCAB, make_nli
from attnkit.recurrent.self_attention import (
    LSTMN,
    BagOfWords,
    DecomposableAttention,
    LSTMNClassifier,
    StructuredSelfAttention,
    attention_penalty,
    distance_bias_mask,
    nli_accuracy,
    perturb_weights,
    perturbation_effect,
    train_nli,
)

V = len(VOCAB)
MODELS = [
    lambda: BagOfWords(V),
    lambda: DecomposableAttention(V),
    lambda: DecomposableAttention(V, intra=True),
    lambda: LSTMNClassifier(V, hidden=16),
    lambda: StructuredSelfAttention(V, hidden=8, heads=2),
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data():
    return make_nli(60, seed=0)


def _pair(d, idx):
    return d.premise[idx], d.premise_lengths[idx], d.hypothesis[idx], d.hypothesis_lengths[idx]


@pytest.mark.parametrize("make", MODELS)
def test_padding_does_not_change_the_output(make, data) -> None:
    # a short premise gives the same logits alone and inside a padded batch with a long one
    model = make().eval()
    short = int((data.premise_lengths == 7).nonzero()[0, 0])
    long = int((data.premise_lengths == 15).nonzero()[0, 0])
    batch = model(*_pair(data, [short, long]))
    n = int(data.premise_lengths[short])
    alone = model(data.premise[short:short + 1, :n], data.premise_lengths[short:short + 1],
                  data.hypothesis[short:short + 1], data.hypothesis_lengths[short:short + 1])
    assert batch.shape == (2, 3)
    torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=1e-5)


def test_decomposable_attention_matches_the_equations() -> None:
    torch.manual_seed(1)
    model = DecomposableAttention(V, embed=6, hidden=5).double().eval()
    p, h = torch.tensor([[4, 5, 6, 3, 7, 8]]), torch.tensor([[4, 9, 10]])
    pl, hl = torch.tensor([6]), torch.tensor([3])
    with torch.no_grad():
        logits, w = model(p, pl, h, hl, return_weights=True)
        a, b = model.embed(p)[0], model.embed(h)[0]
        e = torch.tensor([[(model.F(a[i]) @ model.F(b[j])).item() for j in range(3)] for i in range(6)],
                         dtype=torch.float64)
        beta = torch.softmax(e, 1) @ b  # (Lp, E): soft-aligned hypothesis for each premise word
        alpha = torch.softmax(e, 0).T @ a  # (Lh, E)
        v1 = sum(model.G(torch.cat([a[i], beta[i]])) for i in range(6))
        v2 = sum(model.G(torch.cat([b[j], alpha[j]])) for j in range(3))
        torch.testing.assert_close(logits[0], model.H(torch.cat([v1, v2])))
    torch.testing.assert_close(w["beta"][0], torch.softmax(e, 1))
    torch.testing.assert_close(w["alpha"][0], torch.softmax(e, 0).T)


def test_distance_bias_mask() -> None:
    bias = torch.arange(5.0)  # m = 2: offsets -2..2 -> 0..4
    mask = distance_bias_mask(bias, torch.tensor([3, 4]), 4)
    assert mask.shape == (2, 4, 4)
    for i in range(4):
        for j in range(3):
            assert mask[0, i, j] == min(max(i - j, -2), 2) + 2
        assert mask[0, i, 3] == float("-inf") and math.isfinite(mask[1, i, 3])


def test_lstmn_matches_an_explicit_loop() -> None:
    torch.manual_seed(2)
    cell = LSTMN(3, 4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    h, w = cell(x, torch.tensor([5, 3]))
    assert h.shape == (2, 5, 4) and w.shape == (2, 5, 5)
    assert torch.equal(w, w.tril(-1))  # row t attends to i < t only
    torch.testing.assert_close(w[:, 1:].sum(-1)[0], torch.ones(4, dtype=torch.float64))
    assert (w[1, :, 3:] == 0).all()  # padding never attended
    b = 0  # the first sequence, by hand
    hs, cs, h_t = [], [], torch.zeros(4, dtype=torch.float64)
    for t in range(5):
        if t == 0:
            h_t, c_t = torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
        else:
            q = torch.cat([x[b, t], h_t])
            s = torch.stack([cell.w @ torch.tanh(cell.W_q @ q + cell.W_k @ hs[i]) for i in range(t)])
            a = torch.softmax(s, 0)
            torch.testing.assert_close(w[b, t, :t], a)
            h_t, c_t = sum(a[i] * hs[i] for i in range(t)), sum(a[i] * cs[i] for i in range(t))
        i_, f_, o_, g_ = cell.gates(torch.cat([x[b, t], h_t])).chunk(4)
        c = torch.sigmoid(f_) * c_t + torch.sigmoid(i_) * torch.tanh(g_)
        hh = torch.sigmoid(o_) * torch.tanh(c)
        hs.append(hh)
        cs.append(c)
        torch.testing.assert_close(h[b, t], hh)


def test_structured_self_attention_heads(data) -> None:
    model = StructuredSelfAttention(V, hidden=8, heads=3).eval()
    M, A = model.encode(data.premise[:4], data.premise_lengths[:4])
    assert M.shape == (4, 3, 16) and A.shape == (4, 3, data.premise.shape[1])
    torch.testing.assert_close(A.sum(-1), torch.ones(4, 3))
    for b in range(4):
        assert (A[b, :, int(data.premise_lengths[b]):] == 0).all()


@given(st.integers(1, 4), st.integers(1, 7), st.integers(0, 10_000))
def test_attention_penalty_against_numpy(r: int, L: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    A = torch.softmax(torch.randn(2, r, L, generator=g, dtype=torch.float64), -1)
    ref = [np.linalg.norm(a @ a.T - np.eye(r), "fro") ** 2 for a in A.numpy()]
    np.testing.assert_allclose(attention_penalty(A).numpy(), ref, rtol=1e-10)
    assert (attention_penalty(A) >= 0).all()


def test_attention_penalty_extremes() -> None:
    one_hot = torch.eye(3, 5)[None]  # three heads on three different words
    assert attention_penalty(one_hot).item() == 0.0
    same = torch.zeros(1, 3, 5)
    same[..., 0] = 1.0
    assert attention_penalty(same).item() == 6.0  # all-ones 3x3 Gram matrix minus I


def test_perturb_weights() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.softmax(torch.randn(2, 3, 5), -1) * torch.tensor([1, 1, 1, 0, 0.0])
    w = w / w.sum(-1, keepdim=True)
    pad = torch.tensor([[True, True, True, False, False]] * 2)
    p = perturb_weights(w, pad, "permute", generator=g)
    torch.testing.assert_close(p.sort(-1).values, w.sort(-1).values)  # the same weights, moved
    assert (p[..., 3:] == 0).all()
    u = perturb_weights(w, pad, "uniform")
    torch.testing.assert_close(u[..., :3], torch.full((2, 3, 3), 1 / 3))
    with pytest.raises(ValueError, match="how must be 'permute' or 'uniform'"):
        perturb_weights(w, pad, "reverse")


@pytest.mark.parametrize("make", [MODELS[1], MODELS[4]])
def test_perturbation_effect(make, data) -> None:
    out = perturbation_effect(make().eval(), data, "permute")
    assert set(out) == {"accuracy", "accuracy_perturbed", "changed", "tvd"}
    assert all(0.0 <= v <= 1.0 for v in out.values())


@pytest.mark.parametrize(("make", "penalty"), [(MODELS[0], 0.0), (MODELS[2], 0.0), (MODELS[3], 0.0), (MODELS[4], 0.1)])
def test_short_training_reduces_the_loss(make, penalty: float) -> None:
    torch.manual_seed(0)
    train = make_nli(192, seed=3)
    model = make()
    losses = train_nli(model, train, epochs=10, batch_size=32, lr=1e-2, penalty=penalty, progress=False)
    assert len(losses) == 60
    assert np.mean(losses[-6:]) < 0.85 * np.mean(losses[:6]), (losses[:6], losses[-6:])
    assert 0.0 <= nli_accuracy(model, train) <= 1.0


def test_errors(data) -> None:
    model = DecomposableAttention(V)
    p, pl, h, hl = _pair(data, [0, 1])
    with pytest.raises(TypeError, match=r"premise must be a \(B, L\) long tensor of word ids; got dtype torch.float32"):
        model(p.float(), pl, h, hl)
    with pytest.raises(ValueError, match=r"hypothesis_lengths must be a \(2,\) tensor; got \(3,\)"):
        model(p, pl, h, torch.tensor([3, 3, 3]))
    with pytest.raises(ValueError, match=r"premise_lengths must lie in \[1, 15\]"):
        model(p, torch.tensor([0, 16]), h, hl)
    with pytest.raises(ValueError, match=r"A must be a floating-point \(\.\.\., r, L\) tensor"):
        attention_penalty(torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must be \(B, L, E\); got \(2, 3\)"):
        LSTMN(3, 4)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="penalty needs a StructuredSelfAttention model"):
        train_nli(BagOfWords(V), data, penalty=1.0, progress=False)


def test_penalty_checker_accepts_the_reference_and_rejects_bugs() -> None:
    from attnkit.exercises.recurrent import check_attention_penalty

    assert check_attention_penalty(attention_penalty, quiet=True)
    words_gram = check_attention_penalty(
        lambda A: ((A.transpose(-2, -1) @ A - torch.eye(A.shape[-1], dtype=A.dtype)) ** 2).sum((-2, -1)), quiet=True)
    assert not words_gram and words_gram.n_passed == 0
    not_squared = check_attention_penalty(
        lambda A: torch.linalg.matrix_norm(A @ A.transpose(-2, -1) - torch.eye(A.shape[-2], dtype=A.dtype)), quiet=True)
    assert not not_squared
