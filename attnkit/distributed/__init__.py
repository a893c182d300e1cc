"""Beyond one device: ring attention and context parallelism on ``torch.distributed`` (Part IV).

The chapter *Beyond one device: ring attention and context parallelism*
(``chapters/part4/ring-attention``) builds and measures everything here:

- ``attnkit.distributed.merge``: ``block_attention`` (a block's output and log-sum-exp),
  ``merge_partials`` and ``merge_all`` (the online softmax between devices, in fp32);
- ``attnkit.distributed.layouts``: ``LAYOUTS``, ``shard``, ``unshard``, ``shard_positions``,
  ``chunk_count`` (contiguous, zig-zag and striped sequence layouts);
- ``attnkit.distributed.ring``: ``ring_attention`` (forward and backward around a ring of
  ranks, ``RingAttentionFunction``), ``RingStats`` (work, bytes and seconds per step);
- ``attnkit.distributed.ulysses``: ``ulysses_attention`` (all-to-all from sequence to heads
  and back), ``sequence_to_heads``, ``heads_to_sequence``;
- ``attnkit.distributed.launch``: ``WorkerGroup`` and ``spawn`` (gloo worker processes on one
  machine, always cleaned up), ``WorkerError``;
- ``attnkit.distributed.demo``: the functions that run on the ranks, and
  ``python -m attnkit.distributed.demo --world-size 4``;
- ``attnkit.distributed.diagram``: ``ring_schedule``, ``draw_ring_step`` (the ring, drawn by code).

Importing this package starts no process and touches no process group.
"""

from attnkit.distributed.launch import WorkerError, WorkerGroup, spawn
from attnkit.distributed.layouts import LAYOUTS, chunk_count, shard, shard_positions, unshard
from attnkit.distributed.merge import block_attention, merge_all, merge_partials
from attnkit.distributed.ring import RingAttentionFunction, RingStats, StepRecord, ring_attention
from attnkit.distributed.ulysses import heads_to_sequence, sequence_to_heads, ulysses_attention

__all__ = [
    "block_attention",
    "merge_partials",
    "merge_all",
    "LAYOUTS",
    "chunk_count",
    "shard",
    "unshard",
    "shard_positions",
    "ring_attention",
    "RingAttentionFunction",
    "RingStats",
    "StepRecord",
    "ulysses_attention",
    "sequence_to_heads",
    "heads_to_sequence",
    "WorkerGroup",
    "WorkerError",
    "spawn",
]
