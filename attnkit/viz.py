"""One plotting style for the whole book: alignment matrices, head grids, weight maps.

Every chapter draws attention weights with :func:`heatmap` so that the colour scale, the
axis convention (queries down the rows, keys along the columns) and the labels agree.
Every chapter's interactive is a :func:`frame_slider`: precomputed frames switched in the
browser, so it works in the static book without a kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

CMAP = "viridis"
"""Colour map for attention weights throughout the book."""


def _to_numpy(weights: torch.Tensor | np.ndarray, name: str = "weights") -> np.ndarray:
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(weights, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (queries, keys) matrix; got shape {arr.shape}")
    return arr


def heatmap(weights: torch.Tensor | np.ndarray, x_labels: Sequence[str] | None = None,
            y_labels: Sequence[str] | None = None, *, ax: plt.Axes | None = None, title: str | None = None,
            xlabel: str = "key", ylabel: str = "query", annotate: bool | None = None,
            vmin: float | None = 0.0, vmax: float | None = None, colorbar: bool = True,
            cmap: str = CMAP) -> plt.Axes:
    """Draw an alignment matrix ``weights: (Lq, Lk)``: rows are queries, columns keys.

    Args:
        x_labels, y_labels: tick labels for keys and queries (lengths ``Lk`` and ``Lq``).
        annotate: write each weight in its cell (default: when the matrix is at most 12x12).
        vmin, vmax: colour limits (default ``0`` to the larger of 1 and the max weight for
            softmax weights; pass ``None`` for the data's range, e.g. for raw scores).

    Returns:
        The matplotlib ``Axes``.
    """
    w = _to_numpy(weights)
    Lq, Lk = w.shape
    for name, labels, n in (("x_labels", x_labels, Lk), ("y_labels", y_labels, Lq)):
        if labels is not None and len(labels) != n:
            axis = "columns" if name[0] == "x" else "rows"
            raise ValueError(f"{name} has {len(labels)} labels but weights has {n} {axis} (shape {w.shape})")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 0.5 * max(Lk, 4), 1.0 + 0.45 * max(Lq, 4)))
    if vmax is None and vmin == 0.0:
        vmax = max(1.0, float(np.nanmax(w))) if w.size and np.nanmin(w) >= 0 else None
    im = ax.imshow(w, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    if x_labels is not None:
        ax.set_xticks(range(Lk), labels=list(x_labels), rotation=45 if max(map(len, x_labels), default=0) > 3 else 0)
    if y_labels is not None:
        ax.set_yticks(range(Lq), labels=list(y_labels))
    if annotate if annotate is not None else (Lq <= 12 and Lk <= 12):
        lo, hi = im.get_clim()
        for i in range(Lq):
            for j in range(Lk):
                bright = (w[i, j] - lo) / (hi - lo + 1e-12) > 0.6
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if bright else "white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="weight")
    return ax


def heatmaps(weights: Sequence[torch.Tensor | np.ndarray], titles: Sequence[str] | None = None, *,
             ncols: int = 4, suptitle: str | None = None, **kwargs: object) -> plt.Figure:
    """A grid of :func:`heatmap` panels, e.g. one per layer and head. Returns the figure."""
    n = len(weights)
    if n == 0:
        raise ValueError("weights is empty: nothing to draw")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        heatmap(weights[i], ax=ax, title=titles[i] if titles else None, colorbar=False, **kwargs)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# ---- interactives that work without a kernel -------------------------------------------------

def _figure_png(fig: plt.Figure, dpi: int) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _label(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def frame_slider(draw: Callable[..., plt.Figure | None], params: Mapping[str, Sequence[object]], *,
                 initial: Mapping[str, object] | None = None, labels: Mapping[str, Sequence[str]] | None = None,
                 dropdown: Sequence[str] = (), dpi: int = 72, description_width: str = "initial"):
    """An interactive figure that works in the static book (no kernel) and in a notebook.

    ``draw(**kwargs)`` draws one figure for one value of each parameter and returns it (or
    draws into ``plt.gcf()``). Every combination of ``params`` (name -> the values to offer) is
    rendered once, now, to a PNG; the controls switch between the frames in the browser
    (``widgets.jslink`` from each control's ``index`` to a ``widgets.Stack``), so moving a
    slider works offline in the built HTML as well as in a running notebook.

    Equivalent, with a kernel, to ``ipywidgets.interact(draw, name=values, ...)`` restricted to
    the listed values. Frames grow as the product of the value counts: keep it small (each
    frame is a PNG of roughly 20-60 KB embedded in the page).

    Args:
        draw: ``draw(**{name: value})`` -> a matplotlib figure (closed after rendering).
        params: parameter name -> the sequence of values, in slider order (at least one each).
        initial: parameter name -> the value shown first (default: the first value).
        labels: parameter name -> the readout text per value (default: the value, floats
            with 3 significant digits). The readout shows the parameter, not a frame index.
        dropdown: names of parameters shown as a drop-down menu instead of a slider.
        dpi: resolution of the rendered frames.

    Returns:
        An ``ipywidgets.VBox`` of the controls above the frames; display it (last line of a cell).
    """
    import ipywidgets as widgets

    if not callable(draw):
        raise TypeError(f"draw must be a callable returning a figure; got {type(draw).__name__}")
    if not isinstance(params, Mapping) or not params:
        raise ValueError(f"params must be a non-empty mapping name -> values; got {params!r}")
    names = list(params)
    values = {n: list(params[n]) for n in names}
    for n, vals in values.items():
        if not vals:
            raise ValueError(f"params[{n!r}] is empty: give at least one value")
    initial = dict(initial or {})
    labels = dict(labels or {})
    for n in list(initial) + list(labels) + list(dropdown):
        if n not in values:
            raise ValueError(f"{n!r} is not one of the parameters {names}")
    start = {}
    for n in names:
        if n in initial:
            try:
                start[n] = values[n].index(initial[n])
            except ValueError:
                raise ValueError(f"initial[{n!r}] = {initial[n]!r} is not one of params[{n!r}]") from None
        else:
            start[n] = 0
    texts = {}
    for n in names:
        texts[n] = [str(t) for t in labels[n]] if n in labels else [_label(v) for v in values[n]]
        if len(texts[n]) != len(values[n]):
            raise ValueError(f"labels[{n!r}] has {len(texts[n])} entries for {len(values[n])} values")

    def render(**kwargs: object) -> widgets.Image:
        fig = draw(**kwargs)
        fig = fig if fig is not None else plt.gcf()
        return widgets.Image(value=_figure_png(fig, dpi), format="png")

    controls = {}
    for n in names:
        options = list(zip(texts[n], range(len(values[n]))))
        if n in dropdown:
            controls[n] = widgets.Dropdown(options=options, index=start[n], description=n,
                                           style={"description_width": description_width})
        else:
            controls[n] = widgets.SelectionSlider(options=options, index=start[n], description=n,
                                                  continuous_update=True, readout=True,
                                                  style={"description_width": description_width},
                                                  layout=widgets.Layout(width="min(32rem, 100%)"))
    links = []

    def build(level: int, chosen: dict[str, object]) -> widgets.Widget:
        # one nested Stack per parameter: the outer one switches on the first parameter, ...
        if level == len(names):
            return render(**chosen)
        n = names[level]
        children = [build(level + 1, {**chosen, n: v}) for v in values[n]]
        stack = widgets.Stack(children, selected_index=start[n])
        links.append(widgets.jslink((controls[n], "index"), (stack, "selected_index")))
        return stack

    frames = build(0, {})
    box = widgets.VBox([*controls.values(), frames])
    box._attnkit_links = links  # keep the links alive with the box
    return box


FLOW_COLORS = {"data": "#dbe9f6", "op": "#f0f0f0", "weights": "#fde2c8", "out": "#d9f0d3"}
"""Fill colours of :func:`flow_diagram` boxes by kind: inputs, operations, weights, outputs."""


def flow_diagram(boxes: Mapping[str, tuple[float, float, str] | tuple[float, float, str, str]],
                 arrows: Sequence[tuple[str, str] | tuple[str, str, str]], *, ax: plt.Axes | None = None,
                 title: str | None = None, figsize: tuple[float, float] = (9.0, 3.0),
                 fontsize: float = 9.0) -> plt.Axes:
    """Draw a mechanism's data flow: labelled boxes joined by arrows, drawn by code.

    Args:
        boxes: name -> ``(x, y, text)`` or ``(x, y, text, kind)`` with ``kind`` one of
            :data:`FLOW_COLORS` (``"data"``, ``"op"``, ``"weights"``, ``"out"``; default ``"op"``).
            ``x, y`` are the box centre in any units (the axes fit them); ``text`` may hold
            newlines and mathtext (``$q^\\top k$``).
        arrows: ``(source, target)`` or ``(source, target, label)``; an arrow runs from box edge
            to box edge, its label at its middle.
        ax: where to draw (default: a new figure of ``figsize``).
        title: the axes title.

    Returns:
        The axes, with the axis frame hidden.
    """
    if not boxes:
        raise ValueError("flow_diagram needs at least one box")
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    artists = {}
    for name, spec in boxes.items():
        if len(spec) not in (3, 4):
            raise ValueError(f"box {name!r} must be (x, y, text) or (x, y, text, kind); got {spec!r}")
        x, y, text, *rest = spec
        kind = rest[0] if rest else "op"
        if kind not in FLOW_COLORS:
            raise ValueError(f"box {name!r}: kind must be one of {sorted(FLOW_COLORS)}; got {kind!r}")
        artists[name] = ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=3,
                                bbox={"boxstyle": "round,pad=0.4", "fc": FLOW_COLORS[kind], "ec": "0.3"})
    for arrow in arrows:
        if len(arrow) not in (2, 3):
            raise ValueError(f"an arrow is (source, target) or (source, target, label); got {arrow!r}")
        src, dst, *label = arrow
        for end in (src, dst):
            if end not in artists:
                raise ValueError(f"arrow {arrow!r} names an unknown box {end!r}; boxes: {sorted(artists)}")
        a, b = artists[src], artists[dst]
        # drawn after the boxes (higher zorder), so each render clips the arrow to the boxes as just laid out
        ax.annotate("", xy=b.get_position(), xytext=a.get_position(), zorder=4,
                    arrowprops={"arrowstyle": "-|>", "color": "0.25", "lw": 1.2, "shrinkA": 1, "shrinkB": 1,
                                "mutation_scale": 14, "patchA": a.get_bbox_patch(), "patchB": b.get_bbox_patch()})
        if label:
            (x0, y0), (x1, y1) = a.get_position(), b.get_position()
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, label[0], ha="center", va="bottom", fontsize=fontsize - 1,
                    color="0.2", zorder=5)
    xs = [s[0] for s in boxes.values()]
    ys = [s[1] for s in boxes.values()]
    pad_x = 0.12 * (max(xs) - min(xs)) + 0.6
    pad_y = 0.25 * (max(ys) - min(ys)) + 0.5
    ax.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
    ax.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax
