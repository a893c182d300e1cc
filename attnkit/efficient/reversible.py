r"""Reformer's memory savings beside LSH: reversible residual layers and chunked feed-forward
(Kitaev, Kaiser & Levskaya, 2020).

Training stores every layer's activations for the backward pass, so a stack of $n_l$ layers
needs $n_l$ times the memory of one. The **reversible residual layer** of RevNets (Gomez et
al., 2017), which the Reformer applies to the Transformer, splits the activations into two
halves and computes, with $F$ the attention and $G$ the feed-forward layer,

$$
y_1 = x_1 + F(x_2), \qquad y_2 = x_2 + G(y_1),
$$

which can be undone exactly from the outputs:

$$
x_2 = y_2 - G(y_1), \qquad x_1 = y_1 - F(x_2).
$$

So a stack need keep only its final output: the backward pass walks down the layers,
recomputes each layer's inputs from its outputs, and back-propagates through $F$ and $G$ on
the fly (:class:`ReversibleStack`). Activation memory no longer grows with depth; the price
is one more forward computation of $F$ and $G$ per layer.

The feed-forward layer acts on each position alone, so it can run on ``chunk`` positions at a
time (**chunked feed-forward**): its ``(N, d_ff)`` hidden layer, the largest activation of a
layer when ``d_ff`` is ``4 d`` or more, then exists only ``(chunk, d_ff)`` at a time, in the
forward pass and, inside a reversible block, in the recomputation of the backward pass too.

Shapes: ``...`` batch dims, ``N`` positions, ``d`` width of each half.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from attnkit._checks import check_int, check_same_dtype_device, check_tensor


def chunked_feed_forward(ff: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int) -> torch.Tensor:
    """A position-wise layer applied to ``chunk`` positions at a time: ``x: (..., N, d)`` -> ``(..., N, d_out)``.

    Equivalent to ``ff(x)`` for any ``ff`` that acts on every position alone (a feed-forward
    layer), and to::

        torch.cat([ff(x[..., i:i + chunk, :]) for i in range(0, N, chunk)], dim=-2)

    Only one chunk's hidden activations exist at a time.
    """
    check_tensor("x", x, min_rank=2, shape="(..., N, d)")
    check_int("chunk", chunk, minimum=1)
    if x.shape[-2] == 0:
        return ff(x)  # no positions: nothing to cut
    return torch.cat([ff(x[..., i:i + chunk, :]) for i in range(0, x.shape[-2], chunk)], dim=-2)


class FeedForward(nn.Module):
    """The Transformer's position-wise feed-forward layer ``W_2 relu(W_1 x + b_1) + b_2`` (``d -> d_ff -> d``).

    ``chunk``: apply it to that many positions at a time (:func:`chunked_feed_forward`).
    """

    def __init__(self, d: int, d_ff: int, *, chunk: int | None = None) -> None:
        super().__init__()
        check_int("d", d, minimum=1)
        check_int("d_ff", d_ff, minimum=1)
        if chunk is not None:
            check_int("chunk", chunk, minimum=1)
        self.chunk = chunk
        self.lin1, self.lin2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)

    def _ff(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(torch.relu(self.lin1(x)))  # (..., c, d_ff) hidden, (..., c, d) out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, min_rank=1, shape="(..., N, d)")
        w = self.lin1.weight
        if x.shape[-1] != w.shape[1] or x.dtype != w.dtype or x.device != w.device:
            raise ValueError(f"x must be (..., {w.shape[1]}) of the module's dtype and device ({w.dtype} on "
                             f"{w.device}); got shape {tuple(x.shape)}, {x.dtype} on {x.device}")
        if self.chunk is None:
            return self._ff(x)
        return chunked_feed_forward(self._ff, x, self.chunk)


def _check_halves(x1: torch.Tensor, x2: torch.Tensor, min_rank: int = 1) -> None:
    check_tensor("x1", x1, min_rank=min_rank, shape="(..., N, d)")
    check_tensor("x2", x2, min_rank=min_rank, shape="(..., N, d)")
    if x1.shape != x2.shape:
        raise ValueError(f"x1 and x2 must have the same shape; got {tuple(x1.shape)} and {tuple(x2.shape)}")
    check_same_dtype_device(x1=x1, x2=x2)


class ReversibleBlock(nn.Module):
    r"""One reversible residual layer: $y_1 = x_1 + F(x_2)$, $y_2 = x_2 + G(y_1)$.

    ``f`` and ``g`` are modules mapping ``(..., N, d)`` to ``(..., N, d)`` (in the Reformer,
    attention and feed-forward). They must be deterministic: the backward pass of
    :class:`ReversibleStack` calls them again and needs the same numbers (a layer with dropout
    would have to replay its random state, as the Reformer's code does).
    """

    def __init__(self, f: nn.Module, g: nn.Module) -> None:
        super().__init__()
        self.f, self.g = f, g

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_halves(x1, x2)
        y1 = x1 + self.f(x2)  # y1 = x1 + F(x2)
        y2 = x2 + self.g(y1)  # y2 = x2 + G(y1)
        return y1, y2

    def inverse(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs from the outputs: ``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)``."""
        x2 = y2 - self.g(y1)
        x1 = y1 - self.f(x2)
        return x1, x2


def _grad_through(module: nn.Module, x: torch.Tensor, grad_out: torch.Tensor,
                  chunk: int | None) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
    """Recompute ``out = module(x)`` and back-propagate ``grad_out``: ``(out, d x, d params)``.

    With ``chunk``, ``module`` must act position by position; it is recomputed and
    differentiated ``chunk`` positions at a time, so only one chunk's graph exists at once.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    n = x.shape[-2]
    step = n if chunk is None else chunk
    outs, dxs = [], []
    dps: list[torch.Tensor | None] = [None] * len(params)
    for i in range(0, n, step):
        with torch.enable_grad():
            xi = x[..., i:i + step, :].detach().requires_grad_(True)
            oi = module(xi)
        grads = torch.autograd.grad(oi, [xi, *params], grad_out[..., i:i + step, :], allow_unused=True)
        outs.append(oi.detach())
        dxs.append(grads[0] if grads[0] is not None else torch.zeros_like(xi))
        for t, gp in enumerate(grads[1:]):
            if gp is not None:
                dps[t] = gp if dps[t] is None else dps[t] + gp
    return torch.cat(outs, dim=-2), torch.cat(dxs, dim=-2), dps


class _ReversibleFunction(torch.autograd.Function):
    """Forward without storing activations; backward reconstructs them layer by layer."""

    @staticmethod
    def forward(ctx, x1, x2, blocks, chunk, *params):
        ctx.blocks, ctx.chunk = blocks, chunk
        with torch.no_grad():
            for block in blocks:
                x1, x2 = block(x1, x2)
        ctx.save_for_backward(x1, x2)  # the only activations kept: the stack's output
        return x1, x2

    @staticmethod
    def backward(ctx, dy1, dy2):
        y1, y2 = ctx.saved_tensors
        grads: dict[int, torch.Tensor] = {}
        for block in reversed(ctx.blocks):
            # G: recompute G(y1) (chunked if asked), x2 = y2 - G(y1); dy1 += (dG/dy1)^T dy2
            g_out, dy1_g, dg = _grad_through(block.g, y1, dy2, ctx.chunk)
            x2 = y2 - g_out
            dy1 = dy1 + dy1_g
            # F: recompute F(x2), x1 = y1 - F(x2); dx2 = dy2 + (dF/dx2)^T dy1, dx1 = dy1
            f_out, dx2_f, df = _grad_through(block.f, x2, dy1, None)
            x1 = y1 - f_out
            dy2 = dy2 + dx2_f
            for module, dps in ((block.g, dg), (block.f, df)):
                for p, gp in zip([p for p in module.parameters() if p.requires_grad], dps, strict=True):
                    if gp is not None:
                        grads[id(p)] = grads[id(p)] + gp if id(p) in grads else gp
            y1, y2 = x1, x2
        params = [p for block in ctx.blocks for p in block.parameters() if p.requires_grad]
        return (dy1, dy2, None, None, *(grads.get(id(p)) for p in params))


class ReversibleStack(nn.Module):
    """A stack of :class:`ReversibleBlock` layers: ``forward(x1, x2) -> (y1, y2)``, each ``(..., N, d)``.

    With ``reversible=True`` (the default) the forward pass keeps no activations but the
    output, and the backward pass recomputes each layer's inputs from its outputs
    (:meth:`ReversibleBlock.inverse`), layer by layer from the top; ``chunk`` makes the
    recomputation and differentiation of every ``g`` run ``chunk`` positions at a time (``g``
    must then act position by position, like :class:`FeedForward`). With ``reversible=False``
    it is the plain stack that ordinary autograd differentiates, storing every layer's
    activations: same numbers, same gradients (up to rounding), more memory.

    The reconstruction ``x = inverse(block(x))`` is exact in exact arithmetic; in floating
    point its rounding error grows with depth, so gradients agree to rounding, not bit for bit.
    """

    def __init__(self, blocks: Sequence[ReversibleBlock], *, reversible: bool = True,
                 chunk: int | None = None) -> None:
        super().__init__()
        if not blocks or not all(isinstance(b, ReversibleBlock) for b in blocks):
            raise TypeError("blocks must be a non-empty sequence of ReversibleBlock; got "
                            f"{[type(b).__name__ for b in blocks]!r}")
        if chunk is not None:
            check_int("chunk", chunk, minimum=1)
        self.blocks = nn.ModuleList(blocks)
        self.reversible, self.chunk = reversible, chunk

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_halves(x1, x2, min_rank=2)
        if not self.reversible or not torch.is_grad_enabled():
            for block in self.blocks:
                x1, x2 = block(x1, x2)
            return x1, x2
        params = [p for block in self.blocks for p in block.parameters() if p.requires_grad]
        return _ReversibleFunction.apply(x1, x2, tuple(self.blocks), self.chunk, *params)


@contextmanager
def saved_tensor_bytes(exclude: Sequence[torch.Tensor] = ()) -> Iterator[dict[str, int]]:
    """Count the bytes autograd saves for the backward pass inside the ``with`` block.

    Yields a dict whose ``"bytes"`` entry grows as tensors are saved (through
    ``torch.autograd.graph.saved_tensors_hooks``), each storage counted once; storages of
    ``exclude`` (e.g. the parameters and the inputs, which exist anyway) are not counted.
    This is the activation memory of training, measured rather than estimated::

        with saved_tensor_bytes(exclude=list(model.parameters())) as saved:
            loss = model(x).sum()
        saved["bytes"]
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: set[int] = set()
    out = {"bytes": 0, "tensors": 0}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip and ptr not in seen:
            seen.add(ptr)
            out["bytes"] += t.untyped_storage().nbytes()
            out["tensors"] += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield out
