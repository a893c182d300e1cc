"""The Triton kernels run by Triton's interpreter on CPU tensors (no GPU needed), against float64,
and the input errors of ``flash_attention``."""

from __future__ import annotations

import pytest
import torch

from attnkit.flash.api import flash_attention, flash_attention_forward

triton = pytest.importorskip("triton")
tk = pytest.importorskip("attnkit.flash.triton_kernel")


def _reference(q, k, v, do, causal, scale=None):
    """Output, log-sum-exp and gradients in float64 by plain autograd."""
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    n, d = q.shape[-2:]
    s = q64 @ k64.transpose(-1, -2) * (scale if scale is not None else d ** -0.5)   # (B, H, N, N)
    if causal:
        s = s.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
    out = s.softmax(-1) @ v64
    out.backward(do.double())
    return out.detach(), torch.logsumexp(s, -1).detach(), q64.grad, k64.grad, v64.grad


TOL = {torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 5e-2}


@pytest.mark.parametrize(("n", "d", "causal", "dtype"), [
    (16, 16, False, torch.float32),      # one exact tile
    (37, 16, False, torch.float32),      # ragged last tile
    (37, 16, True, torch.float32),
    (7, 32, True, torch.float32),        # shorter than one tile
    (48, 32, True, torch.float32),       # several whole tiles, causal skip
    (33, 32, False, torch.float16),
    (40, 16, True, torch.float16),
    (20, 16, True, torch.bfloat16),      # interpreted in float32 (NumPy has no bfloat16)
])
def test_interpreted_kernel_forward_and_backward(n, d, causal, dtype):
    torch.manual_seed(n + d)
    q, k, v, do = (torch.randn(1, 2, n, d, dtype=dtype) for _ in range(4))
    q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
    out = flash_attention(q, k, v, causal=causal, backend="interpret")
    out.backward(do)
    ref_out, ref_lse, *ref_grads = _reference(q, k, v, do, causal)
    tol = TOL[dtype]
    assert out.dtype == dtype and out.shape == q.shape
    torch.testing.assert_close(out.double(), ref_out, rtol=tol, atol=tol)
    for name, got, ref in zip("qkv", (q.grad, k.grad, v.grad), ref_grads):
        assert torch.isfinite(got).all(), name
        torch.testing.assert_close(got.double(), ref, rtol=tol, atol=2 * tol, msg=lambda m, name=name: f"d{name}: {m}")
    _, lse = flash_attention_forward(q, k, v, causal=causal, backend="interpret")
    torch.testing.assert_close(lse.double(), ref_lse, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_uneven_tiles_and_custom_scale(causal):
    """Tiles of different heights (32 x 16, 16 x 32) and a non-default softmax scale."""
    q, k, v, do = (torch.randn(1, 1, 45, 16) for _ in range(4))
    cfg = {"fwd": {"BLOCK_M": 32, "BLOCK_N": 16}, "dkdv": {"BLOCK_M": 16, "BLOCK_N": 32},
           "dq": {"BLOCK_M": 32, "BLOCK_N": 16}}
    o, lse = tk.attn_forward(q, k, v, causal, 0.2, interpret=True, config=cfg)
    grads = tk.attn_backward(q, k, v, o, lse, do, causal, 0.2, interpret=True, config=cfg)
    ref_out, ref_lse, *ref_grads = _reference(q, k, v, do, causal, scale=0.2)
    torch.testing.assert_close(o.double(), ref_out, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(lse.double(), ref_lse, rtol=1e-5, atol=1e-5)
    for got, ref in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=4e-5)


def test_interpreter_agrees_with_the_numpy_reference_and_restores_triton():
    from triton.runtime.jit import JITFunction

    q, k, v = (torch.randn(2, 1, 24, 16) for _ in range(3))
    a = flash_attention(q, k, v, causal=True, backend="interpret")
    b = flash_attention(q, k, v, causal=True, backend="reference")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the interpreter swapped triton.language's helpers only for the launch
    assert isinstance(triton.language.max, JITFunction) or not isinstance(tk._attn_fwd, JITFunction)


@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")
def test_kernels_compile_for_an_h100_without_one():
    """Triton's compiler and its bundled ptxas build the GPU code here: the largest configuration
    (d = 128, bfloat16, causal, ragged) must fit an H100's shared memory and use its tensor cores."""
    try:
        compiled = tk.compile_for_gpu(d=128, dtype=torch.bfloat16, causal=True, arch=90, even=False)
    except RuntimeError as err:
        if "Triton >= 3.3" in str(err) or "TRITON_INTERPRET" in str(err):
            pytest.skip(str(err))
        raise
    assert set(compiled) == {"fwd", "dkdv", "dq"}
    for name, info in compiled.items():
        assert 0 < info["shared_bytes"] <= 227 * 1024, name      # an H100 block may use up to 227 KB
        assert "wgmma.mma_async" in info["ptx"], name            # tl.dot -> Hopper tensor-core instructions
        assert "cp.async" in info["ptx"], name                   # loads pipelined asynchronously


# ---------------------------------------------------------------- errors: clear messages, never a crash in Triton

def _ok(shape=(1, 2, 8, 16), dtype=torch.float32):
    return [torch.randn(shape, dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize(("make", "exc", "match"), [
    (lambda: _ok((1, 2, 8, 24)), ValueError, "head dim"),
    (lambda: _ok((1, 2, 8, 256)), ValueError, "head dim"),
    (lambda: _ok(dtype=torch.float64), TypeError, "float16, bfloat16 or float32"),
    (lambda: [torch.ones(1, 2, 8, 16, dtype=torch.int32)] * 3, TypeError, "floating-point"),
    (lambda: _ok((2, 8, 16)), ValueError, r"\(batch, heads, N, d\)"),
    (lambda: _ok((1, 1, 2, 8, 16)), ValueError, r"\(batch, heads, N, d\)"),
    (lambda: [torch.randn(1, 2, 8, 16), torch.randn(1, 2, 9, 16), torch.randn(1, 2, 9, 16)], ValueError,
     "same shape"),
    (lambda: [torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16).half(), torch.randn(1, 2, 8, 16)], TypeError,
     "same dtype"),
    (lambda: [torch.randn(1, 2, 16, 8).transpose(-1, -2), torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16)],
     ValueError, "contiguous"),
    (lambda: _ok((1, 2, 0, 16)), ValueError, "at least one"),
    (lambda: ["q", "k", "v"], TypeError, "torch.Tensor"),
])
@pytest.mark.parametrize("backend", ["interpret", "reference"])
def test_bad_inputs_raise_clear_errors(make, exc, match, backend):
    with pytest.raises(exc, match=match):
        flash_attention(*make(), backend=backend)


def test_bad_options_raise_clear_errors():
    q, k, v = _ok()
    with pytest.raises(ValueError, match="backend must be one of"):
        flash_attention(q, k, v, backend="cuda")
    with pytest.raises(ValueError, match="interpret"):          # the compiled kernel needs a CUDA tensor
        flash_attention(q, k, v, backend="triton")
    with pytest.raises(TypeError, match="causal"):
        flash_attention(q, k, v, causal=1)
    with pytest.raises(ValueError, match="softmax_scale"):
        flash_attention(q, k, v, softmax_scale=-1.0)
    with pytest.raises(TypeError, match="softmax_scale"):
        flash_attention(q, k, v, softmax_scale="0.1")
