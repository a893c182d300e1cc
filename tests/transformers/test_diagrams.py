"""The architecture diagrams draw without error and reject bad arguments."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from attnkit.transformers.diagrams import block_diagram, multihead_diagram, vit_diagram


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_block_diagram(norm: str) -> None:
    ax = block_diagram(norm)
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "LayerNorm" in texts and "multi-head" in texts and "feed-forward" in texts
    assert norm + "-norm" in ax.get_title().lower()
    plt.close(ax.figure)


def test_multihead_and_vit_diagrams() -> None:
    ax = multihead_diagram(3)
    texts = [t.get_text() for t in ax.texts]
    assert sum("attend" in t for t in texts) == 3
    plt.close(ax.figure)
    ax = vit_diagram(torch.rand(16, 16), 4)
    assert "CLS" in [t.get_text() for t in ax.texts]
    assert [t.get_text() for t in ax.texts].count("16") >= 1
    plt.close(ax.figure)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="norm"):
        block_diagram("middle")
    with pytest.raises(ValueError, match="heads"):
        multihead_diagram(0)
    with pytest.raises(ValueError, match="divide"):
        vit_diagram(torch.rand(10, 10), 4)
    with pytest.raises(ValueError, match="2-D"):
        vit_diagram(torch.rand(1, 16, 16), 4)
