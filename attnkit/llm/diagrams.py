"""Data-flow drawings of the Part V mechanisms, drawn by ``attnkit.viz.flow_diagram``."""

from __future__ import annotations

import matplotlib.pyplot as plt

from attnkit._checks import check_int
from attnkit.viz import flow_diagram


def decode_step_diagram(*, ax: plt.Axes | None = None) -> plt.Axes:
    """One decoding step of one layer with a KV cache: one new token, ``t`` cached pairs."""
    boxes = {
        "x": (0, 1, "new token $x_t$\n(1, E)", "data"),
        "q": (2.2, 2, "$q_t = x_t W_q$", "op"),
        "kv": (2.2, 0, "$k_t, v_t = x_t W_k, x_t W_v$", "op"),
        "cache": (4.8, 0, "KV cache\n$k_{1..t}, v_{1..t}$: (Hkv, t, Dh)", "weights"),
        "att": (6.4, 2, "attend($q_t$, $k_{1..t}$, $v_{1..t}$)\nno mask needed", "op"),
        "out": (8.8, 2, "$o_t$ -> $W_o$ -> MLP\n-> next layer", "out"),
    }
    arrows = [("x", "q"), ("x", "kv"), ("kv", "cache", "append"), ("cache", "att", "read all"),
              ("q", "att"), ("att", "out")]
    return flow_diagram(boxes, arrows, ax=ax, figsize=(10, 3.2),
                        title="Decoding with a KV cache: each step computes one key/value pair per layer")


def gqa_mla_diagram(*, ax: plt.Axes | None = None) -> plt.Axes:
    """What each scheme caches per token: MHA, GQA, MQA and MLA's latent."""
    boxes = {
        "x": (0, 1.5, "token $x$\n(E,)", "data"),
        "mha": (3, 3, "MHA: $H$ keys + $H$ values\n$2 H D_h$", "weights"),
        "gqa": (3, 2, "GQA: $H_{kv}$ keys + values\n$2 H_{kv} D_h$", "weights"),
        "mqa": (3, 1, "MQA: 1 key + 1 value\n$2 D_h$", "weights"),
        "mla": (3, 0, "MLA: latent $c = x W_{dkv}$\n$d_c$", "weights"),
        "up": (6.2, 0, "$k_h = c W_{uk}^h$, $v_h = c W_{uv}^h$\n(or absorbed into $q_h$)", "op"),
        "att": (8.8, 1.5, "attend per query head", "out"),
    }
    arrows = [("x", "mha"), ("x", "gqa"), ("x", "mqa"), ("x", "mla"), ("mha", "att"), ("gqa", "att"),
              ("mqa", "att"), ("mla", "up"), ("up", "att")]
    return flow_diagram(boxes, arrows, ax=ax, figsize=(10, 3.6),
                        title="What the cache holds per token and layer")


def streaming_diagram(window: int = 4, sinks: int = 2, *, ax: plt.Axes | None = None) -> plt.Axes:
    """StreamingLLM's cache: ``sinks`` first tokens, an evicted middle, the last ``window``."""
    check_int("window", window, minimum=1)
    check_int("sinks", sinks, minimum=0)
    boxes = {
        "sink": (0, 1, f"first {sinks} tokens\n(kept: sinks)", "weights"),
        "mid": (2.6, 1, "middle\n(evicted)", "data"),
        "win": (5.2, 1, f"last {window} tokens\n(rolling window)", "weights"),
        "q": (5.2, -0.4, "new query $q_t$", "data"),
        "att": (8, 0.3, "attend over sinks + window\npositions = slots in the cache", "out"),
    }
    arrows = [("sink", "att"), ("win", "att"), ("q", "att"), ("mid", "win", "oldest leave")]
    return flow_diagram(boxes, arrows, ax=ax, figsize=(10, 2.8),
                        title="A streaming cache: constant size, the first tokens kept")


__all__ = ["decode_step_diagram", "gqa_mla_diagram", "streaming_diagram"]
