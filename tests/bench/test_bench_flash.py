"""The FlashAttention benchmark harness, without a GPU: FLOP count, the no-CUDA message, and a
tiny ``--interpret`` smoke run that writes JSON and a figure."""

from __future__ import annotations

import json

import pytest
import torch

from attnkit.bench import available
from attnkit.bench import flash as bench


def test_flop_formula():
    assert bench.attention_flops(2, 1024, 64, causal=False, mode="fwd") == 4 * 2 * 1024 ** 2 * 64
    assert bench.attention_flops(2, 1024, 64, causal=True, mode="fwd") == 2 * 2 * 1024 ** 2 * 64
    assert bench.attention_flops(1, 10, 16, causal=False, mode="bwd") == 2.5 * 4 * 100 * 16
    assert "flash" in available()


def test_naive_attention_matches_sdpa():
    q, k, v = (torch.randn(2, 3, 11, 16) for _ in range(3))
    for causal in (False, True):
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        torch.testing.assert_close(bench.naive_attention(q, k, v, causal), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message printed without CUDA")
def test_without_cuda_it_explains_and_exits(capsys, tmp_path):
    assert bench.main(["--out", str(tmp_path)]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out
    assert not (tmp_path / "flash.json").exists()


def test_interpret_smoke_run_writes_json_and_figure(tmp_path, capsys):
    from attnkit.flash.api import interpreter_available

    if not interpreter_available():
        pytest.skip("needs triton with a working interpreter (>= 3.2)")
    code = bench.main(["--interpret", "--out", str(tmp_path), "--seq-lens", "20", "--head-dims", "16",
                       "--causal", "false,true", "--modes", "fwd,bwd", "--reps", "1"])
    assert code == 0
    result = json.loads((tmp_path / "flash.json").read_text())
    prov = result["provenance"]
    assert prov["interpreter"] is True and "interpreter" in prov["device"]
    assert {"torch", "triton", "date", "git_commit"} <= set(prov)
    rows = result["results"]
    assert {r["impl"] for r in rows} == {"naive", "sdpa-math", "attnkit"}
    assert len(rows) == 3 * 2 * 2
    assert all(r["error"] is None and r["ms"] > 0 and r["tflops"] > 0 for r in rows), rows
    assert all(r["pct_matmul"] == pytest.approx(100 * r["tflops"] / result["matmul_tflops"]) for r in rows)
    assert "5 GEMMs" in result["config"]["gemm_note"]
    assert (tmp_path / "flash.png").stat().st_size > 10_000
    assert result["targets"] == []


def _row(impl, tflops, mode="fwd", n=4096, causal=False):
    return {"impl": impl, "N": n, "d": 64, "causal": causal, "mode": mode, "tflops": tflops}


def test_targets_against_sdpa_flash_and_the_best_backend_separately():
    """Fake results: attnkit at 300 TFLOP/s, SDPA's flash backend at 400, cuDNN at 500 (forward); the
    lines compare with each, and the forward with the matmul rate."""
    rows = [_row("attnkit", 300.0), _row("sdpa-flash", 400.0), _row("sdpa-cudnn", 500.0), _row("sdpa-math", 50.0),
            _row("attnkit", 270.0, "bwd"), _row("sdpa-flash", 300.0, "bwd"), _row("attnkit", 1.0, n=1024)]
    lines = bench.targets({"results": rows, "matmul_tflops": 750.0})
    fwd_flash, fwd_best, bwd_flash, mm = lines
    assert "fwd" in fwd_flash and "sdpa-flash = 0.75" in fwd_flash and "target >= 1.0: short by 25 points" in fwd_flash
    assert "best SDPA = 0.60" in fwd_best and "target >= 0.8: short by 20 points" in fwd_best
    assert "bwd" in bwd_flash and "sdpa-flash = 0.90" in bwd_flash and "met" in bwd_flash
    assert "40% of the measured matmul rate 750" in mm and "short by 10 points" in mm
    assert bench.ratios({"results": rows}, "fwd", 64, False, "best SDPA") == {4096: 0.6}   # N = 1024 left out


def test_gpu_timing_uses_at_least_500_ms(monkeypatch):
    import triton.testing

    calls = []
    monkeypatch.setattr(triton.testing, "do_bench", lambda fn, **kw: calls.append(kw) or 1.0)
    assert bench.time_ms(lambda: None, "cuda") == 1.0
    assert calls[0]["rep"] == bench.MIN_REP_MS == 500 and calls[0]["return_mode"] == "median"
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: True)     # the option check runs before any GPU call
    with pytest.raises(SystemExit):
        bench.main(["--reps", "100"])


def test_measure_turns_fake_times_into_tflops(monkeypatch):
    monkeypatch.setattr(bench, "time_ms", lambda fn, device, reps, grads=None: 2.0)
    row = bench.measure("naive", 64, 16, False, "bwd", 2, torch.float32, "cpu", 1)
    assert row["error"] is None and row["ms"] == 2.0
    assert row["tflops"] == pytest.approx(2.5 * 4 * 2 * 64 ** 2 * 16 / 2e-3 / 1e12)
    assert "5 GEMMs per tile" in bench.gemm_note() and "2.5x" in bench.gemm_note()


def test_bad_options_are_rejected(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--interpret", "--out", str(tmp_path), "--modes", "sideways"])
