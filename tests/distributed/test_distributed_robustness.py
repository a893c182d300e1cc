"""Bad input to every public function of ``attnkit.distributed``: clear errors or documented results.

The machinery and the accepted outcomes are in ``tests/robustness_kit.py``; this file is the table of
how to call each function with small valid inputs. The collective functions run on a one-rank gloo
group in this process (the ``world1`` fixture); what one rank's bad input does to the others is tested
on two ranks in ``test_distributed_bad_input_cases.py``.
"""

from __future__ import annotations

import importlib

import matplotlib.pyplot as plt
import pytest
import torch
from robustness_kit import (
    B,
    C,
    Int,
    Keep,
    Spec,
    T,
    heavy,
    public_callables,
    table_tests,
)

diagram, layouts, merge, ring, ulysses = (importlib.import_module(f"attnkit.distributed.{m}")
                                          for m in ("diagram", "layouts", "merge", "ring", "ulysses"))

NOT_TABLED: dict[str, str] = {
    "launch.WorkerGroup": "starts processes; its argument errors: test_launch.test_bad_arguments_are_named",
    "launch.spawn": "a WorkerGroup run once",
    "launch.WorkerError": "an exception type",
    "ring.RingAttentionFunction": "the autograd Function behind ring_attention, which checks its input",
    "ring.RingStats": "a record of per-step numbers (filled by the ring)",
    "ring.StepRecord": "one step's numbers (a dataclass)",
    "ring.require_group": "asks the process group; its errors: test_ring.test_without_a_process_group_...",
    "ring.agree_on_inputs": "the all-gather of every rank's problem: test_ring's bad-input tests",
    "ulysses.AllToAll": "the autograd Function behind the re-shardings, which check their input",
}
DEMO = "a rank-side driver of the tests and the demo: hands its input to ring/ulysses_attention, which check it"
NOT_TABLED |= {f"demo.{n}": DEMO for n in ("subgroup", "attention_case", "attention_cases", "attention_on_shards",
                                           "call_on_ranks", "gather_results", "reference_attention",
                                           "transfer_seconds", "block_seconds", "rank_info", "main")}
NEEDS_GROUP = ("ring.", "ulysses.")


def qkv4(n: int = 4, dv: int = 2) -> dict:
    return {"q": T(1, 2, n, 3, seed=1), "k": T(1, 2, n, 3, seed=2), "v": T(1, 2, n, dv, seed=3)}


def _draw(**kw) -> None:
    plt.close(diagram.draw_ring_step(**kw))


LAYOUT = C("zigzag", ("contiguous", "zigzag", "striped"))
SPECS = [
    Spec("layouts.check_layout", layouts.check_layout, {"layout": LAYOUT}),
    Spec("layouts.chunk_count", layouts.chunk_count, {"layout": LAYOUT, "world_size": Int(2)}),
    Spec("layouts.shard_positions", layouts.shard_positions,
         {"n": Int(8, 0), "world_size": Int(2), "rank": Int(1, 0), "layout": LAYOUT}),
    Spec("layouts.shard", layouts.shard,
         {"x": T(1, 2, 8, 3, rank=(1, None), nan="any"), "world_size": Int(2), "rank": Int(1, 0), "layout": LAYOUT,
          "dim": Int(-2, -4)}, skip={"x:dtype": "any dtype is sharded as is"}),
    Spec("layouts.unshard", lambda a, b, layout, dim: layouts.unshard([a, b], layout, dim=dim),
         {"a": T(1, 2, 4, 3, rank=(1, None), aliases=("shards",)),
          "b": T(1, 2, 4, 3, seed=1, rank=(1, None), aliases=("shards",)), "layout": LAYOUT, "dim": Int(-2, -4)},
         skip={"a:dtype": "any dtype (shared by every shard) is unsharded as is; a mixed one is refused",
               "b:dtype": "as a:dtype"}),
    Spec("layouts.unshard[dtype]", lambda a, b: layouts.unshard([a, b]),
         {"a": T(1, 2, 4, 3, rank=(1, None), aliases=("shards",)),
          "b": T(1, 2, 4, 3, seed=1, rank=(1, None), aliases=("shards",))}),
    Spec("merge.accumulation_dtype", merge.accumulation_dtype, {"dtype": Keep(torch.bfloat16)}),
    Spec("merge.block_attention", merge.block_attention,
         {"q": T(2, 3, 4, rank=(2, None)), "k": T(2, 5, 4, seed=1, rank=(2, None)),
          "v": T(2, 5, 2, seed=2, rank=(2, None)),
          "mask": B(lambda: torch.rand(3, 5, generator=torch.Generator().manual_seed(1)) > 0.3, rank=(0, 3))}),
    Spec("merge.merge_partials", merge.merge_partials,
         {"o_a": T(2, 3, 4, rank=(2, None)), "lse_a": T(2, 3, seed=1, rank=(1, None)),
          "o_b": T(2, 3, 4, seed=2, rank=(2, None)), "lse_b": T(2, 3, seed=3, rank=(1, None))}),
    Spec("merge.merge_all", lambda o_a, lse_a, o_b, lse_b: merge.merge_all([(o_a, lse_a), (o_b, lse_b)]),
         {"o_a": T(2, 3, 4, rank=(2, None)), "lse_a": T(2, 3, seed=1, rank=(1, None)),
          "o_b": T(2, 3, 4, seed=2, rank=(2, None)), "lse_b": T(2, 3, seed=3, rank=(1, None))}),
    Spec("merge.merge_all[single]", lambda o_a, lse_a: merge.merge_all([(o_a, lse_a)]),
         {"o_a": T(2, 3, 4, rank=(2, None)), "lse_a": T(2, 3, seed=1, rank=(1, None))}),
    Spec("diagram.ring_schedule", diagram.ring_schedule,
         {"world_size": Int(2), "layout": LAYOUT, "causal": Keep(True), "n_local": Int(4),
          "block_size": Int(1, huge=True)}),
    heavy(Spec("diagram.draw_ring_step", _draw,
               {"world_size": Int(2), "step": Int(1, 0), "layout": LAYOUT, "n_local": Int(4),
                "block_size": Int(2, huge=True)})),
    Spec("ring.ring_attention", ring.ring_attention,
         {**qkv4(), "causal": Keep(True), "layout": LAYOUT, "block_size": Int(1, huge=True)}),
    Spec("ring.ring_attention[lse]", ring.ring_attention, {**qkv4(), "return_lse": Keep(True)}),
    Spec("ulysses.ulysses_attention", ulysses.ulysses_attention, {**qkv4(), "causal": Keep(True), "layout": LAYOUT}),
    Spec("ulysses.sequence_to_heads", ulysses.sequence_to_heads, {"x": T(1, 2, 4, 3)},
         skip={"x:dtype": "any dtype is re-sharded as is"}),
    Spec("ulysses.heads_to_sequence", ulysses.heads_to_sequence, {"y": T(1, 2, 4, 3)},
         skip={"y:dtype": "any dtype is re-sharded as is"}),
]


@pytest.fixture
def group_if_needed(request):
    """The one-rank process group, for the specs of the collective functions only."""
    if request.node.callspec.params["name"].startswith(NEEDS_GROUP):
        request.getfixturevalue("world1")


(test_every_public_callable_has_a_spec, test_the_valid_call_works,
 test_bad_input_is_refused_by_name_or_documented, test_table_summary) = table_tests(
    SPECS, public_callables("attnkit.distributed"), NOT_TABLED,
    test_file="tests/distributed/test_distributed_robustness.py", fixtures=("group_if_needed",))
