"""The efficient-attention benchmark end to end on tiny sizes (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from attnkit.bench import available, run
from attnkit.bench.efficient import RECORDED, estimate_bytes, fit_slope, format_table, load_recorded, main


def test_listed_and_runs_end_to_end(tmp_path, capsys):
    assert "efficient" in available()
    rc = run("efficient", ["--min-n", "64", "--max-n", "256", "--repeats", "1", "--fit-from", "64",
                           "--proj", "32", "--features", "32", "--chunk", "16", "--window", "16",
                           "--out", str(tmp_path), "--mem-cap-gb", "0.0004"])
    assert rc == 0
    text = capsys.readouterr().out
    data = json.loads((tmp_path / "efficient.json").read_text())
    assert (tmp_path / "efficient.png").stat().st_size > 1000
    ns = sorted({r["n"] for r in data["results"]})
    assert ns == [64, 128, 256]
    done = [r for r in data["results"] if not r["skipped"]]
    assert {r["method"] for r in done} == {"exact", "chunked", "linformer", "performer", "reformer", "local"}
    # the cap (about 420 kB) stops exact attention (3 N^2 floats = 786 kB at N = 256) and says so
    skipped = [r for r in data["results"] if r["skipped"]]
    assert any(r["method"] == "exact" and r["n"] == 256 for r in skipped)
    assert "skipped: estimated" in text and "> cap" in text
    for r in done:
        assert r["time_s"] >= 0 and r["peak_mb"] >= 0
        assert 0 <= r["rel_err"] and 0 <= r["rel_err_smooth"]
    exact_ones = [r for r in done if r["method"] in ("exact", "chunked")]
    assert all(r["rel_err"] < 1e-5 and r["rel_err_smooth"] < 1e-5 for r in exact_ones)
    assert set(data["summary"]["time_slope"]) >= {"linformer", "performer"}
    assert "fitted log-log slopes" in text and data["provenance"]["torch"]


def test_bad_arguments():
    with pytest.raises(SystemExit):
        main(["--max-n", "1000", "--no-plot"])
    with pytest.raises(SystemExit):
        main(["--repeats", "0"])
    with pytest.raises(SystemExit):
        main(["--methods", "flash"])


def test_helpers():
    assert fit_slope([1, 2, 4], [3.0, 12.0, 48.0]) == pytest.approx(2.0)
    assert fit_slope([8], [1.0]) is None
    assert estimate_bytes("exact", 1024, 64, None) == 4 * (3 * 1024 ** 2 + 1024 * 64)


@pytest.mark.skipif(not RECORDED.exists(), reason="no recorded run")
def test_recorded_run_is_complete():
    data = load_recorded()
    assert {"provenance", "config", "results", "summary"} <= set(data)
    assert max(r["n"] for r in data["results"]) == 65536
    assert "skipped" in format_table(data) or all(not r["skipped"] for r in data["results"])


def _fake_measure(real, *, extra_wall: float = 0.0, extra_cpu: float = 0.0):
    def fake(fn, *, rss):
        out, cpu, wall, peak = real(fn, rss=rss)
        return out, cpu + extra_cpu, wall + extra_wall, peak
    return fake


def test_time_cap_uses_cpu_time_not_wall_time(tmp_path, monkeypatch):
    import attnkit.bench.efficient as eff

    argv = ["--min-n", "64", "--max-n", "256", "--repeats", "1", "--methods", "exact", "local", "--window", "16",
            "--time-cap-s", "5", "--err-max-n", "64", "--no-plot", "--out", str(tmp_path)]
    real = eff.measure
    # a loaded machine: every call waits 100 s of wall time, its CPU time is unchanged -> nothing skipped
    monkeypatch.setattr(eff, "measure", _fake_measure(real, extra_wall=100.0))
    assert main(argv) == 0
    data = json.loads((tmp_path / "efficient.json").read_text())
    assert not any(r["skipped"] for r in data["results"])
    assert data["summary"]["wall_over_cpu"] > 10
    # calls that really cost 4 s of CPU each: at the next size (twice as long, slope 2 assumed from one
    # point) the predicted 16 s exceed the 5 s cap, so the larger sizes are skipped
    monkeypatch.setattr(eff, "measure", _fake_measure(real, extra_cpu=4.0))
    assert main(argv) == 0
    data = json.loads((tmp_path / "efficient.json").read_text())
    skipped = [(r["method"], r["n"]) for r in data["results"] if r["skipped"]]
    assert skipped == [("exact", 128), ("local", 128), ("exact", 256), ("local", 256)]
    assert all("s CPU per call > cap 5 s" in r["reason"] for r in data["results"] if r["skipped"])
