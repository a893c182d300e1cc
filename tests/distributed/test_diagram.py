"""The drawn ring follows the ring's own tile plan: every kept pair once, the balance the tests measure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from attnkit.distributed.diagram import draw_ring_step, ring_schedule
from attnkit.distributed.layouts import LAYOUTS, shard_positions


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("P", (1, 2, 3, 4))
def test_the_schedule_keeps_every_causal_pair_exactly_once(layout, P) -> None:
    schedule = ring_schedule(P, layout, causal=True)
    n_local = schedule[0][0]["pairs"].shape[0]
    n = n_local * P
    seen = np.zeros((n, n), dtype=int)
    for step in schedule:
        for rank, entry in enumerate(step):
            rows, cols = shard_positions(n, P, rank, layout).numpy(), shard_positions(n, P, entry["source"],
                                                                                       layout).numpy()
            seen[np.ix_(rows, cols)] += entry["kept"]
    assert np.array_equal(seen, np.tril(np.ones((n, n), dtype=int)))
    assert [s["source"] for s in schedule[-1]] == [(r - (P - 1)) % P for r in range(P)]


def test_zigzag_tiles_are_balanced_contiguous_are_not() -> None:
    P = 4
    tiles = {lay: [sum(step[r]["tiles"] for step in ring_schedule(P, lay)) for r in range(P)]
             for lay in ("contiguous", "zigzag")}
    assert tiles["zigzag"] == [2 * P + 1] * P
    assert tiles["contiguous"] == [r + 1 for r in range(P)]


@pytest.mark.parametrize("step", (0, 2, 5))
def test_draw_ring_step_returns_a_figure(step) -> None:
    fig = draw_ring_step(4, step, "zigzag")
    assert len(fig.axes) == 3
    plt.close(fig)
