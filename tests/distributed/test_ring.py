"""Ring and all-to-all attention on spawned gloo groups (P = 2 and 4) equal single-process attention.

All the cases of a world size run inside one task of the session's worker group (see conftest),
so the processes start once; each test then checks its case against float64 SDPA computed here.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from attnkit.distributed.demo import attention_case, attention_cases, attention_on_shards, gather_results
from attnkit.distributed.launch import WorkerGroup
from attnkit.distributed.layouts import shard_positions
from attnkit.distributed.ring import RingStats, ring_attention
from attnkit.distributed.ulysses import ulysses_attention

B, H, D, DV = 2, 4, 8, 6  # dv != d: values need not be as wide as keys
TOL = {torch.float64: 1e-10, torch.float32: 2e-5}

CASES = [  # (world size, variant, dtype, causal, layout, block size)
    (P, variant, dtype, causal, layout, None)
    for P, variant, dtype, causal, layout in itertools.product(
        (2, 4), ("ring", "ulysses"), (torch.float64, torch.float32), (False, True), ("contiguous", "zigzag"))
] + [
    (P, "ring", torch.float64, True, layout, block)
    for P, layout, block in itertools.product((2, 4), ("striped", "contiguous", "zigzag"), (1, 3))
] + [(4, "ulysses", torch.float64, True, "striped", None)]


def inputs(P, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = 8 * P  # 8 tokens per rank: divisible by every layout's chunk count
    q, k = (torch.randn(B, H, n, D, generator=g, dtype=torch.float64).to(dtype) for _ in range(2))
    v, dout = (torch.randn(B, H, n, DV, generator=g, dtype=torch.float64).to(dtype) for _ in range(2))
    return q, k, v, dout


def reference(q, k, v, dout, causal):
    q, k, v = (t.detach().double().requires_grad_() for t in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    (out * dout.double()).sum().backward()
    return {"out": out.detach(), "dq": q.grad, "dk": k.grad, "dv": v.grad}


@pytest.fixture(scope="module")
def results(group2, group4):
    out = {}
    for P, group in ((2, group2), (4, group4)):
        mine = [c for c in CASES if c[0] == P]
        cases = [dict(q=q, k=k, v=v, dout=dout, variant=variant, causal=causal, layout=layout, block_size=block)
                 for (_, variant, dtype, causal, layout, block) in mine
                 for q, k, v, dout in [inputs(P, dtype)]]
        cases = [{key: val for key, val in c.items() if not (key == "block_size" and c["variant"] == "ulysses")}
                 for c in cases]
        per_rank = group.run(attention_cases, cases)  # per rank: one result per case
        for i, case in enumerate(mine):
            out[case] = [per_rank[r][i] for r in range(P)]
    return out


def case_id(c):
    P, variant, dtype, causal, layout, block = c
    name = f"P{P}-{variant}-{str(dtype)[6:]}-{'causal' if causal else 'full'}-{layout}"
    return name + (f"-tile{block}" if block else "")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_and_backward_equal_single_process_attention(results, case) -> None:
    P, _, dtype, causal, layout, _ = case
    per_rank = results[case]
    got = gather_results(per_rank, layout)
    q, k, v, dout = inputs(P, dtype)
    ref = reference(q, k, v, dout, causal)
    for key in ("out", "dq", "dk", "dv"):
        assert got[key].dtype == dtype
        err = (got[key].double() - ref[key]).abs().max().item()
        assert err < TOL[dtype], f"{key}: max error {err:.3g}"


@pytest.mark.parametrize("P", (2, 4))
def test_ring_sends_p_minus_1_kv_blocks_forward_and_kv_plus_dkv_backward(results, P) -> None:
    per_rank = results[(P, "ring", torch.float32, True, "zigzag", None)]
    n = 8
    kv_bytes = B * H * n * (D + DV) * 4
    for rank, r in enumerate(per_rank):
        stats = RingStats(r["stats"])
        assert stats.total("bytes_sent", "forward") == (P - 1) * kv_bytes
        # backward: the K/V block P - 1 times and its dK/dV accumulator P times (float32 here)
        assert stats.total("bytes_sent", "backward") == (2 * P - 1) * kv_bytes
        # step t uses the block of rank (r - t) mod P
        assert [s.source for s in stats.records if s.phase == "forward"] == [(rank - t) % P for t in range(P)]


@pytest.mark.parametrize("P", (2, 4))
def test_causal_work_per_rank_is_measured_and_balanced_by_zigzag(results, P) -> None:
    n, pair = 8, B * H * (2 * D + 2 * DV)  # FLOPs of one (query, key) pair in the forward
    flops = {layout: [RingStats(r["stats"]).total("flops", "forward") for r in
                      results[(P, "ring", torch.float64, True, layout, None)]]
             for layout in ("contiguous", "zigzag")}
    # contiguous, one tile per block: rank r computes its r full blocks and its diagonal block in full
    assert flops["contiguous"] == [(r + 1) * n * n * pair for r in range(P)]
    # zig-zag, tiles of n/2: every rank computes 2P + 1 tiles
    assert flops["zigzag"] == [(2 * P + 1) * (n // 2) ** 2 * pair] * P
    # 1 x 1 tiles: exactly the (query, key) pairs the causal mask keeps, counted independently
    for layout in ("striped", "contiguous", "zigzag"):
        got = [RingStats(r["stats"]).total("flops", "forward") for r in results[(P, "ring", torch.float64, True,
                                                                                    layout, 1)]]
        want = [int((shard_positions(n * P, P, r, layout) + 1).sum()) * pair for r in range(P)]
        assert got == want


def test_ulysses_moves_fewer_bytes_than_the_ring_at_p4(results) -> None:
    ring = RingStats(results[(4, "ring", torch.float32, False, "contiguous", None)][0]["stats"])
    uly = RingStats(results[(4, "ulysses", torch.float32, False, "contiguous", None)][0]["stats"])
    n, P = 8, 4
    # four all-to-alls (q, k, v, out), each sending (P - 1) / P of a local tensor
    assert uly.total("bytes_sent", "forward") == (P - 1) * B * H * n * (2 * D + 2 * DV) * 4 // P
    assert uly.total("bytes_sent", "forward") < ring.total("bytes_sent", "forward")


# ---- bad input: every rank gets the same clear error, no rank hangs ------------------------------------

def shards(P, n=8, h=H, dtype=torch.float64):
    return [{"q": torch.randn(1, h, n, D, dtype=dtype), "k": torch.randn(1, h, n, D, dtype=dtype),
             "v": torch.randn(1, h, n, DV, dtype=dtype)} for _ in range(P)]


def test_shards_of_different_shapes_fail_on_every_rank(group4) -> None:
    per_rank = shards(4)
    per_rank[2] = shards(1, n=6)[0]
    for variant in ("ring", "ulysses"):
        out = group4.run(attention_on_shards, per_rank, variant=variant)
        assert all(o[0] == "error" and o[1] == "ValueError" for o in out), out
        assert all("shards of different shapes across ranks" in o[2] and "rank 2: (1, 4, 6, 8)" in o[2]
                   for o in out)


def test_local_bad_input_on_one_rank_is_reported_on_every_rank(group2) -> None:
    per_rank = shards(2)
    per_rank[1]["q"] = "not a tensor"
    out = group2.run(attention_on_shards, per_rank)
    assert all(o[:2] == ("error", "TypeError") and "rank 1: TypeError: q must be a torch.Tensor" in o[2]
               for o in out), out
    per_rank = shards(2, n=7)  # an odd local length cannot hold two zig-zag chunks
    for r in per_rank:
        r["layout"] = "zigzag"
    out = group2.run(attention_on_shards, per_rank)
    assert all(o[1] == "ValueError" and "local length must be even" in o[2] for o in out), out


def test_options_that_differ_across_ranks_fail_on_every_rank(group2) -> None:
    per_rank = shards(2)
    per_rank[0]["causal"] = True
    out = group2.run(attention_on_shards, per_rank)
    assert all(o[1] == "ValueError" and "ranks disagree: causal differs" in o[2] for o in out), out


def test_ulysses_needs_the_world_size_to_divide_the_heads(group2) -> None:
    out = group2.run(attention_on_shards, shards(2, h=3), variant="ulysses")
    assert all(o[1] == "ValueError" and "H = 3 heads for P = 2 ranks" in o[2] for o in out), out


def test_the_group_still_works_after_bad_input(group2) -> None:
    out = group2.run(attention_on_shards, shards(2))
    assert [o[0] for o in out] == ["ok", "ok"]


def test_without_a_process_group_the_error_says_what_to_do() -> None:
    q = torch.zeros(1, 1, 4, 2)
    for fn in (ring_attention, ulysses_attention):
        with pytest.raises(RuntimeError, match="no process group is initialised"):
            fn(q, q, q)


def test_case_table_covers_what_ci_needs() -> None:
    # world sizes 2 and 4; float64 and float32; causal and not; contiguous and zig-zag; both variants
    covered = {(P, v, dt, c, lay) for P, v, dt, c, lay, _ in CASES}
    for combo in itertools.product((2, 4), ("ring", "ulysses"), (torch.float64, torch.float32), (False, True),
                                   ("contiguous", "zigzag")):
        assert combo in covered
    assert math.isclose(TOL[torch.float64], 1e-10)


def test_a_subgroup_of_the_world_runs_its_own_ring(group4) -> None:
    q, k, v, dout = inputs(2, torch.float64, seed=3)
    per_rank = group4.run(attention_case, q, k, v, dout, causal=True, layout="zigzag", ranks=[1, 3])
    assert per_rank[0] is None and per_rank[2] is None
    got = gather_results([per_rank[1], per_rank[3]], "zigzag")
    ref = reference(q, k, v, dout, True)
    for key in ("out", "dq", "dk", "dv"):
        assert (got[key] - ref[key]).abs().max().item() < 1e-10


def test_one_rank_is_plain_attention() -> None:
    q, k, v, dout = inputs(1, torch.float64, seed=4)
    with WorkerGroup(1, timeout=20) as group:
        (mine,) = group.run(attention_cases, [dict(q=q, k=k, v=v, dout=dout, causal=True),
                                              dict(q=q, k=k, v=v, dout=dout, variant="ulysses")])
    for result, causal in zip(mine, (True, False)):
        ref = reference(q, k, v, dout, causal)
        for key in ("out", "dq", "dk", "dv"):
            assert (result[key] - ref[key]).abs().max().item() < 1e-12
        assert RingStats(result["stats"]).total("bytes_sent") == 0
