"""Architecture diagrams for the Part III chapters, drawn with matplotlib boxes and arrows.

- ``block_diagram(norm)``: an encoder block, post-norm (Vaswani et al., 2017) or pre-norm, with
  its residual stream;
- ``multihead_diagram(heads)``: multi-head attention, one projection triple per head, one
  ``attend`` per head, the concatenation and ``W_O``;
- ``vit_diagram(image, patch)``: an image cut into patches, the token sequence with ``[CLS]``
  and positions, the encoder and the class read-out.

Each function draws into ``ax`` (a new figure if ``None``) and returns the ``Axes``. Nothing is
computed: the diagrams show the data flow of the code in :mod:`attnkit.transformers.blocks`,
``attnkit.mha`` and :mod:`attnkit.transformers.vit`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

COLOURS = {"attention": "#f6c28b", "ffn": "#9fd3f0", "norm": "#f3e79b", "add": "white", "io": "#e6e6e6",
           "linear": "#c9e4b4", "token": "#d9c6ef"}
"""Fill colours of the boxes, by kind."""


def _box(ax: plt.Axes, x: float, y: float, text: str, kind: str, w: float = 2.4, h: float = 0.55,
         fontsize: int = 9) -> tuple[float, float, float, float]:
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                fc=COLOURS[kind], ec="black", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return x, y, w, h


def _add(ax: plt.Axes, x: float, y: float, r: float = 0.17) -> None:
    ax.add_patch(plt.Circle((x, y), r, fc="white", ec="black", lw=1))
    ax.text(x, y, "+", ha="center", va="center", fontsize=11)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], *, style: str = "-|>",
           connection: str = "arc3", colour: str = "black", lw: float = 1.2) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=11, color=colour, lw=lw,
                                 connectionstyle=connection, shrinkA=0, shrinkB=0))


def _canvas(ax: plt.Axes | None, size: tuple[float, float], xlim: tuple[float, float],
            ylim: tuple[float, float]) -> plt.Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def block_diagram(norm: str = "post", *, ax: plt.Axes | None = None) -> plt.Axes:
    """An encoder block as boxes and arrows: ``norm="post"`` (the paper's) or ``"pre"``.

    Post-norm: ``x <- LN(x + MHA(x))``, ``x <- LN(x + FF(x))``: the layer norm sits on the
    residual stream itself. Pre-norm: ``x <- x + MHA(LN(x))``, ``x <- x + FF(LN(x))``: the
    stream (the thick line) runs from input to output untouched except for the additions.
    """
    if norm not in ("pre", "post"):
        raise ValueError(f"norm must be 'pre' or 'post'; got {norm!r}")
    ax = _canvas(ax, (3.8, 6.0), (-2.6, 2.6), (-0.8, 8.4))
    stream, branch, thick = -1.3, 0.7, 3.0
    if norm == "post":
        rows = [("x (B, L, E)", "io", 0.0), ("multi-head\nself-attention", "attention", 1.5), ("+", "add", 2.6),
                ("LayerNorm", "norm", 3.4), ("feed-forward\nW2 relu(W1 x)", "ffn", 4.8), ("+", "add", 5.9),
                ("LayerNorm", "norm", 6.7), ("output", "io", 7.9)]
        _box(ax, 0.0, 0.0, rows[0][0], "io")
        _arrow(ax, (0.0, 0.28), (0.0, 1.2))
        _box(ax, 0.0, 1.5, rows[1][0], "attention", h=0.75)
        _arrow(ax, (0.0, 1.88), (0.0, 2.43))
        _add(ax, 0.0, 2.6)
        _arrow(ax, (0.0, 0.45), (stream, 0.45), style="-", lw=thick)  # residual around the attention
        _arrow(ax, (stream, 0.45), (stream, 2.6), style="-", lw=thick)
        _arrow(ax, (stream, 2.6), (-0.17, 2.6), lw=thick)
        _arrow(ax, (0.0, 2.77), (0.0, 3.12))
        _box(ax, 0.0, 3.4, "LayerNorm", "norm")
        _arrow(ax, (0.0, 3.68), (0.0, 4.42))
        _box(ax, 0.0, 4.8, rows[4][0], "ffn", h=0.75)
        _arrow(ax, (0.0, 5.18), (0.0, 5.73))
        _add(ax, 0.0, 5.9)
        _arrow(ax, (0.0, 3.95), (stream, 3.95), style="-", lw=thick)  # residual around the feed-forward
        _arrow(ax, (stream, 3.95), (stream, 5.9), style="-", lw=thick)
        _arrow(ax, (stream, 5.9), (-0.17, 5.9), lw=thick)
        _arrow(ax, (0.0, 6.07), (0.0, 6.42))
        _box(ax, 0.0, 6.7, "LayerNorm", "norm")
        _arrow(ax, (0.0, 6.98), (0.0, 7.62))
        _box(ax, 0.0, 7.9, "output", "io")
        ax.set_title("Post-norm (Vaswani et al. 2017)\nLN(x + f(x)): the norm sits on the stream", fontsize=9)
    else:
        _box(ax, stream, 0.0, "x (B, L, E)", "io", w=2.0)
        _arrow(ax, (stream, 0.28), (stream, 7.62), lw=thick)  # the residual stream, untouched
        branches = ((0.9, "multi-head\nself-attention", "attention"), (4.3, "feed-forward\nW2 relu(W1 x)", "ffn"))
        for y0, label, kind in branches:
            _arrow(ax, (stream, y0), (branch, y0), connection="arc3")
            _arrow(ax, (branch, y0), (branch, y0 + 0.32))
            _box(ax, branch, y0 + 0.6, "LayerNorm", "norm", w=2.2)
            _arrow(ax, (branch, y0 + 0.88), (branch, y0 + 1.3))
            _box(ax, branch, y0 + 1.7, label, kind, w=2.2, h=0.75)
            _arrow(ax, (branch, y0 + 2.08), (branch, y0 + 2.6), style="-")
            _add(ax, stream, y0 + 2.6)
            _arrow(ax, (branch, y0 + 2.6), (stream + 0.17, y0 + 2.6))
        _box(ax, stream, 7.9, "output (+ final LN)", "io", w=2.4)
        ax.set_title("Pre-norm (analysed by Xiong et al. 2020)\nx + f(LN(x)): the stream is never normalised",
                     fontsize=9)
    ax.text(2.5, -0.7, "thick line: the residual stream", fontsize=7, color="0.3", ha="right")
    return ax


def multihead_diagram(heads: int = 3, *, ax: plt.Axes | None = None) -> plt.Axes:
    """Multi-head attention: ``H`` heads, each ``attend(x W_Q^i, x W_K^i, x W_V^i)``, concatenated, then ``W_O``."""
    if isinstance(heads, bool) or not isinstance(heads, int) or not 1 <= heads <= 6:
        raise ValueError(f"heads must be an int in 1 .. 6 (the drawing's width); got {heads!r}")
    width = 3.3 * heads
    ax = _canvas(ax, (1.9 * heads + 1.5, 5.2), (-1.2, width + 0.2), (-0.5, 7.4))
    centre = (width - 1.0) / 2
    _box(ax, centre, 0.0, "x (B, L, E)", "io", w=2.4)
    for h in range(heads):
        cx = 3.3 * h + 0.6
        for j, role in enumerate(("Q", "K", "V")):
            px = cx - 0.9 + 0.9 * j
            _arrow(ax, (centre, 0.28), (px, 1.45), colour="0.45", lw=0.8)
            _box(ax, px, 1.75, f"$W_{role}^{{{h + 1}}}$", "linear", w=0.8, h=0.55, fontsize=9)
            _arrow(ax, (px, 2.03), (cx, 2.95), lw=0.9)
        _box(ax, cx, 3.35, f"head {h + 1}\nattend(q, k, v)\n(B, L, E/H)", "attention", w=2.6, h=0.85, fontsize=8)
        _arrow(ax, (cx, 3.78), (centre, 4.62), lw=0.9)
    _box(ax, centre, 4.9, "concatenate heads  (B, L, E)", "token", w=4.0)
    _arrow(ax, (centre, 5.18), (centre, 5.62))
    _box(ax, centre, 5.9, "$W_O$ (mixes the heads)", "linear", w=3.2)
    _arrow(ax, (centre, 6.18), (centre, 6.62))
    _box(ax, centre, 6.9, "output (B, L, E)", "io", w=2.4)
    ax.set_title(f"Multi-head attention, H = {heads}: one reshape gives every head its slice of E", fontsize=9)
    return ax


def vit_diagram(image: torch.Tensor, patch: int, *, ax: plt.Axes | None = None) -> plt.Axes:
    """ViT's data flow for one ``image (H, W)``: the patch grid, the tokens, the encoder, the read-out.

    Patches are numbered in row-major order (as ``patchify`` flattens them); token 0 is ``[CLS]``.
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 2:
        raise ValueError(f"image must be a 2-D (H, W) tensor; got {image!r:.60}")
    H, W = image.shape
    if H % patch or W % patch:
        raise ValueError(f"patch={patch} must divide H={H} and W={W}")
    rows, cols = H // patch, W // patch
    n = rows * cols
    ax = _canvas(ax, (12, 3.6), (-0.5, 30.5), (-1.2, 9.0))
    # the image, with its patch grid and numbers (extent: 7 x 7 units)
    side = 7.0
    ax.imshow(image.detach().cpu().numpy(), cmap="gray", extent=(0, side * W / max(H, W), 0, side * H / max(H, W)),
              origin="upper")
    ph, pw = side * patch / max(H, W), side * patch / max(H, W)
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((c * pw, side - (r + 1) * ph), pw, ph, fill=False, ec="tab:red", lw=1))
            ax.text(c * pw + 0.12, side - r * ph - 0.12, str(r * cols + c + 1), color="tab:red", fontsize=7,
                    ha="left", va="top", bbox={"fc": "white", "ec": "none", "pad": 0.6, "alpha": 0.85})
    ax.text(side / 2, -0.6, f"{H} x {W} image, {patch} x {patch} patches", ha="center", fontsize=8)
    _arrow(ax, (side + 0.3, side / 2), (side + 1.6, side / 2))
    # the tokens: [CLS] then the patches, each "linear(flatten(patch)) + position"
    x0, step = side + 2.0, min(1.1, 20.0 / (n + 1))
    for t in range(n + 1):
        tx = x0 + t * step
        fill = COLOURS["norm" if t == 0 else "token"]
        ax.add_patch(Rectangle((tx, 2.6), step * 0.85, 1.6, fc=fill, ec="black", lw=0.8))
        ax.text(tx + step * 0.42, 3.4, "CLS" if t == 0 else str(t), ha="center", va="center", fontsize=6,
                rotation=90 if t == 0 else 0)
    xend = x0 + (n + 1) * step
    ax.text((x0 + xend) / 2, 2.1, f"tokens (B, 1 + {n}, E): [CLS], then $W_E$ flatten(patch) + position embedding",
            ha="center", va="top", fontsize=8)
    _box(ax, (x0 + xend) / 2, 6.2, "Transformer encoder (pre-norm blocks)", "attention", w=xend - x0, h=0.9)
    _arrow(ax, ((x0 + xend) / 2, 4.8), ((x0 + xend) / 2, 5.72))
    _arrow(ax, (x0 + step * 0.42, 6.68), (x0 + step * 0.42, 7.72))
    _box(ax, x0 + 4.4, 8.1, "LayerNorm + linear on [CLS] -> class", "linear", w=8.8, h=0.7, fontsize=8)
    return ax


__all__ = ["COLOURS", "block_diagram", "multihead_diagram", "vit_diagram"]
