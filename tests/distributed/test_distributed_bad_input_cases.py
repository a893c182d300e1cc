"""The bad-input cases found in attnkit.distributed after issue #17 (one test each; the table of every
public function is ``test_distributed_robustness.py``)."""

from __future__ import annotations

import pytest
import torch
from conftest import on_ranks
from robustness_kit import guarded

from attnkit.distributed.diagram import draw_ring_step, ring_schedule
from attnkit.distributed.layouts import shard, unshard
from attnkit.distributed.merge import block_attention, merge_all, merge_partials
from attnkit.distributed.ring import ring_attention
from attnkit.distributed.ulysses import heads_to_sequence, sequence_to_heads, ulysses_attention


def qkv(n=8, h=2, d=4, dv=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, h, n, d, generator=g, dtype=dtype), torch.randn(1, h, n, d, generator=g, dtype=dtype),
            torch.randn(1, h, n, dv, generator=g, dtype=dtype))


# ---- layouts and merges (no process group) ---------------------------------------------------------

def test_shard_and_unshard_refuse_an_axis_the_tensor_does_not_have() -> None:
    x = torch.zeros(2, 8, 3)
    with pytest.raises(ValueError, match=r"\bdim\b.*got 5"):
        shard(x, 2, 0, dim=5)  # once wrapped round to dim 2 (5 % 3) and sharded the wrong axis
    with pytest.raises(ValueError, match=r"\bdim\b.*got -4"):
        shard(x, 2, 0, dim=-4)
    with pytest.raises(ValueError, match=r"\bdim\b"):
        unshard([x, x], dim=3)
    with pytest.raises(TypeError, match=r"\bdim\b"):
        shard(x, 2, 0, dim=1.0)


def test_unshard_refuses_mixed_dtypes_and_devices() -> None:
    x = torch.zeros(1, 4, 2)
    with pytest.raises(TypeError, match=r"shards.*dtype"):
        unshard([x, x.double()])
    with pytest.raises(ValueError, match=r"shards.*device"):
        unshard([x, x.to("meta")])
    with pytest.raises(TypeError, match="shards"):
        unshard(x)  # a tensor is not a sequence of shards (it would unshard its first dim)


def test_merge_partials_refuses_mixed_dtypes_and_devices() -> None:
    o, lse = torch.zeros(2, 3, 4), torch.zeros(2, 3)
    with pytest.raises(TypeError, match=r"o_a and o_b.*dtype"):
        merge_partials(o, lse, o.double(), lse.double())
    with pytest.raises(ValueError, match=r"device"):
        merge_partials(o, lse, o.to("meta"), lse.to("meta"))
    with pytest.raises(TypeError, match=r"lse_a and lse_b.*dtype"):
        merge_partials(o, lse, o, lse.double())


def test_merge_all_checks_a_single_pair_too() -> None:
    o, lse = torch.zeros(2, 3, 4), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="lse"):
        merge_all([(o, torch.zeros(2, 4))])  # once returned the pair unchecked
    with pytest.raises(TypeError, match="partials"):
        merge_all([(o,)])
    with pytest.raises(TypeError, match="o_a"):
        merge_all([("o", lse)])
    with pytest.raises(TypeError, match="partials"):
        merge_all(None)


def test_block_attention_names_batch_dims_that_do_not_broadcast() -> None:
    q, k, v = torch.zeros(2, 3, 4), torch.zeros(3, 5, 4), torch.zeros(3, 5, 2)
    with pytest.raises(ValueError, match="batch"):  # once a RuntimeError from torch.broadcast_shapes
        block_attention(q, k, v, mask=torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch"):
        block_attention(q, k, v)


def test_ring_schedule_and_draw_check_their_sizes() -> None:
    with pytest.raises(ValueError, match="block_size"):
        ring_schedule(2, block_size=0)  # once a ZeroDivisionError
    with pytest.raises(ValueError, match="n_local"):
        ring_schedule(2, "zigzag", n_local=3)
    with pytest.raises(TypeError, match="causal"):
        ring_schedule(2, causal="yes")
    with pytest.raises(ValueError, match="world_size"):
        draw_ring_step(0)
    fast = ring_schedule(2, block_size=10**9)  # a tile past the local length is the whole block
    same = ring_schedule(2, block_size=2)
    assert [[(e["source"], e["tiles"], e["skipped"]) for e in row] for row in fast] == \
        [[(e["source"], e["tiles"], e["skipped"]) for e in row] for row in same]


# ---- collectives on one rank, in this process ------------------------------------------------------------

def test_sequence_to_heads_checks_its_input(world1) -> None:
    with pytest.raises(ValueError, match=r"\bx\b.*\(B, H, n, d\)"):
        sequence_to_heads(torch.zeros(2, 8, 4))  # once a bare unpacking error
    with pytest.raises(TypeError, match=r"\bx\b"):
        sequence_to_heads([1.0])
    with pytest.raises(ValueError, match=r"\by\b.*\(B, H / P, N, d\)"):
        heads_to_sequence(torch.zeros(2, 8, 4))
    with pytest.raises(TypeError, match="stats"):
        sequence_to_heads(torch.zeros(1, 2, 4, 3), stats=[])
    x = torch.randn(1, 2, 4, 3)
    torch.testing.assert_close(heads_to_sequence(sequence_to_heads(x)), x)


def test_a_huge_block_size_is_clamped_not_allocated(world1) -> None:
    q, k, v = qkv()
    ref = ring_attention(q, k, v, causal=True, block_size=8)
    with guarded(seconds=5.0, extra_bytes=1 << 30):  # 10**9 once padded the tile plan to 8 GB
        out = ring_attention(q, k, v, causal=True, block_size=10**9)
    torch.testing.assert_close(out, ref)


def test_ring_refuses_meta_tensors_and_bad_stats_before_the_ring(world1) -> None:
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"\bq\b.*meta"):
        ring_attention(q.to("meta"), k.to("meta"), v.to("meta"))
    with pytest.raises(TypeError, match="stats"):
        ring_attention(q, k, v, stats="x")
    with pytest.raises(TypeError, match="stats"):
        ulysses_attention(q, k, v, stats=3)
    with pytest.raises(TypeError, match="return_lse"):
        ring_attention(q, k, v, return_lse="yes")
    with pytest.raises(TypeError, match=r"\bgroup\b"):
        ring_attention(q, k, v, group="x")  # once torch's "Group x is not registered"
    with pytest.raises(TypeError, match=r"causal must be a Python bool; got np.True_ of type numpy.bool"):
        ulysses_attention(q, k, v, causal=__import__("numpy").bool_(True))


# ---- two ranks: one rank's bad input fails every rank, fast; nobody waits for a peer ---------------

def _ok(x):
    return ((x,), {})


def test_one_bad_rank_fails_every_rank_of_sequence_to_heads(group2) -> None:
    x = torch.randn(1, 2, 4, 3)
    for fn, bad in (("sequence_to_heads", torch.zeros(2, 4, 3)), ("heads_to_sequence", torch.zeros(1, 1, 5, 3)),
                    ("sequence_to_heads", torch.zeros(1, 3, 4, 3))):
        out = on_ranks(group2, fn, [_ok(x), _ok(bad)])  # once: rank 0 waited in all_to_all for ever
        assert all(o[0] == "error" and o[1] == "ValueError" and "rank 1" in o[2] for o in out), out
    out = on_ranks(group2, "sequence_to_heads", [_ok(x), _ok(x)])
    assert [o[0] for o in out] == ["ok", "ok"] and out[0][1].shape == (1, 1, 8, 3)


def test_one_bad_rank_fails_every_rank_of_the_ring(group2) -> None:
    q, k, v = qkv()
    good = ((q, k, v), {})
    cases = [((q.to("meta"), k.to("meta"), v.to("meta")), {}), ((q, k, v), {"stats": "x"}),
             ((q.float(), k.float(), v.float()), {}), ((q, k, v), {"block_size": 0})]
    for bad in cases:
        for fn in ("ring_attention", "ulysses_attention"):
            if fn == "ulysses_attention" and "block_size" in bad[1]:
                continue
            out = on_ranks(group2, fn, [good, bad])
            assert all(o[0] == "error" and "rank 1" in o[2] for o in out), (fn, bad[1], out)
    out = on_ranks(group2, "ring_attention", [good, good])
    assert [o[0] for o in out] == ["ok", "ok"]


def test_ranks_that_disagree_on_requires_grad_fail_before_the_ring(group2) -> None:
    q, k, v = qkv()
    # rank 0 would run the backward ring, rank 1 never: rank 0 would wait for it
    out = on_ranks(group2, "ring_attention", [((q.requires_grad_(), k, v), {}), ((q.detach(), k, v), {})])
    assert all(o[0] == "error" and "requires grad" in o[2] for o in out), out


def test_a_fully_masked_block_gives_zeros_and_drops_out_of_the_merge() -> None:
    q, k, v = (t[0] for t in qkv())
    none = torch.zeros(2, 8, 8, dtype=torch.bool)
    o, lse = block_attention(q, k, v, mask=none)
    assert not o.any() and torch.isneginf(lse).all()
    o_all, lse_all = block_attention(q, k, v)
    o_m, lse_m = merge_all([(o, lse), (o_all, lse_all)])
    torch.testing.assert_close(o_m, o_all)
    torch.testing.assert_close(lse_m, lse_all)


def test_the_rank_functions_import_no_sympy() -> None:
    import subprocess
    import sys

    code = ("import os, sys, tempfile, torch, torch.distributed as dist\n"
            "os.environ.setdefault('GLOO_SOCKET_IFNAME', 'lo')\n"
            "dist.init_process_group('gloo', init_method='file://' + tempfile.mkdtemp() + '/s', rank=0, world_size=1)\n"
            "from attnkit.distributed import ring_attention, ulysses_attention\n"
            "q = torch.randn(1, 2, 8, 4, requires_grad=True)\n"
            "for f in (ring_attention, ulysses_attention):\n"
            "    f(q, q, q, causal=True).sum().backward()\n"
            "print('sympy' in sys.modules)\n"
            "dist.destroy_process_group()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
