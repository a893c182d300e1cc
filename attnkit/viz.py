"""One plotting style for the whole book: alignment matrices, head grids, weight maps.

Every chapter draws attention weights with :func:`heatmap` so that the colour scale, the
axis convention (queries down the rows, keys along the columns) and the labels agree.
"""

from __future__ import annotations

from collections.abc import Sequence

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
