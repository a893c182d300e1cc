"""attnkit.transformers.positions: sinusoidal, learned and rotary positions against their formulas."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit import MultiHeadAttention, attend
from attnkit.transformers.positions import LearnedPositions, apply_rotary, rotary_score, sinusoidal_positions

# ---- positions --------------------------------------------------------------------------------


@pytest.mark.parametrize("L,d", [(5, 8), (3, 7), (1, 2), (12, 16)])
def test_sinusoidal_matches_the_papers_formula_in_a_loop(L: int, d: int) -> None:
    pe = sinusoidal_positions(L, d, dtype=torch.float64)
    assert pe.shape == (L, d)
    for pos in range(L):
        for col in range(d):
            angle = pos / 10000 ** ((col - col % 2) / d)
            want = math.sin(angle) if col % 2 == 0 else math.cos(angle)
            assert abs(pe[pos, col].item() - want) < 1e-12


def test_sinusoidal_dot_products_depend_on_the_offset_only() -> None:
    pe = sinusoidal_positions(40, 16, dtype=torch.float64)
    gram = pe @ pe.T  # (L, L)
    for off in range(5):
        diag = torch.diagonal(gram, off)
        torch.testing.assert_close(diag, torch.full_like(diag, diag[0].item()))


@pytest.mark.parametrize(("bad", "err", "words"), [
    ((-1, 4), ValueError, "length must be a non-negative int; got -1"),
    ((3, 0), ValueError, "d_model must be a positive int; got 0"),
    ((2.5, 4), TypeError, "length must be a non-negative int; got float"),
])
def test_sinusoidal_bad_sizes(bad: tuple, err: type, words: str) -> None:
    with pytest.raises(err, match=words):
        sinusoidal_positions(*bad)


def test_rotary_matches_complex_multiplication() -> None:
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    z = torch.view_as_complex(x.reshape(2, 6, 4, 2).contiguous())  # pairs as complex numbers (2, 6, 4)
    theta = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    rot = torch.polar(torch.ones(6, 4, dtype=torch.float64), torch.arange(6.0, dtype=torch.float64)[:, None] * theta)
    ref = torch.view_as_real(z * rot).reshape(2, 6, 8)
    torch.testing.assert_close(apply_rotary(x), ref)


@given(shift=st.integers(0, 50), seed=st.integers(0, 1000))
def test_rotary_scores_depend_on_relative_position_only(shift: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(5, 6, generator=g, dtype=torch.float64), torch.randn(5, 6, generator=g, dtype=torch.float64)
    pos = torch.arange(5)
    s0 = apply_rotary(q, pos) @ apply_rotary(k, pos).T
    s1 = apply_rotary(q, pos + shift) @ apply_rotary(k, pos + shift).T
    torch.testing.assert_close(s0, s1)
    torch.testing.assert_close(apply_rotary(q).norm(dim=-1), q.norm(dim=-1))  # a rotation keeps lengths


def test_rotary_score_through_attend_and_mha() -> None:
    q, k, v = torch.randn(2, 5, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 3)
    out, w = attend(q, k, v, score=rotary_score)
    ref = torch.softmax(apply_rotary(q) @ apply_rotary(k).transpose(-2, -1) / 2.0, -1)
    torch.testing.assert_close(w, ref)
    torch.testing.assert_close(out, ref @ v)
    mha = MultiHeadAttention(8, 2, score=rotary_score)
    y, wh = mha(torch.randn(3, 5, 8))
    assert y.shape == (3, 5, 8) and wh.shape == (3, 2, 5, 5)


def test_rotary_errors() -> None:
    with pytest.raises(ValueError, match="d must be even"):
        apply_rotary(torch.randn(4, 5))
    with pytest.raises(ValueError, match=r"positions must be \(L,\)"):
        apply_rotary(torch.randn(4, 6), torch.arange(3))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        apply_rotary([[1.0, 2.0]])


def test_learned_positions_too_long() -> None:
    lp = LearnedPositions(4, 8)
    assert lp(3).shape == (3, 8)
    with pytest.raises(ValueError, match="exceeds the learned table's max_len=4"):
        lp(5)
