"""attnkit.viz draws what it is given, labelled, and refuses what it cannot draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnkit.viz import heatmap, heatmaps


def test_heatmap_draws_the_matrix_with_labels() -> None:
    w = torch.softmax(torch.randn(3, 4), -1)
    ax = heatmap(w, list("abcd"), ["x", "y", "z"], title="t")
    img = ax.images[0].get_array()
    np.testing.assert_allclose(np.asarray(img), w.numpy(), rtol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    assert ax.get_title() == "t" and ax.get_xlabel() == "key" and ax.get_ylabel() == "query"
    assert len(ax.texts) == 12  # annotated: small matrix
    plt.close("all")


def test_heatmaps_grid_hides_unused_axes() -> None:
    fig = heatmaps([np.eye(3)] * 5, titles=[f"head {i}" for i in range(5)], ncols=3, suptitle="heads")
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(visible) == 5 and visible[4].get_title() == "head 4"
    plt.close("all")


def test_heatmap_errors() -> None:
    with pytest.raises(ValueError, match=r"weights must be a 2-D \(queries, keys\) matrix; got shape \(2, 3, 4\)"):
        heatmap(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="x_labels has 2 labels but weights has 4 columns"):
        heatmap(np.zeros((3, 4)), x_labels=["a", "b"])
    with pytest.raises(ValueError, match="weights is empty"):
        heatmaps([])
