"""The Triton kernels run by Triton's interpreter on CPU tensors (no GPU needed), against float64;
the input errors of ``flash_attention``; and the kernels compiled ahead of time for sm_90 (H100/H200):
GEMMs per tile, registers and spills from ptxas, shared memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnkit.flash import api
from attnkit.flash.api import MIN_TRITON_INTERPRETER, flash_attention, flash_attention_forward, interpreter_available

triton = pytest.importorskip("triton")
tk = pytest.importorskip("attnkit.flash.triton_kernel")
from attnkit.flash import aot, autotune  # noqa: E402  (need triton, like triton_kernel)

needs_interpreter = pytest.mark.skipif(not interpreter_available(),
                                       reason=f"needs Triton >= {MIN_TRITON_INTERPRETER} for backend='interpret'")


def bottom_right(lq: int, lk: int) -> torch.Tensor:
    """The causal mask of FlashAttention-2, written out: query i sees key j iff j <= i + lk - lq."""
    return torch.tensor([[j <= i + lk - lq for j in range(lk)] for i in range(lq)])


def top_left(lq: int, lk: int) -> torch.Tensor:
    """SDPA's ``is_causal`` mask, written out: query i sees key j iff j <= i."""
    return torch.tensor([[j <= i for j in range(lk)] for i in range(lq)])


def _reference(q, k, v, do, dlse, causal, scale=None):
    """Output, log-sum-exp and gradients in float64 by plain autograd, K/V repeated for GQA.
    The loss is <out, do> + <lse, dlse> over the rows that see a key."""
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    kk, vv = (t.repeat_interleave(group, dim=1) for t in (k64, v64))            # (B, Hq, Lk, d)
    lq, lk, d = q.shape[2], k.shape[2], q.shape[3]
    s = q64 @ kk.transpose(-1, -2) * (scale if scale is not None else d ** -0.5)   # (B, Hq, Lq, Lk)
    if causal:
        s = s.masked_fill(~bottom_right(lq, lk), float("-inf"))
    lse = torch.logsumexp(s, -1)
    out = (s - lse[..., None]).exp().nan_to_num(0.0) @ vv
    seen = torch.isfinite(lse)
    loss = (out * do.double()).sum() + (torch.where(seen, lse, 0.0) * dlse.double()).sum()
    loss.backward()
    return out.detach(), lse.detach(), q64.grad, k64.grad, v64.grad


TOL = {torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 5e-2}


def _check_against_reference(q, k, v, causal, backend="interpret", scale=None, seed=0):
    torch.manual_seed(seed)
    for t in (q, k, v):
        t.requires_grad_()
    out, lse = flash_attention(q, k, v, causal=causal, softmax_scale=scale, return_lse=True, backend=backend)
    do, dlse = torch.randn_like(out), torch.randn_like(lse)
    seen = torch.isfinite(lse)
    loss = (out.float() * do.float()).sum() + (torch.where(seen, lse, 0.0) * dlse).sum()
    grads = torch.autograd.grad(loss, (q, k, v))
    ref_out, ref_lse, *ref_grads = _reference(q, k, v, do, dlse, causal, scale)
    tol = TOL[q.dtype]
    assert out.dtype == q.dtype and out.shape == q.shape and lse.dtype == torch.float32
    assert lse.shape == q.shape[:3]
    assert torch.equal(torch.isinf(lse), torch.isinf(ref_lse))      # the same rows see no key
    torch.testing.assert_close(out.double(), ref_out, rtol=tol, atol=tol)
    torch.testing.assert_close(torch.where(seen, lse.double(), 0.0), torch.where(seen, ref_lse, 0.0),
                               rtol=1e-5, atol=1e-5 if q.dtype == torch.float32 else 2e-3)
    for name, got, ref in zip("qkv", grads, ref_grads):
        assert got.shape == ref.shape and torch.isfinite(got).all(), name
        torch.testing.assert_close(got.double(), ref, rtol=tol, atol=2 * tol, msg=lambda m, name=name: f"d{name}: {m}")
    return out, lse


CASES = [  # (B, Hq, Hkv, Lq, Lk, d, causal, dtype)
    (1, 2, 2, 16, 16, 16, False, torch.float32),    # one exact tile
    (1, 2, 2, 37, 37, 16, True, torch.float32),     # ragged last tile, causal skip
    (1, 4, 2, 21, 45, 32, True, torch.float32),     # GQA, Lq < Lk (a chunk of prefill against a cache)
    (2, 3, 1, 33, 20, 16, True, torch.float32),     # MQA, Lq > Lk: the first 13 rows see no key
    (1, 4, 2, 1, 50, 32, True, torch.float32),      # decoding: one query against a cache of 50
    (1, 2, 1, 19, 40, 80, True, torch.float32),     # d = 80 in a 128-wide tile
    (1, 2, 2, 24, 24, 96, False, torch.float16),    # d = 96
    (1, 1, 1, 18, 18, 256, False, torch.float32),   # the widest head dim
    (1, 2, 2, 20, 23, 17, False, torch.float32),    # an odd head dim
    (1, 4, 1, 40, 40, 16, True, torch.float16),     # MQA in float16
    (1, 2, 2, 33, 48, 32, False, torch.float16),    # cross-attention shapes
    (1, 2, 1, 20, 20, 16, True, torch.bfloat16),    # interpreted in float32 (NumPy has no bfloat16)
]


@needs_interpreter
@pytest.mark.parametrize(("B", "Hq", "Hkv", "Lq", "Lk", "d", "causal", "dtype"), CASES,
                         ids=lambda x: str(x).removeprefix("torch."))
def test_interpreted_kernel_matches_float64(B, Hq, Hkv, Lq, Lk, d, causal, dtype):
    """Output, log-sum-exp and all three gradients (through out and lse) against float64 autograd."""
    torch.manual_seed(Lq + Lk + d)
    q = torch.randn(B, Hq, Lq, d, dtype=dtype)
    k, v = (torch.randn(B, Hkv, Lk, d, dtype=dtype) for _ in range(2))
    _check_against_reference(q, k, v, causal)


@pytest.mark.parametrize(("lq", "lk"), [(5, 12), (12, 5), (9, 9)])
@pytest.mark.parametrize("backend", ["interpret", "reference"])
def test_causal_is_bottom_right_and_sdpa_is_top_left(backend, lq, lk):
    """Both alignments checked against masks written out element by element: flash_attention's
    causal is FlashAttention-2's bottom-right one, SDPA's is_causal the top-left one; they agree
    only when Lq == Lk."""
    if backend == "interpret" and not interpreter_available():
        pytest.skip("needs the interpreter")
    torch.manual_seed(lq * lk)
    q, k, v = (torch.randn(1, 2, n, 16, dtype=torch.float64) for n in (lq, lk, lk))
    ours = flash_attention(q.float(), k.float(), v.float(), causal=True, backend=backend).double()
    br = bottom_right(lq, lk)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=br).nan_to_num(0.0)
    want[..., ~br.any(-1), :] = 0.0                      # rows with no key: zeros (SDPA would give NaN)
    torch.testing.assert_close(ours, want, rtol=2e-5, atol=2e-5)
    sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(sdpa, F.scaled_dot_product_attention(q, k, v, attn_mask=top_left(lq, lk)))
    assert torch.allclose(ours, sdpa.float().double(), atol=1e-4) == (lq == lk)


@pytest.mark.parametrize("backend", ["interpret", "reference"])
def test_rows_with_no_key_give_zeros_and_minus_inf(backend):
    if backend == "interpret" and not interpreter_available():
        pytest.skip("needs the interpreter")
    q, k, v = torch.randn(1, 2, 20, 16), torch.randn(1, 1, 6, 16), torch.randn(1, 1, 6, 16)
    for t in (q, k, v):
        t.requires_grad_()
    out, lse = flash_attention(q, k, v, causal=True, return_lse=True, backend=backend)
    assert torch.equal(out[:, :, :14], torch.zeros(1, 2, 14, 16))          # query i < 14 sees no key
    assert torch.isneginf(lse[:, :, :14]).all() and torch.isfinite(lse[:, :, 14:]).all()
    assert torch.isfinite(out).all() and (out[:, :, 14:].abs().sum(-1) > 0).all()
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert torch.equal(q.grad[:, :, :14], torch.zeros(1, 2, 14, 16))
    # no keys at all, no queries at all
    none = torch.zeros(1, 1, 0, 16, requires_grad=True)
    out, lse = flash_attention(q, none, none.detach(), return_lse=True, backend=backend)
    assert torch.equal(out, torch.zeros_like(q)) and torch.isneginf(lse).all()
    out.sum().backward()
    out = flash_attention(none, k, v, backend=backend)
    assert out.shape == (1, 1, 0, 16)


@needs_interpreter
def test_strided_inputs_are_read_in_place(monkeypatch):
    """A (B, N, H, d) buffer (as a fused QKV projection writes it) viewed as (B, H, N, d): the kernel
    gets the views themselves (same memory, same strides: no copy) and the right answer; the output
    keeps the layout, so out.transpose(1, 2) is a contiguous (B, N, H, d) tensor."""
    B, N, H, d = 2, 21, 3, 32
    qkv = torch.randn(B, N, 3, H, d)                       # (B, N, 3, H, d)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))   # each (B, H, N, d), strides (N*3*H*d, d, 3*H*d, 1)
    assert not q.is_contiguous()
    seen = []
    real = tk.attn_forward

    def spy(q_, k_, v_, *args, **kwargs):
        seen.append([(t.data_ptr(), t.stride()) for t in (q_, k_, v_)])
        return real(q_, k_, v_, *args, **kwargs)

    monkeypatch.setattr(tk, "attn_forward", spy)
    out, _ = _check_against_reference(q, k, v, causal=True)
    assert seen[0] == [(t.data_ptr(), t.stride()) for t in (q, k, v)]
    assert out.transpose(1, 2).is_contiguous()
    # an expanded K/V head (stride 0 along heads) is read in place too
    k1 = torch.randn(B, 1, N, d).expand(B, H, N, d)
    _check_against_reference(torch.randn(B, H, N, d), k1, k1.clone(), causal=False)


@needs_interpreter
@pytest.mark.parametrize(("B", "Hq", "Hkv", "Lq", "Lk", "d", "causal"), [
    (1, 4, 2, 21, 37, 80, True), (2, 3, 1, 40, 17, 32, True), (1, 2, 2, 33, 33, 16, False)])
def test_the_tma_descriptor_path_under_the_interpreter(B, Hq, Hkv, Lq, Lk, d, causal):
    """The variant a Hopper GPU runs (TMA descriptors, bounds checked by the copy engine: zeros past L
    and past d) forced through the interpreter, on a strided q, against float64."""
    if tk.TensorDescriptor is None:
        pytest.skip("this Triton has no triton.tools.tensor_descriptor")
    torch.manual_seed(Lq * Lk)
    q = torch.randn(B, Lq, Hq, d).transpose(1, 2)           # (B, Hq, Lq, d) view of a (B, Lq, Hq, d) buffer
    k, v = (torch.randn(B, Hkv, Lk, d) for _ in range(2))
    do, dlse = torch.randn(B, Hq, Lq, d), torch.randn(B, Hq, Lq)
    o, lse = tk.attn_forward(q, k, v, causal, d ** -0.5, interpret=True, tma=True)
    dlse = torch.where(torch.isinf(lse), 0.0, dlse)
    grads = tk.attn_backward(q, k, v, o, lse, do, causal, d ** -0.5, dlse=dlse, interpret=True, tma=True)
    ref_out, ref_lse, *ref_grads = _reference(q, k, v, do, dlse, causal)
    torch.testing.assert_close(o.double(), ref_out, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(lse.double(), ref_lse, rtol=1e-5, atol=1e-5)
    for got, ref in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=4e-5)


def test_tma_only_where_the_hardware_takes_it():
    x = torch.randn(2, 40, 3, 64).transpose(1, 2)            # row stride 3 * 64 * 4 bytes: aligned
    assert tk._tma_aligned(x)
    assert not tk._tma_aligned(torch.randn(1, 1, 8, 17, dtype=torch.float16))     # rows of 34 bytes
    assert not tk._tma_aligned(torch.randn(1, 1, 8, 64).expand(1, 4, 8, 64))      # stride 0 along heads
    assert not tk._tma_aligned(torch.randn(16 * 64 + 1)[1:].view(1, 1, 16, 64))   # base off by 4 bytes
    assert not tk._use_tma(None, False, "fwd", 64, x)       # a CPU tensor: pointers
    assert not autotune.uses_tma("bwd", 256) and autotune.uses_tma("bwd", 128)
    assert not tk.tma_available(torch.device("cpu"))


TILES = {  # (BLOCK_M, BLOCK_N) per kernel: tall, wide and square tiles
    "tall": {"fwd": {"BLOCK_M": 32, "BLOCK_N": 16}, "bwd": {"BLOCK_M": 16, "BLOCK_N": 32}},
    "wide": {"fwd": {"BLOCK_M": 16, "BLOCK_N": 32}, "bwd": {"BLOCK_M": 32, "BLOCK_N": 16}},
    "square": {"fwd": {"BLOCK_M": 32, "BLOCK_N": 32}, "bwd": {"BLOCK_M": 32, "BLOCK_N": 32}},
}


@needs_interpreter
@pytest.mark.parametrize("tiles", TILES)
@pytest.mark.parametrize(("lq", "lk"), [(45, 45), (30, 80), (80, 30)])   # ragged and whole tiles
@pytest.mark.parametrize("causal", [False, True])
def test_tile_shapes_and_custom_scale(causal, lq, lk, tiles):
    """Every split of the loops (unmasked tiles, diagonal tiles, ragged tails on either side) for
    tiles of different heights, with a non-default softmax scale."""
    torch.manual_seed(lq + lk)
    q, do = torch.randn(1, 2, lq, 16), torch.randn(1, 2, lq, 16)
    k, v = torch.randn(1, 1, lk, 16), torch.randn(1, 1, lk, 16)
    cfg = TILES[tiles]
    o, lse = tk.attn_forward(q, k, v, causal, 0.2, interpret=True, config=cfg)
    grads = tk.attn_backward(q, k, v, o, lse, do, causal, 0.2, interpret=True, config=cfg)
    ref_out, ref_lse, *ref_grads = _reference(q, k, v, do, torch.zeros_like(lse), causal, scale=0.2)
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
    q, k, v = torch.randn(2, 4, 24, 16), torch.randn(2, 2, 30, 16), torch.randn(2, 2, 30, 16)
    a = flash_attention(q, k, v, causal=True, backend="interpret")
    b = flash_attention(q, k, v, causal=True, backend="reference")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for space, saved in zip(spaces, before):
        changed = [name for name, obj in saved.items() if vars(space).get(name) is not obj]
        assert not changed, (space, changed)


@needs_interpreter
@pytest.mark.parametrize("causal", [False, True])
def test_the_gpu_launch_path_runs_under_the_interpreter(monkeypatch, causal):
    """The code path a CUDA tensor takes (one ``triton.autotune`` per kernel, head-dim class and
    dtype, over ``autotune.prune``'s entries; the grid computed from the chosen tiles; the dQ
    accumulator reset between trials, or dQ would be wrong), with the kernels swapped for their
    interpreted twins, two configurations per kernel and a fake timer, so that no GPU is needed.
    The autotuner keys on the bucketed lengths: three lengths, two buckets, two tunings."""
    from triton.runtime.interpreter import InterpretedFunction

    from attnkit.flash.api import triton_version

    if triton_version() < (3, 4):
        pytest.skip("Triton < 3.4 builds an autotuner only where a GPU driver is present")
    real_autotune = triton.autotune

    def autotune_timed_by_a_fake(**kwargs):   # no GPU timer here: every trial runs once and "takes" 1 ms
        def wrap(fn):
            tuner = real_autotune(**kwargs)(fn)
            tuner.do_bench = lambda call, quantiles: (call(), [1.0, 1.0, 1.0])[1]
            return tuner
        return wrap

    monkeypatch.setattr(triton, "autotune", autotune_timed_by_a_fake)
    monkeypatch.setattr(tk, "KERNELS", {n: InterpretedFunction(f.fn) for n, f in tk.KERNELS.items()})
    monkeypatch.setattr(tk, "_TUNERS", {})
    monkeypatch.setattr(tk, "_max_shared", lambda device: 227 * 1024)
    two = {"fwd": {64: ((32, 16, 4, 2), (16, 32, 4, 2))}, "bwd": {64: ((16, 32, 4, 2), (32, 16, 4, 2))}}
    monkeypatch.setattr(autotune, "AUTOTUNE_CONFIGS", two)
    with tk._interpreter_language():
        for lq, lk in ((45, 45), (40, 60), (20, 33)):     # buckets (64, 64), (64, 64), (32, 64)
            # float16: float32 would get one configuration (the smallest) and no tuning
            q, do = (torch.randn(2, 2, lq, 16, dtype=torch.float16) for _ in range(2))
            k, v = (torch.randn(2, 1, lk, 16, dtype=torch.float16) for _ in range(2))
            o, lse = tk.attn_forward(q, k, v, causal, 0.25)                  # interpret=False, config=None
            grads = tk.attn_backward(q, k, v, o, lse, do, causal, 0.25)
            ref_out, ref_lse, *ref_grads = _reference(q, k, v, do, torch.zeros_like(lse), causal, scale=0.25)
            torch.testing.assert_close(o.double(), ref_out, rtol=5e-3, atol=5e-3)
            torch.testing.assert_close(lse.double(), ref_lse, rtol=1e-3, atol=1e-3)
            for got, ref in zip(grads, ref_grads):
                torch.testing.assert_close(got.double(), ref, rtol=5e-3, atol=1e-2)
    tuners = {key[0]: tuner for key, tuner in tk._TUNERS.items()}
    assert set(tuners) == {"fwd", "bwd"} and tuners["bwd"].reset_to_zero == ["DQ_ACC"]
    assert tuners["fwd"].keys == ["LQ_BUCKET", "LK_BUCKET", "HEAD_DIM", "CAUSAL"]
    assert [key[:2] for key in tuners["fwd"].cache] == [(64, 64), (32, 64)]


def test_buckets_and_head_dim_classes():
    assert [autotune.bucket(n) for n in (1, 16, 17, 1000, 1024, 1025)] == [16, 16, 32, 1024, 1024, 2048]
    assert [autotune.block_d(d) for d in (16, 17, 64, 80, 96, 128, 200, 256)] == [16, 32, 64, 128, 128, 128, 256, 256]
    assert [autotune.d_class(d) for d in (16, 32, 64, 80, 128, 256)] == [64, 64, 64, 128, 128, 256]


def test_pruning_by_shared_memory_and_dtype():
    for name in ("fwd", "bwd"):
        for d in (64, 128, 256):
            entries = autotune.AUTOTUNE_CONFIGS[name][autotune.d_class(d)]
            assert autotune.prune(name, d, torch.bfloat16, 10 ** 9) == list(entries)
            assert autotune.prune(name, d, torch.float32, 10 ** 9) == [entries[-1]]
            small = autotune.prune(name, d, torch.float16, 64 * 1024)
            assert all(autotune.shared_bytes(name, e, d) <= 64 * 1024 for e in small) or len(small) == 1
            assert len(autotune.prune(name, d, torch.float16, 1)) == 1      # never empty


def test_default_configs_are_autotune_entries():
    for d, dtype in ((64, torch.float16), (80, torch.bfloat16), (128, torch.bfloat16), (128, torch.float32),
                     (256, torch.float16)):
        for name, cfg in tk.kernel_config(d, dtype, interpret=False).items():
            entry = (cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["num_warps"], cfg["num_stages"])
            assert entry in autotune.AUTOTUNE_CONFIGS[name][autotune.d_class(d)], (d, dtype, name)


# ---------------------------------------------------------------- double backward, determinism

@pytest.mark.parametrize("backend", ["interpret", "reference"])
def test_double_backward_is_refused(backend):
    """create_graph=True gives the right first-order gradients; differentiating them again raises
    a RuntimeError that says so (the backward kernels are not differentiable)."""
    if backend == "interpret" and not interpreter_available():
        pytest.skip("needs the interpreter")
    q, k, v = (torch.randn(1, 2, 9, 16, requires_grad=True) for _ in range(3))
    (g1,) = torch.autograd.grad(flash_attention(q, k, v, backend=backend).square().sum(), q)
    (g2,) = torch.autograd.grad(flash_attention(q, k, v, backend=backend).square().sum(), q, create_graph=True)
    torch.testing.assert_close(g1, g2.detach())
    with pytest.raises(RuntimeError, match="does not support double backward"):
        g2.square().sum().backward()                      # a gradient penalty


def test_deterministic_mode_refuses_the_atomic_backward():
    was, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        with pytest.raises(RuntimeError, match="atomics"):
            api._check_determinism("triton")
        api._check_determinism("interpret")              # one program at a time: reproducible
        torch.use_deterministic_algorithms(True, warn_only=True)
        with pytest.warns(UserWarning, match="atomics"):
            api._check_determinism("triton")
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)


# ---------------------------------------------------------------- compiled for sm_90 (no GPU needed)

def _compile_or_skip(**kwargs):
    try:
        return aot.compile_for_gpu(**kwargs)
    except RuntimeError as err:
        if "Triton >= 3.3" in str(err) or "TRITON_INTERPRET" in str(err):
            pytest.skip(str(err))
        raise


@pytest.mark.parametrize("group", [1, 4])
def test_gemms_per_tile_in_the_compiled_code(group):
    """Counted in the compiler's IR, per tile loop (each kernel calls its loop two or three times:
    unmasked and masked tiles): the forward does 2 GEMMs per tile, the backward FA2's 5, and on
    sm_90 every one became a Hopper warp-group MMA (wgmma); the backward's dQ goes out through
    float32 atomic adds."""
    info = _compile_or_skip(d=64, dtype=torch.bfloat16, causal=True, arch=90, even=False, group=group)
    fwd, bwd = info["fwd"], info["bwd"]
    assert aot.dots_per_loop(fwd["ttir"]) == [2, 2]
    assert aot.dots_per_loop(bwd["ttir"]) == [tk.backward.BACKWARD_GEMMS] * 3 == [5, 5, 5]
    assert aot.dots_per_loop(fwd["ttgir"], "ttng.warp_group_dot") == [2, 2]
    assert aot.dots_per_loop(bwd["ttgir"], "ttng.warp_group_dot") == [5, 5, 5]
    assert "wgmma.mma_async" in bwd["ptx"] and "red.global" in bwd["ptx"] and ".add" in bwd["ptx"]
    # the softmax scale rides in the fused multiply-add that feeds each exp2 (no separate scaling pass)
    assert bwd["ptx"].count("fma.rn.f32") >= bwd["ptx"].count("ex2.approx") > 0


# one representative entry per kernel and head-dim class in CI; the full sweep is
# `python -m attnkit.flash.autotune --out attnkit/data/flash` (its JSON is checked below)
REPRESENTATIVE = [("fwd", 64, True, torch.bfloat16, True), ("fwd", 128, False, torch.float16, False),
                  ("bwd", 64, False, torch.float16, False), ("bwd", 128, True, torch.bfloat16, True)]


@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")
@pytest.mark.parametrize(("name", "d", "causal", "dtype", "tma"), REPRESENTATIVE, ids=str)
def test_ptxas_reports_no_spills(name, d, causal, dtype, tma):
    """ptxas -v on the PTX Triton emits for an H100/H200: no spills, at most 255 registers, shared
    memory within an SM's 227 KB and below the pruning estimate, tensor cores and pipelined loads
    used (TMA bulk copies or cp.async); and the same numbers as the recorded sweep when the same
    Triton and ptxas made it."""
    entry = autotune.AUTOTUNE_CONFIGS[name][d][0]
    info = _compile_or_skip(d=d, dtype=dtype, causal=causal, arch=90, kernels=(name,),   # as the sweep does
                            config={name: autotune._as_config(entry)}, ptxas=True, tma=tma)[name]
    report = info["ptxas"]
    assert report["spill_stores"] == report["spill_loads"] == 0, report
    assert report["registers"] <= 255
    assert 0 < info["shared_bytes"] <= min(227 * 1024, autotune.shared_bytes(name, entry, d))
    assert "wgmma.mma_async" in info["ptx"]
    assert ("cp.async.bulk.tensor" in info["ptx"]) == tma and "cp.async" in info["ptx"]
    sweep = autotune.load_sweep()
    assert sweep is not None, "no recorded sweep: run python -m attnkit.flash.autotune --out attnkit/data/flash"
    if sweep["provenance"]["ptxas"] == aot.ptxas_version(90) and sweep["provenance"]["triton"] == triton.__version__:
        rows = [r for r in sweep["rows"] if r["kernel"] == name and tuple(r["entry"]) == entry and r["d"] == d
                and r["causal"] == causal and r["dtype"] == str(dtype).removeprefix("torch.")
                and r["variant"] == ("tma" if tma else "pointer")]
        assert len(rows) == 1
        assert (rows[0]["registers"], rows[0]["shared_bytes"]) == (report["registers"], info["shared_bytes"]), \
            "the recorded sweep is stale: rerun python -m attnkit.flash.autotune --out attnkit/data/flash"


@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")
def test_the_spill_check_can_fail():
    """A candidate the sweep found spilling still spills when compiled here: the check above sees spills."""
    sweep = autotune.load_sweep()
    spilled = [r for r in (sweep or {}).get("rows", []) if r["spill_stores"] > 0]
    if not spilled:
        pytest.skip("the recorded sweep has no spilling candidate")
    row = min(spilled, key=lambda r: (r["d"], r["kernel"]))
    info = _compile_or_skip(d=row["d"], dtype=getattr(torch, row["dtype"]), causal=row["causal"], arch=90,
                            kernels=(row["kernel"],), tma=row["variant"] == "tma",
                            config={row["kernel"]: autotune._as_config(tuple(row["entry"]))}, ptxas=True)
    assert info[row["kernel"]]["ptxas"]["spill_stores"] > 0


def test_recorded_sweep_covers_every_autotune_entry_without_spills():
    """The committed JSON (made by the documented command) was made from the current kernel source
    and candidates, has a row for every candidate at d = 64 and 128 (and 256), causal and not, bf16
    and fp16, TMA and pointers, and AUTOTUNE_CONFIGS is exactly its spill-free candidates; the shared-memory
    estimate that prunes at run time bounds every compiled value."""
    sweep = autotune.load_sweep()
    assert sweep is not None, "no recorded sweep: run python -m attnkit.flash.autotune --out attnkit/data/flash"
    assert sweep["provenance"]["kernel_source_sha256"] == autotune._source_hash(), \
        "the kernels changed since the sweep: rerun python -m attnkit.flash.autotune --out attnkit/data/flash"
    assert autotune.spill_free(sweep) == autotune.AUTOTUNE_CONFIGS
    for name, per_class in autotune.CANDIDATES.items():
        for cls, entries in per_class.items():
            for entry in entries:
                rows = [r for r in sweep["rows"] if r["kernel"] == name and tuple(r["entry"]) == entry
                        and autotune.d_class(r["d"]) == cls]
                got = {(r["d"], r["causal"], r["dtype"], r["variant"]) for r in rows}
                assert got == {(d, c, t, v) for d in autotune.SWEEP_DIMS[cls] for c in (False, True)
                               for t in ("bfloat16", "float16") for v in autotune.VARIANTS[name, cls]}, \
                    (name, entry)
    for r in sweep["rows"]:
        assert r["shared_bytes"] <= autotune.shared_bytes(r["kernel"], tuple(r["entry"]), r["d"]), r
    assert all(autotune.AUTOTUNE_CONFIGS[n][c] for n in ("fwd", "bwd") for c in (64, 128, 256))


# ---------------------------------------------------------------- errors: clear messages, before any Triton code

def _ok(shape=(1, 2, 8, 16), dtype=torch.float32):
    return [torch.randn(shape, dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize(("make", "exc", "match"), [
    (lambda: _ok((1, 2, 8, 8)), ValueError, "between 16 and 256"),
    (lambda: _ok((1, 2, 8, 264)), ValueError, "between 16 and 256"),
    (lambda: _ok(dtype=torch.float64), TypeError, "float16, bfloat16 or float32"),
    (lambda: [torch.ones(1, 2, 8, 16, dtype=torch.int32)] * 3, TypeError, "floating-point"),
    (lambda: _ok((2, 8, 16)), ValueError, r"\(B, H, L, d\)"),
    (lambda: _ok((1, 1, 2, 8, 16)), ValueError, r"\(B, H, L, d\)"),
    (lambda: [torch.randn(1, 2, 8, 16), torch.randn(1, 2, 9, 16), torch.randn(1, 2, 7, 16)], ValueError,
     "same shape"),
    (lambda: [torch.randn(1, 2, 8, 16), torch.randn(2, 2, 9, 16), torch.randn(2, 2, 9, 16)], ValueError,
     "batch size and head dim"),
    (lambda: [torch.randn(1, 2, 8, 16), torch.randn(1, 2, 9, 32), torch.randn(1, 2, 9, 32)], ValueError,
     "batch size and head dim"),
    (lambda: [torch.randn(1, 3, 8, 16), torch.randn(1, 2, 9, 16), torch.randn(1, 2, 9, 16)], ValueError,
     r"Hq % Hkv == 0.*Hq = 3.*Hkv = 2"),
    (lambda: [torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16).half(), torch.randn(1, 2, 8, 16)], TypeError,
     "same dtype"),
    (lambda: [torch.randn(1, 2, 16, 8).transpose(-1, -2), torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16)],
     ValueError, "unit stride in its last"),
    (lambda: [torch.randn(1, 2, 8, 16, device="meta")] * 3, ValueError, "CPU or CUDA"),
    (lambda: ["q", "k", "v"], TypeError, "torch.Tensor"),
])
@pytest.mark.parametrize("backend", ["interpret", "reference"])
def test_bad_inputs_raise_clear_errors_before_triton(make, exc, match, backend, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a kernel was launched on bad input")

    monkeypatch.setattr(tk, "attn_forward", never)
    monkeypatch.setattr(api, "_reference_forward", never)
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
    with pytest.raises(TypeError, match="return_lse"):
        flash_attention(q, k, v, return_lse="yes")
    with pytest.raises(ValueError, match="softmax_scale"):
        flash_attention(q, k, v, softmax_scale=-1.0)
    with pytest.raises(TypeError, match="softmax_scale"):
        flash_attention(q, k, v, softmax_scale="0.1")


def test_forward_only_matches_return_lse():
    q, k, v = torch.randn(1, 4, 10, 16), torch.randn(1, 2, 12, 16), torch.randn(1, 2, 12, 16)
    out, lse = flash_attention_forward(q, k, v, causal=True, backend="reference")
    out2, lse2 = flash_attention(q, k, v, causal=True, return_lse=True, backend="reference")
    assert torch.equal(out, out2) and torch.equal(lse, lse2) and out.grad_fn is None


@pytest.mark.parametrize("backend", ["interpret", "reference"])
def test_gradient_through_the_log_sum_exp_alone(backend):
    """d lse_i / d s_ij = p_ij: a loss on lse only (the output unused) gets the right gradients."""
    if backend == "interpret" and not interpreter_available():
        pytest.skip("needs the interpreter")
    q, k, v = torch.randn(1, 2, 11, 16), torch.randn(1, 1, 13, 16), torch.randn(1, 1, 13, 16)
    for t in (q, k, v):
        t.requires_grad_()
    _, lse = flash_attention(q, k, v, causal=True, return_lse=True, backend=backend)
    grads = torch.autograd.grad(lse.sum(), (q, k, v))
    q64, k64 = (t.detach().double().requires_grad_() for t in (q, k))
    s = q64 @ k64.repeat_interleave(2, 1).transpose(-1, -2) / 4.0
    s = s.masked_fill(~bottom_right(11, 13), float("-inf"))
    ref = torch.autograd.grad(torch.logsumexp(s, -1).sum(), (q64, k64))
    torch.testing.assert_close(grads[0].double(), ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1].double(), ref[1], rtol=1e-5, atol=1e-5)
    assert torch.equal(grads[2], torch.zeros_like(v))
