"""Sequence layouts: each is a partition of the positions, shard and unshard are inverse, errors are clear."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnkit.distributed.layouts import LAYOUTS, chunk_count, shard, shard_positions, unshard


@given(st.sampled_from(LAYOUTS), st.integers(1, 6), st.integers(1, 5))
def test_every_layout_partitions_the_sequence(layout, P, per_chunk) -> None:
    n = chunk_count(layout, P) * per_chunk
    held = [shard_positions(n, P, r, layout) for r in range(P)]
    assert all(len(h) == n // P for h in held)
    assert torch.equal(torch.sort(torch.cat(held)).values, torch.arange(n))


def test_the_layouts_on_a_small_example() -> None:
    assert shard_positions(8, 2, 0, "contiguous").tolist() == [0, 1, 2, 3]
    assert shard_positions(8, 2, 0, "zigzag").tolist() == [0, 1, 6, 7]  # chunks 0 and 3 of 4
    assert shard_positions(8, 2, 1, "zigzag").tolist() == [2, 3, 4, 5]  # chunks 1 and 2
    assert shard_positions(12, 3, 1, "striped").tolist() == [1, 4, 7, 10]
    assert shard_positions(16, 4, 3, "zigzag").tolist() == [6, 7, 8, 9]  # chunks 3 and 4 of 8


def test_zigzag_matches_pytorchs_head_tail_load_balancer() -> None:
    # an independent reference: the order torch's context parallelism uses for causal load balance
    attention = pytest.importorskip("torch.distributed.tensor.experimental._attention")
    balancer = getattr(attention, "_HeadTailLoadBalancer", None)
    if balancer is None:
        pytest.skip("this torch has no _HeadTailLoadBalancer")
    for n, P in ((16, 2), (24, 3), (32, 4)):
        order = balancer(n, P, torch.device("cpu"))._generate_indices().flatten()
        for r in range(P):
            assert torch.equal(order[r * n // P:(r + 1) * n // P], shard_positions(n, P, r, "zigzag"))


@given(st.sampled_from(LAYOUTS), st.integers(1, 4), st.integers(0, 2))
def test_unshard_inverts_shard_on_any_dimension(layout, P, dim) -> None:
    n = chunk_count(layout, P) * 2
    shape = [2, 3, 4]
    shape[dim] = n
    x = torch.randn(*shape)
    parts = [shard(x, P, r, layout, dim=dim) for r in range(P)]
    assert torch.equal(unshard(parts, layout, dim=dim), x)
    assert torch.equal(parts[0], x.index_select(dim, shard_positions(n, P, 0, layout)))


def causal_pairs(n, P, r, layout):
    """Query/key pairs (j <= i) of rank r's queries: the causal work it owns."""
    return int((shard_positions(n, P, r, layout) + 1).sum())


def test_zigzag_and_striped_balance_the_causal_work_contiguous_does_not() -> None:
    n, P = 64, 4
    work = {layout: [causal_pairs(n, P, r, layout) for r in range(P)] for layout in LAYOUTS}
    assert len(set(work["zigzag"])) == 1  # exactly equal
    assert max(work["striped"]) - min(work["striped"]) == (P - 1) * n // P  # off by one token per stripe row
    assert work["contiguous"] == sorted(work["contiguous"]) and work["contiguous"][-1] > 6 * work["contiguous"][0]
    assert sum(work["zigzag"]) == sum(work["contiguous"]) == n * (n + 1) // 2


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"sequence length 12 is not divisible by 8.*'zigzag'.*world_size=4"):
        shard_positions(12, 4, 0, "zigzag")
    with pytest.raises(ValueError, match="not divisible by 4"):
        shard(torch.zeros(1, 10, 2), 4, 0, "striped")
    with pytest.raises(ValueError, match="layout must be one of"):
        shard_positions(8, 2, 0, "ring")
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size\)"):
        shard_positions(8, 2, 2)
    with pytest.raises(ValueError, match="world_size must be a positive int"):
        chunk_count("contiguous", 0)
    with pytest.raises(ValueError, match="same shape"):
        unshard([torch.zeros(1, 4, 2), torch.zeros(1, 3, 2)])
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        shard([1, 2], 2, 0)
    with pytest.raises(TypeError, match="non-empty sequence"):
        unshard([])
