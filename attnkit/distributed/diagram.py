"""The ring drawn by code: who holds which key/value block at each step, and which scores get computed.

:func:`ring_schedule` lists, for every step and rank, the block the rank holds and the score
tiles it computes or skips, using the same tile plan as :func:`~attnkit.distributed.ring.ring_attention`
(so the picture is the algorithm's, not a drawing of it). :func:`draw_ring_step` draws one step:
the ranks on a ring with the K/V transfers, the $N \\times N$ score matrix in global token order
coloured by the rank that computes each pair, and the work done so far per rank.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle, FancyArrowPatch

from attnkit._checks import check_int
from attnkit.distributed.layouts import check_layout, chunk_count, shard_positions
from attnkit.distributed.ring import _plan

__all__ = ["ring_schedule", "draw_ring_step"]

RANK_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def ring_schedule(world_size: int, layout: str = "contiguous", causal: bool = True, *, n_local: int | None = None,
                  block_size: int | None = None) -> list[list[dict]]:
    """``schedule[step][rank]``: the source rank of the K/V block, and the tiles computed and skipped.

    Each entry also has ``pairs``: a bool matrix ``(n_local, n_local)`` of the (query, key) pairs
    inside computed tiles, and ``kept``: those the causal mask keeps. ``n_local`` defaults to
    two tokens per chunk of the layout; ``block_size`` to the layout's chunk (as in the ring).
    """
    check_int("world_size", world_size, minimum=1)
    check_layout(layout)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool; got {type(causal).__name__}")
    P = world_size
    per_rank = chunk_count(layout, P) // P  # chunks each rank holds: 2 for zig-zag, else 1
    if n_local is None:
        n_local = 2 * per_rank
    check_int("n_local", n_local, minimum=1)
    if n_local % per_rank:
        raise ValueError(f"n_local must be a multiple of {per_rank} for the {layout!r} layout (the chunks each rank "
                         f"holds); got {n_local}")
    if n_local * P > 4096:
        raise ValueError(f"n_local * world_size must be at most 4096 tokens (a drawing); got n_local={n_local}, "
                         f"world_size={P}")
    n = n_local * P
    if block_size is not None:
        check_int("block_size", block_size, minimum=1)
    # a tile longer than the block is the block (as in ring_attention)
    tile = min(block_size, n_local) if block_size else (n_local // 2 if layout == "zigzag" else n_local)
    pos = [shard_positions(n, P, r, layout) for r in range(P)]
    schedule = []
    for step in range(P):
        row = []
        for rank in range(P):
            source = (rank - step) % P
            plan = _plan(pos[rank], pos[source], causal, tile)
            pairs = np.zeros((n_local, n_local), dtype=bool)
            for t in plan:
                pairs[t.rows.start:t.rows.stop, t.keys.cpu().numpy()] = True
            kept = pairs & (pos[source].numpy()[None, :] <= pos[rank].numpy()[:, None]) if causal else pairs
            row.append({"source": source, "tiles": sum(t.tiles for t in plan),
                        "skipped": sum(t.skipped for t in plan), "pairs": pairs, "kept": kept})
        schedule.append(row)
    return schedule


def draw_ring_step(world_size: int = 4, step: int = 0, layout: str = "contiguous", causal: bool = True, *,
                   n_local: int | None = None, block_size: int | None = None) -> plt.Figure:
    """Draw step ``step`` (0-based) of ring attention on ``world_size`` ranks; returns the figure.

    A ``step`` past the last one shows the finished ring (every block visited).
    """
    check_int("step", step, minimum=0)
    if isinstance(n_local, int) and isinstance(world_size, int) and n_local * world_size > 256:
        raise ValueError(f"n_local * world_size must be at most 256 tokens to be drawn; got n_local={n_local}, "
                         f"world_size={world_size}")
    P = world_size
    schedule = ring_schedule(P, layout, causal, n_local=n_local, block_size=block_size)
    n_local = schedule[0][0]["pairs"].shape[0]
    n = n_local * P
    last = min(step, P - 1)
    done = step >= P
    pos = [shard_positions(n, P, r, layout).numpy() for r in range(P)]
    fig, (ax_ring, ax_mat, ax_work) = plt.subplots(1, 3, figsize=(11.5, 3.9),
                                                   gridspec_kw={"width_ratios": [1.05, 1.0, 0.8]})
    # the ring: rank r at angle 90 - 360 r / P degrees; arrows r -> r + 1 carry the K/V blocks
    angles = np.pi / 2 - 2 * np.pi * np.arange(P) / P
    xy = np.stack([np.cos(angles), np.sin(angles)], 1)
    for r in range(P):
        colour = RANK_COLOURS[r % len(RANK_COLOURS)]
        ax_ring.add_patch(Circle(xy[r], 0.3, facecolor=colour, alpha=0.25, edgecolor=colour, lw=2))
        src = schedule[last][r]["source"]
        label = f"rank {r}\nQ{r}, KV{src}" if not done else f"rank {r}\nO{r} done"
        ax_ring.text(*xy[r], label, ha="center", va="center", fontsize=8)
        if P > 1 and not done and step < P - 1:
            a, b = xy[r], xy[(r + 1) % P]
            ax_ring.add_patch(FancyArrowPatch(a, b, connectionstyle="arc3,rad=-0.25", arrowstyle="-|>",
                                              mutation_scale=12, shrinkA=24, shrinkB=24, color="grey"))
    ax_ring.set_xlim(-1.45, 1.45)
    ax_ring.set_ylim(-1.45, 1.45)
    ax_ring.set_aspect("equal")
    ax_ring.axis("off")
    title = "all blocks visited" if done else f"step {step + 1} of {P}: compute KV block, send it on"
    ax_ring.set_title(title, fontsize=9)
    # the score matrix in global order: colour = rank computing the pair; pale = computed but masked
    img = np.ones((n, n, 3))
    for t in range(last + 1):
        for r in range(P):
            entry = schedule[t][r]
            colour = np.array(plt.matplotlib.colors.to_rgb(RANK_COLOURS[r % len(RANK_COLOURS)]))
            rows, cols = pos[r], pos[entry["source"]]
            for i in range(n_local):
                for j in range(n_local):
                    if entry["kept"][i, j]:
                        img[rows[i], cols[j]] = colour
                    elif entry["pairs"][i, j]:
                        img[rows[i], cols[j]] = 0.75 + 0.25 * colour  # wasted: computed, then masked
    ax_mat.imshow(img, interpolation="nearest")
    ax_mat.set_xlabel("key position")
    ax_mat.set_ylabel("query position")
    ax_mat.set_title(f"{layout}, {'causal' if causal else 'no mask'}: scores computed", fontsize=9)
    ax_mat.set_xticks([])
    ax_mat.set_yticks([])
    # the work so far: tiles computed per rank
    tiles = np.array([[schedule[t][r]["tiles"] for r in range(P)] for t in range(last + 1)]).sum(0)
    pairs = np.array([[schedule[t][r]["pairs"].sum() for r in range(P)] for t in range(last + 1)]).sum(0)
    ax_work.bar(range(P), pairs, color=[RANK_COLOURS[r % len(RANK_COLOURS)] for r in range(P)])
    for r in range(P):
        ax_work.text(r, pairs[r], f"{tiles[r]} tile{'s' if tiles[r] != 1 else ''}", ha="center", va="bottom",
                     fontsize=7)
    total = max(1, max(sum(schedule[t][r]["pairs"].sum() for t in range(P)) for r in range(P)))
    ax_work.set_ylim(0, total * 1.18)
    ax_work.set_xticks(range(P))
    ax_work.set_xlabel("rank")
    ax_work.set_ylabel("score entries computed so far")
    ax_work.set_title("work per rank", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.14, top=0.9, wspace=0.3)
    return fig
