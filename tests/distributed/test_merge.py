"""The LSE merge alone: any split of the keys, any order of merging, empty and fully masked blocks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit import attend
from attnkit.distributed.merge import accumulation_dtype, block_attention, merge_all, merge_partials


def reference(q, k, v, keep):
    """Explicit float64 softmax attention over the kept keys, and each row's log-sum-exp."""
    q, k, v = q.double(), k.double(), v.double()
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~keep, -math.inf)
    lse = torch.logsumexp(s, -1)
    w = torch.exp(s - torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))[..., None])
    return w @ v, lse


@st.composite
def problems(draw):
    lq, lk = draw(st.integers(1, 6)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([1.0, 30.0]))  # large scores: the merge must not overflow
    q = torch.randn(2, lq, 4, generator=g, dtype=torch.float64) * scale
    k = torch.randn(2, lk, 4, generator=g, dtype=torch.float64)
    v = torch.randn(2, lk, 3, generator=g, dtype=torch.float64)
    keep = torch.rand(2, lq, lk, generator=g) < draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    if draw(st.booleans()):
        keep[:, 0] = False  # a row that sees no key at all
    # any split of the keys into consecutive blocks, empty blocks included
    cuts = sorted(draw(st.lists(st.integers(0, lk), min_size=0, max_size=4)))
    bounds = [0, *cuts, lk]
    blocks = list(itertools.pairwise(bounds))
    order = draw(st.permutations(range(len(blocks))))
    return q, k, v, keep, blocks, order


@given(problems())
def test_merging_blocks_in_any_order_equals_attention_over_all_keys(problem) -> None:
    q, k, v, keep, blocks, order = problem
    partials = []
    for i in order:
        a, b = blocks[i]
        partials.append(block_attention(q, k[:, a:b], v[:, a:b], mask=keep[:, :, a:b]))
    o, lse = merge_all(partials)
    o_ref, lse_ref = reference(q, k, v, keep)
    assert not torch.isnan(o).any() and not torch.isnan(lse).any()
    assert torch.equal(torch.isinf(lse), torch.isinf(lse_ref))
    assert (lse[torch.isinf(lse)] < 0).all()  # empty rows: -inf, never +inf
    fin = torch.isfinite(lse_ref)
    torch.testing.assert_close(lse[fin], lse_ref[fin], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(o, o_ref, rtol=1e-10, atol=1e-12)
    assert (o[~fin] == 0).all()  # rows with no key: zero output


@given(problems())
def test_merge_is_associative_and_commutative(problem) -> None:
    q, k, v, keep, _, _ = problem
    lk = k.shape[1]
    a, b = lk // 3, 2 * lk // 3
    parts = [block_attention(q, k[:, i:j], v[:, i:j], mask=keep[:, :, i:j]) for i, j in ((0, a), (a, b), (b, lk))]
    left = merge_partials(*merge_partials(*parts[0], *parts[1]), *parts[2])
    right = merge_partials(*parts[0], *merge_partials(*parts[1], *parts[2]))
    swapped = merge_partials(*parts[1], *parts[0])
    forward = merge_partials(*parts[0], *parts[1])
    for x, y in ((left, right), (swapped, forward)):
        torch.testing.assert_close(x[0], y[0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(x[1], y[1], rtol=1e-12, atol=1e-14)


def test_block_attention_equals_attend_and_logsumexp() -> None:
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(3, 5, 8, generator=g), torch.randn(3, 7, 8, generator=g), torch.randn(3, 7, 2, generator=g)
    keep = torch.rand(3, 5, 7, generator=g) < 0.6
    keep[:, :, 0] = True
    o, lse = block_attention(q, k, v, mask=keep)
    torch.testing.assert_close(o, attend(q, k, v, mask=keep)[0])
    s = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(~keep, -math.inf)
    torch.testing.assert_close(lse, torch.logsumexp(s, -1))


def test_two_empty_partials_merge_to_empty_without_nan() -> None:
    o = torch.zeros(2, 3, 4)
    lse = torch.full((2, 3), -math.inf)
    out, l_out = merge_partials(o, lse, o, lse)
    assert torch.equal(out, o) and torch.equal(l_out, lse)


def test_the_merge_does_not_overflow_where_exp_of_lse_would() -> None:
    # e^{1000} overflows even float64; the merge only ever exponentiates differences
    f64 = torch.float64
    o_a, o_b = torch.ones(1, 1, 2, dtype=f64), -torch.ones(1, 1, 2, dtype=f64)
    lse_a, lse_b = torch.tensor([[1000.0]], dtype=f64), torch.tensor([[1000.0 - math.log(3.0)]], dtype=f64)
    assert torch.isinf(torch.exp(lse_a)).all()
    o, lse = merge_partials(o_a, lse_a, o_b, lse_b)
    torch.testing.assert_close(o, torch.full((1, 1, 2), 0.5, dtype=f64))  # weights 3/4 and 1/4
    torch.testing.assert_close(lse, torch.tensor([[1000.0 + math.log(4 / 3)]], dtype=f64))


def test_half_precision_partials_merge_in_float32() -> None:
    o = torch.randn(2, 3, 4).half()
    lse = torch.randn(2, 3).half()
    out, l_out = merge_partials(o, lse, o, lse)
    assert out.dtype == l_out.dtype == torch.float32
    assert accumulation_dtype(torch.bfloat16) == torch.float32 and accumulation_dtype(torch.float64) == torch.float64
    torch.testing.assert_close(out, o.float())
    torch.testing.assert_close(l_out, lse.float() + math.log(2))


def test_bad_inputs_are_named() -> None:
    o, lse = torch.zeros(2, 3, 4), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="lse_b must have the shape of o_b"):
        merge_partials(o, lse, o, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        merge_partials(o, lse, torch.zeros(2, 3, 5), lse)
    with pytest.raises(TypeError, match="o_a must be a torch.Tensor"):
        merge_partials([1.0], lse, o, lse)
    with pytest.raises(ValueError, match="at least one"):
        merge_all([])
    with pytest.raises(ValueError, match="same width"):
        block_attention(torch.zeros(2, 3), torch.zeros(4, 5), torch.zeros(4, 1))
    with pytest.raises(TypeError, match="bool"):
        block_attention(torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(4, 1), mask=torch.zeros(2, 4))
