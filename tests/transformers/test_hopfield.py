"""Modern Hopfield networks: the update is one attention step; energy, retrieval, capacity, checker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit import attend
from attnkit.datasets.patterns import corrupt, digit_glyphs
from attnkit.exercises.everywhere import check_hopfield_update
from attnkit.transformers.hopfield import (
    classical_hopfield_update,
    effective_patterns,
    hopfield_energy,
    hopfield_retrieve,
    hopfield_update,
    retrieval_accuracy,
)


@given(d=st.integers(1, 8), n=st.integers(1, 8), m=st.integers(1, 4),
       beta=st.floats(0.01, 10.0), seed=st.integers(0, 10_000))
def test_update_is_one_attention_step(d: int, n: int, m: int, beta: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(d, n, generator=g, dtype=torch.float64)  # patterns as columns
    xi = torch.randn(m, d, generator=g, dtype=torch.float64)
    new, w = hopfield_update(X.T, xi, beta)
    # Ramsauer et al.: xi_new = X softmax(beta X^T xi), one query at a time, in NumPy
    for i in range(m):
        s = beta * (X.T @ xi[i]).numpy()
        e = np.exp(s - s.max())
        p = torch.from_numpy(e / e.sum())
        torch.testing.assert_close(new[i], X @ p)
        torch.testing.assert_close(w[i], p)
    out, _ = attend(xi, X.T, X.T, score="dot", temperature=1 / beta)
    torch.testing.assert_close(new, out)


@given(seed=st.integers(0, 10_000), beta=st.floats(0.05, 5.0))
def test_energy_never_increases(seed: int, beta: float) -> None:
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(6, 5, generator=g, dtype=torch.float64)
    xi = torch.randn(3, 5, generator=g, dtype=torch.float64)
    for _ in range(4):
        new, _ = hopfield_update(P, xi, beta)
        assert (hopfield_energy(P, new, beta) <= hopfield_energy(P, xi, beta) + 1e-9).all()
        xi = new


def test_retrieval_of_corrupted_patterns_and_metastable_average() -> None:
    g = torch.Generator().manual_seed(0)
    P = torch.where(torch.rand(10, 60, generator=g) > 0.5, 1.0, -1.0)
    flipped = corrupt(P, 0.15, seed=0)
    new, w = hopfield_retrieve(P, flipped, beta=1.0, steps=2)
    assert retrieval_accuracy(P, new, torch.arange(10)) == 1.0
    assert torch.allclose(effective_patterns(w), torch.ones(10), atol=1e-3)
    flat, w_flat = hopfield_update(P, flipped, beta=1e-6)  # beta -> 0: every query goes to the mean
    torch.testing.assert_close(flat, P.mean(0).expand_as(flat), atol=1e-4, rtol=0)
    assert (effective_patterns(w_flat) > 9.99).all()


def test_modern_beats_classical_capacity() -> None:
    g = torch.Generator().manual_seed(0)
    P = torch.where(torch.rand(64, 32, generator=g) > 0.5, 1.0, -1.0)  # 64 patterns >> 0.14 * 32
    Q = corrupt(P, 0.1, seed=1)
    exact = lambda s: (torch.where(s >= 0, 1.0, -1.0) == P).all(-1).float().mean().item()  # noqa: E731
    assert exact(hopfield_update(P, Q, 1.0)[0]) > 0.9
    assert exact(classical_hopfield_update(P, Q)) < 0.2


def test_digits_are_stored_as_fixed_points() -> None:
    P = digit_glyphs(2).flatten(1)  # (10, 60)
    assert P.shape == (10, 60) and set(P.unique().tolist()) == {-1.0, 1.0}
    new, _ = hopfield_update(P, P, beta=2.0)
    torch.testing.assert_close(new, P, atol=1e-3, rtol=0)
    assert retrieval_accuracy(P, classical_hopfield_update(P, P), torch.arange(10)) < 1.0  # too correlated


def test_classical_update_matches_sign_rule() -> None:
    P = torch.where(torch.randn(3, 10) > 0, 1.0, -1.0)
    q = torch.where(torch.randn(2, 10) > 0, 1.0, -1.0)
    W = P.T @ P  # Hebbian weights (d, d)
    expected = torch.where(q @ W >= 0, 1.0, -1.0)
    torch.testing.assert_close(classical_hopfield_update(P, q), expected)


def test_bad_input() -> None:
    P, q = torch.randn(4, 6), torch.randn(2, 6)
    with pytest.raises(ValueError, match="same width d"):
        hopfield_update(P, torch.randn(2, 5), 1.0)
    with pytest.raises(ValueError, match="beta"):
        hopfield_update(P, q, 0.0)
    with pytest.raises(TypeError, match="patterns"):
        hopfield_update(P.long(), q, 1.0)
    with pytest.raises(ValueError, match="queries must have shape"):
        hopfield_update(P, q[0], 1.0)
    with pytest.raises(ValueError, match="steps"):
        hopfield_retrieve(P, q, 1.0, steps=0)
    with pytest.raises(ValueError, match="fraction"):
        corrupt(P, 1.5)


def test_checker_accepts_a_correct_update_and_rejects_wrong_ones() -> None:
    assert check_hopfield_update(lambda X, xi, b: X @ torch.softmax(b * (X.T @ xi), 0), quiet=True)
    assert not check_hopfield_update(lambda X, xi, b: torch.sign(X @ (X.T @ xi)), quiet=True)
    assert not check_hopfield_update(lambda X, xi, b: X @ torch.softmax(X.T @ xi, 0), quiet=True)
    naive = lambda X, xi, b: X @ (torch.exp(b * (X.T @ xi)) / torch.exp(b * (X.T @ xi)).sum())  # noqa: E731
    assert not check_hopfield_update(naive, quiet=True)
