"""The Part V diagrams draw (one axes each, every box labelled)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from attnkit.llm.diagrams import decode_step_diagram, gqa_mla_diagram, streaming_diagram


@pytest.mark.parametrize("draw", [decode_step_diagram, gqa_mla_diagram, streaming_diagram])
def test_diagrams_draw(draw) -> None:
    ax = draw()
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) >= 5 and ax.get_title()
    plt.close("all")
