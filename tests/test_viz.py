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


# ---- frame_slider: interactives without a kernel -----------------------------------------------

def _line(a: float, b: int = 1) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [b, a * b])
    return fig


def _frames(widget) -> list:
    import ipywidgets as widgets

    if isinstance(widget, widgets.Image):
        return [widget]
    return [img for child in widget.children for img in _frames(child)]


def test_frame_slider_renders_every_combination_and_links_each_control() -> None:
    import ipywidgets as widgets

    from attnkit.viz import frame_slider

    box = frame_slider(_line, {"a": [0.5, 1.0, 2.0], "b": [1, 2]}, initial={"a": 1.0}, dropdown=["b"])
    a, b, stack = box.children
    assert isinstance(a, widgets.SelectionSlider) and isinstance(b, widgets.Dropdown)
    assert a.index == 1 and [o[0] for o in a.options] == ["0.5", "1", "2"]  # readout = the value
    frames = _frames(stack)
    assert len(frames) == 6 and all(f.value[:8] == b"\x89PNG\r\n\x1a\n" for f in frames)
    assert len({f.value for f in frames}) == 6  # each combination is its own picture
    # one link from a to the outer stack, one from b to each of the 3 inner stacks
    links = box._attnkit_links
    assert len(links) == 4
    assert sum(link.source[0] is a for link in links) == 1 and sum(link.source[0] is b for link in links) == 3
    assert stack.selected_index == 1 and stack.children[1].selected_index == 0
    assert not plt.get_fignums()  # every frame's figure is closed


def test_frame_slider_rejects_bad_input() -> None:
    from attnkit.viz import frame_slider

    with pytest.raises(TypeError, match="draw"):
        frame_slider(None, {"a": [1]})
    with pytest.raises(ValueError, match="params"):
        frame_slider(_line, {})
    with pytest.raises(ValueError, match=r"params\['a'\] is empty"):
        frame_slider(_line, {"a": []})
    with pytest.raises(ValueError, match="initial"):
        frame_slider(_line, {"a": [1.0]}, initial={"a": 3.0})
    with pytest.raises(ValueError, match="not one of the parameters"):
        frame_slider(_line, {"a": [1.0]}, labels={"c": ["x"]})
    with pytest.raises(ValueError, match="labels"):
        frame_slider(_line, {"a": [1.0, 2.0]}, labels={"a": ["x"]})


def test_flow_diagram_draws_a_box_per_node_and_an_arrow_per_edge() -> None:
    from attnkit.viz import FLOW_COLORS, flow_diagram

    boxes = {"q": (0, 1, "query $q$", "data"), "k": (0, 0, "keys", "data"), "s": (1, 0.5, "score"),
             "a": (2, 0.5, "weights", "weights"), "o": (3, 0.5, "output", "out")}
    ax = flow_diagram(boxes, [("q", "s"), ("k", "s", "q.k"), ("s", "a"), ("a", "o")], title="flow")
    texts = {t.get_text() for t in ax.texts}
    assert {"query $q$", "keys", "score", "weights", "output", "q.k"} <= texts
    fills = {matplotlib.colors.to_hex(t.get_bbox_patch().get_facecolor()) for t in ax.texts if t.get_bbox_patch()}
    assert fills == {matplotlib.colors.to_hex(FLOW_COLORS[k]) for k in ("data", "op", "weights", "out")}
    arrows = [c for c in ax.get_children() if isinstance(c, matplotlib.text.Annotation)]
    assert len(arrows) == 4 and ax.get_title() == "flow"
    plt.close("all")


def test_flow_diagram_rejects_bad_input() -> None:
    from attnkit.viz import flow_diagram

    with pytest.raises(ValueError, match="at least one box"):
        flow_diagram({}, [])
    with pytest.raises(ValueError, match="unknown box 'z'"):
        flow_diagram({"a": (0, 0, "a")}, [("a", "z")])
    with pytest.raises(ValueError, match="kind must be one of"):
        flow_diagram({"a": (0, 0, "a", "purple")}, [])
    with pytest.raises(ValueError, match=r"\(x, y, text\)"):
        flow_diagram({"a": (0, 0)}, [])
    plt.close("all")
