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
    assert (tmp_path / "flash.png").stat().st_size > 10_000
    assert result["targets"] == []


def test_targets_report_the_shortfall():
    rows = [{"impl": impl, "N": 4096, "d": 64, "causal": False, "mode": "fwd", "tflops": t}
            for impl, t in (("attnkit", 300.0), ("sdpa-flash", 400.0), ("sdpa-math", 50.0))]
    lines = bench.targets({"results": rows, "matmul_tflops": 600.0})
    assert "0.75" in lines[0] and "short by 25 points" in lines[0]
    assert "50%" in lines[1] and "short by 10 points" in lines[1]


def test_bad_options_are_rejected(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--interpret", "--out", str(tmp_path), "--modes", "sideways"])
