"""The compiled Triton kernels on a CUDA GPU against ``scaled_dot_product_attention`` (skipped without CUDA).

The kernel's error against a float64 reference must be within 2x of SDPA's own error (plus a
small floor for outputs where both are essentially exact), forward and backward, in bfloat16
and float16, over random shapes: ragged and whole tiles, causal and not, every head dim.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnkit.flash.api import flash_attention, flash_attention_forward, interpreter_available

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
pytest.importorskip("triton")

SHAPES = [(1, 1, 1, 16), (2, 3, 127, 32), (1, 4, 256, 64), (2, 2, 1000, 128), (1, 2, 2049, 64), (3, 1, 77, 16)]


def _grads(fn, q, k, v, do):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = fn(q, k, v)
    out.backward(do)
    return out.detach(), q.grad, k.grad, v.grad


def _max_err(a, b):
    return (a.double() - b.double()).abs().max().item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_kernel_within_twice_sdpa_error(shape, causal, dtype):
    torch.manual_seed(sum(shape) + causal)
    q, k, v, do = (torch.randn(shape, device="cuda", dtype=dtype) for _ in range(4))
    ref = _grads(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=causal),
                 *(t.double() for t in (q, k, v, do)))
    sdpa = _grads(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=causal), q, k, v, do)
    ours = _grads(lambda a, b, c: flash_attention(a, b, c, causal=causal, backend="triton"), q, k, v, do)
    floor = 1e-3 if dtype == torch.float16 else 1e-2
    for name, o, s, r in zip(("out", "dq", "dk", "dv"), ours, sdpa, ref):
        assert o.dtype == dtype and torch.isfinite(o).all(), name
        err, err_sdpa = _max_err(o, r), _max_err(s, r)
        assert err <= 2 * err_sdpa + floor, f"{name}: error {err:.3g} vs SDPA's {err_sdpa:.3g}"


@pytest.mark.parametrize("causal", [False, True])
def test_float32_kernel_is_close_to_float64(causal):
    q, k, v, do = (torch.randn(2, 2, 333, 64, device="cuda") for _ in range(4))
    ref = _grads(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=causal),
                 *(t.double() for t in (q, k, v, do)))
    ours = _grads(lambda a, b, c: flash_attention(a, b, c, causal=causal), q, k, v, do)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o.double(), r, rtol=1e-4, atol=1e-4)


def test_lse_and_interpreter_agree_with_compiled():
    q, k, v = (torch.randn(1, 2, 70, 32, device="cuda", dtype=torch.float16) for _ in range(3))
    out, lse = flash_attention_forward(q, k, v, causal=True, backend="triton")
    s = (q.double() @ k.double().transpose(-1, -2)) / 32 ** 0.5
    s = s.masked_fill(~torch.ones(70, 70, dtype=torch.bool, device="cuda").tril(), float("-inf"))
    torch.testing.assert_close(lse.double(), torch.logsumexp(s, -1), rtol=1e-3, atol=1e-3)
    if not interpreter_available():
        pytest.skip("this Triton's interpreter is too old for backend='interpret'")
    cpu = flash_attention(q.cpu(), k.cpu(), v.cpu(), causal=True, backend="interpret")
    torch.testing.assert_close(out.cpu().float(), cpu.float(), rtol=2e-3, atol=2e-3)


def test_mixed_devices_raise():
    q = torch.randn(1, 1, 8, 16, device="cuda")
    with pytest.raises(ValueError, match="same device"):
        flash_attention(q, q.cpu(), q)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("index", range(6))
def test_every_autotune_config_is_correct(index, causal):
    """Each tile configuration the autotuner may pick, forced, on a ragged shape (N not a multiple of any
    tile): its error against float64 within 2x SDPA's, as above."""
    from attnkit.flash import triton_kernel as tk

    cfg = {name: tk._as_config(entries[min(index, len(entries) - 1)])
           for name, entries in tk.AUTOTUNE_CONFIGS.items()}
    torch.manual_seed(index)
    q, k, v, do = (torch.randn(2, 3, 333, 64, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    o, lse = tk.attn_forward(q, k, v, causal, 0.125, config=cfg)
    ours = (o, *tk.attn_backward(q, k, v, o, lse, do, causal, 0.125, config=cfg))
    sdpa = _grads(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=causal), q, k, v, do)
    ref = _grads(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=causal),
                 *(t.double() for t in (q, k, v, do)))
    for name, got, s, r in zip(("out", "dq", "dk", "dv"), ours, sdpa, ref):
        err, err_sdpa = _max_err(got, r), _max_err(s, r)
        assert err <= 2 * err_sdpa + 1e-2, f"{name} with {cfg}: error {err:.3g} vs SDPA's {err_sdpa:.3g}"


def test_autotuner_records_its_choice():
    from attnkit.flash import triton_kernel as tk

    q, k, v = (torch.randn(1, 2, 512, 64, device="cuda", dtype=torch.float16, requires_grad=True) for _ in range(3))
    flash_attention(q, k, v, causal=True).sum().backward()
    chosen = tk.tuned_configs()
    assert set(chosen) == {"fwd", "dkdv", "dq"}
    assert all("BLOCK_M" in c for per_kernel in chosen.values() for c in per_kernel.values())
