"""Reformer's reversible residual layers and chunked feed-forward, against plain autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnkit import attend
from attnkit.efficient.reversible import (
    FeedForward,
    ReversibleBlock,
    ReversibleStack,
    chunked_feed_forward,
    saved_tensor_bytes,
)


class SelfAttention(nn.Module):
    """A small single-head self-attention through ``attend`` (the F of a Reformer block)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (..., N, d) each
        return attend(q, k, v)[0]


def make_stack(n_layers: int, d: int = 8, d_ff: int = 32, *, seed: int = 0, dtype=torch.float64,
               chunk: int | None = None) -> tuple[ReversibleStack, ReversibleStack]:
    """A reversible stack and the plain stack with the very same parameters."""
    torch.manual_seed(seed)
    blocks = [ReversibleBlock(SelfAttention(d), FeedForward(d, d_ff)) for _ in range(n_layers)]
    rev = ReversibleStack(blocks, chunk=chunk).to(dtype)
    plain = ReversibleStack(blocks, reversible=False).to(dtype)
    return rev, plain


def inputs(n: int = 12, d: int = 8, seed: int = 1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, n, d, generator=g, dtype=dtype).requires_grad_(),
            torch.randn(2, n, d, generator=g, dtype=dtype).requires_grad_())


def test_block_inverse_recovers_the_inputs():
    rev, _ = make_stack(1)
    x1, x2 = inputs()
    block = rev.blocks[0]
    with torch.no_grad():
        y1, y2 = block(x1, x2)
        r1, r2 = block.inverse(y1, y2)
    torch.testing.assert_close(r1, x1.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(r2, x2.detach(), rtol=0, atol=1e-12)
    # the block is the two residual equations, written out by hand
    with torch.no_grad():
        f_out = block.f(x2)
        torch.testing.assert_close(y1, x1 + f_out)
        torch.testing.assert_close(y2, x2 + block.g(x1 + f_out))


@pytest.mark.parametrize("chunk", [None, 5])
@pytest.mark.parametrize("n_layers", [1, 4])
def test_gradients_equal_the_plain_stack(n_layers, chunk):
    rev, plain = make_stack(n_layers, chunk=chunk)
    x1, x2 = inputs()
    g = torch.Generator().manual_seed(2)
    w1, w2 = torch.randn(2, 12, 8, generator=g, dtype=torch.float64), torch.randn(2, 12, 8, generator=g,
                                                                               dtype=torch.float64)
    params = list(rev.parameters())
    outs = {}
    for name, stack in (("rev", rev), ("plain", plain)):
        y1, y2 = stack(x1, x2)
        loss = (w1 * y1).sum() + (w2 * y2.sin()).sum()
        outs[name] = (y1.detach(), y2.detach(), torch.autograd.grad(loss, [x1, x2, *params]))
    torch.testing.assert_close(outs["rev"][0], outs["plain"][0])
    torch.testing.assert_close(outs["rev"][1], outs["plain"][1])
    assert len(outs["rev"][2]) == 2 + len(params)
    for a, b in zip(outs["rev"][2], outs["plain"][2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


def test_backward_fills_parameter_grads_like_autograd():
    rev, plain = make_stack(3)
    x1, x2 = inputs()
    grads = []
    for stack in (rev, plain):
        stack.zero_grad()
        y1, y2 = stack(x1, x2)
        (y1.square().sum() + y2.sum()).backward()
        grads.append([p.grad.clone() for p in stack.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


def test_gradcheck_through_the_reversible_backward():
    rev, _ = make_stack(2, d=3, d_ff=4)
    x1, x2 = inputs(n=4, d=3)
    assert torch.autograd.gradcheck(lambda a, b: rev(a, b), (x1, x2))


def test_activation_memory_does_not_grow_with_depth():
    saved = {}
    for n_layers in (1, 2, 4):
        for kind, stack in zip(("rev", "plain"), make_stack(n_layers), strict=True):
            x1, x2 = inputs(n=16)
            with saved_tensor_bytes(exclude=[*stack.parameters(), x1, x2]) as s:
                y1, y2 = stack(x1, x2)
            saved[kind, n_layers] = s["bytes"]
            (y1.sum() + y2.sum()).backward()
    # reversible: only the output (two (2, 16, 8) float64 tensors), whatever the depth
    assert saved["rev", 1] == saved["rev", 2] == saved["rev", 4] == 2 * 2 * 16 * 8 * 8
    # plain: every layer saves its activations, so the bytes grow in proportion to depth
    per_layer = saved["plain", 2] - saved["plain", 1]
    assert saved["plain", 4] - saved["plain", 2] == pytest.approx(2 * per_layer, rel=0.01)
    assert per_layer > 2 * saved["rev", 1]


def test_chunked_feed_forward_equals_plain():
    torch.manual_seed(0)
    ff = FeedForward(6, 24).double()
    x = torch.randn(3, 17, 6, dtype=torch.float64, requires_grad=True)
    ref = ff(x)
    (rx,) = torch.autograd.grad((ref * ref).sum(), x, retain_graph=True)
    for chunk in (1, 4, 17, 100):
        out = chunked_feed_forward(ff, x, chunk)
        torch.testing.assert_close(out, ref)
        (gx,) = torch.autograd.grad((out * out).sum(), x)
        torch.testing.assert_close(gx, rx)
    chunked = FeedForward(6, 24, chunk=5).double()
    chunked.load_state_dict(ff.state_dict())
    torch.testing.assert_close(chunked(x), ref)
    # the layer written out: W2 relu(W1 x + b1) + b2
    manual = torch.relu(x @ ff.lin1.weight.T + ff.lin1.bias) @ ff.lin2.weight.T + ff.lin2.bias
    torch.testing.assert_close(ref, manual)


def test_no_grad_forward_and_float32():
    rev, plain = make_stack(2, dtype=torch.float32)
    x1, x2 = (t.detach().float() for t in inputs())
    with torch.no_grad():
        a = rev(x1, x2)
    b = plain(x1, x2)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


def test_bad_input():
    rev, _ = make_stack(1)
    x1, x2 = inputs()
    with pytest.raises(ValueError, match="same shape"):
        rev(x1, x2[:, :5])
    with pytest.raises(TypeError, match="ReversibleBlock"):
        ReversibleStack([nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="ReversibleBlock"):
        ReversibleStack([])
    with pytest.raises(ValueError, match="chunk"):
        chunked_feed_forward(torch.relu, x1, 0)
    with pytest.raises(ValueError, match="chunk"):
        ReversibleStack(list(rev.blocks), chunk=0)
    with pytest.raises(ValueError, match=r"\(\.\.\., N, d\)"):
        rev(x1[0, 0], x2[0, 0])
