"""The Triton kernels run by Triton's interpreter on CPU tensors (no GPU needed), against float64,
and the input errors of ``flash_attention``."""

from __future__ import annotations

import pytest
import torch

from attnkit.flash.api import MIN_TRITON_INTERPRETER, flash_attention, flash_attention_forward, interpreter_available

triton = pytest.importorskip("triton")
tk = pytest.importorskip("attnkit.flash.triton_kernel")
needs_interpreter = pytest.mark.skipif(not interpreter_available(),
                                       reason=f"needs Triton >= {MIN_TRITON_INTERPRETER} for backend='interpret'")


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


@needs_interpreter
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


TILES = {  # (BLOCK_M, BLOCK_N) per kernel: tall, wide and square tiles
    "tall": {"fwd": {"BLOCK_M": 32, "BLOCK_N": 16}, "dkdv": {"BLOCK_M": 16, "BLOCK_N": 32},
             "dq": {"BLOCK_M": 32, "BLOCK_N": 16}},
    "wide": {"fwd": {"BLOCK_M": 16, "BLOCK_N": 32}, "dkdv": {"BLOCK_M": 32, "BLOCK_N": 16},
             "dq": {"BLOCK_M": 16, "BLOCK_N": 32}},
    "square": {"fwd": {"BLOCK_M": 32, "BLOCK_N": 32}, "dkdv": {"BLOCK_M": 32, "BLOCK_N": 32},
               "dq": {"BLOCK_M": 32, "BLOCK_N": 32}},
}


@needs_interpreter
@pytest.mark.parametrize("tiles", TILES)
@pytest.mark.parametrize("n", [45, 64, 80])   # ragged, whole tiles, whole 16-tiles but ragged 32-tiles
@pytest.mark.parametrize("causal", [False, True])
def test_tile_shapes_and_custom_scale(causal, n, tiles):
    """Every split of the loops (unmasked tiles, diagonal tiles, ragged tail) for tiles of different
    heights, with a non-default softmax scale."""
    torch.manual_seed(n)
    q, k, v, do = (torch.randn(1, 1, n, 16) for _ in range(4))
    cfg = TILES[tiles]
    o, lse = tk.attn_forward(q, k, v, causal, 0.2, interpret=True, config=cfg)
    grads = tk.attn_backward(q, k, v, o, lse, do, causal, 0.2, interpret=True, config=cfg)
    ref_out, ref_lse, *ref_grads = _reference(q, k, v, do, causal, scale=0.2)
    torch.testing.assert_close(o.double(), ref_out, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(lse.double(), ref_lse, rtol=1e-5, atol=1e-5)
    for got, ref in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=4e-5)


@needs_interpreter
def test_interpreter_agrees_with_the_numpy_reference_and_restores_triton():
    """An interpreted launch leaves triton.language as it found it, so compiled launches still work after."""
    tl = triton.language
    spaces = (tl, tl.core, tl.math, tl.core.tensor, tk)
    before = [dict(vars(space)) for space in spaces]
    q, k, v = (torch.randn(2, 1, 24, 16) for _ in range(3))
    a = flash_attention(q, k, v, causal=True, backend="interpret")
    b = flash_attention(q, k, v, causal=True, backend="reference")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for space, saved in zip(spaces, before):
        changed = [name for name, obj in saved.items() if vars(space).get(name) is not obj]
        assert not changed, (space, changed)


@needs_interpreter
@pytest.mark.parametrize("causal", [False, True])
def test_the_gpu_launch_path_runs_under_the_interpreter(monkeypatch, causal):
    """The code path a CUDA tensor takes (``triton.autotune`` around each kernel, a grid computed
    from the chosen tiles, the constants passed by name), with the kernels swapped for their
    interpreted twins and one configuration each, so that no GPU is needed."""
    from triton.runtime.interpreter import InterpretedFunction

    from attnkit.flash.api import triton_version

    if triton_version() < (3, 4):
        pytest.skip("Triton < 3.4 builds an autotuner only where a GPU driver is present")
    tuners = {}
    for name, kernel in tk._KERNELS.items():
        bm, bn = {"fwd": (32, 16), "dkdv": (16, 32), "dq": (32, 16)}[name]
        one = triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=4, num_stages=2)
        tuners[name] = triton.autotune(configs=[one], key=["N", "HEAD_DIM", "CAUSAL"])(InterpretedFunction(kernel.fn))
    monkeypatch.setattr(tk, "_TUNERS", tuners)
    q, k, v, do = (torch.randn(2, 2, 45, 16) for _ in range(4))
    with tk._interpreter_language():
        o, lse = tk.attn_forward(q, k, v, causal, 0.25)                  # interpret=False, config=None
        grads = tk.attn_backward(q, k, v, o, lse, do, causal, 0.25)
    ref_out, ref_lse, *ref_grads = _reference(q, k, v, do, causal, scale=0.25)
    torch.testing.assert_close(o.double(), ref_out, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(lse.double(), ref_lse, rtol=1e-5, atol=1e-5)
    for got, ref in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=4e-5)


def _compile_or_skip(**kwargs):
    try:
        return tk.compile_for_gpu(**kwargs)
    except RuntimeError as err:
        if "Triton >= 3.3" in str(err) or "TRITON_INTERPRET" in str(err):
            pytest.skip(str(err))
        raise


@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")
@pytest.mark.parametrize(("name", "entry"), [(name, e) for name, entries in tk.AUTOTUNE_CONFIGS.items()
                                            for e in entries])
def test_every_autotune_config_compiles_for_an_h100_without_one(name, entry):
    """Triton's compiler and its bundled ptxas build the GPU code here. Every configuration the
    autotuner may pick must, for the largest case (d = 128, bfloat16, causal, ragged N), fit an
    H100's shared memory, use its tensor cores, pipeline its loads and spill no registers."""
    cfg = {name: tk._as_config(entry)}
    info = _compile_or_skip(d=128, dtype=torch.bfloat16, causal=True, arch=90, even=False, kernels=(name,),
                            config=cfg)[name]
    assert 0 < info["shared_bytes"] <= 227 * 1024            # an H100 block may use up to 227 KB
    assert "wgmma.mma_async" in info["ptx"]                  # tl.dot -> Hopper tensor-core instructions
    assert "cp.async" in info["ptx"]                         # loads pipelined asynchronously
    assert ".local" not in info["ptx"]                       # no register spills to local memory


def test_default_configs_are_autotune_entries():
    for d, dtype in ((64, torch.float16), (128, torch.bfloat16), (128, torch.float32)):
        for name, cfg in tk.kernel_config(d, dtype, interpret=False).items():
            entry = (cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["num_warps"], cfg["num_stages"])
            assert entry in tk.AUTOTUNE_CONFIGS[name], (d, dtype, name)


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


def test_an_old_triton_interpreter_is_refused(monkeypatch):
    """Triton 3.0 and 3.1 interpret these kernels to wrong numbers: a clear error instead."""
    monkeypatch.setattr(triton, "__version__", "3.1.0")
    with pytest.raises(RuntimeError, match=r"Triton >= 3\.2.*3\.1\.0.*backend='reference'"):
        flash_attention(*_ok(), backend="interpret")
    monkeypatch.setattr(triton, "__version__", "3.2.0")
    assert flash_attention(*_ok(), backend="interpret").shape == (1, 2, 8, 16)


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
