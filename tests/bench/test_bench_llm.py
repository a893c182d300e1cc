"""The decoding benchmark end to end on tiny sizes (no timing assertions)."""

from __future__ import annotations

import json

from attnkit.bench import available, run
from attnkit.bench.llm import RECORDED, format_table, load_recorded


def test_listed_and_runs_end_to_end(tmp_path, capsys) -> None:
    assert "llm" in available()
    rc = run("llm", ["--contexts", "8", "16", "--tokens", "2", "--repeats", "1", "--window", "4",
                     "--out", str(tmp_path)])
    assert rc == 0
    data = json.loads((tmp_path / "llm.json").read_text())
    assert [r["context"] for r in data["rows"]] == [8, 16]
    for r in data["rows"]:
        assert r["cache"]["cache_bytes"] == r["formula_bytes"]
        assert r["window"]["cache_bytes"] < r["cache"]["cache_bytes"]
    assert "command" in data["provenance"] and (tmp_path / "llm.png").stat().st_size > 1000
    assert "recompute" in capsys.readouterr().out and "cache bytes" in format_table(data)


def test_recorded_run_is_shipped() -> None:
    data = load_recorded(RECORDED)
    assert data["provenance"]["command"].startswith("python -m attnkit.bench llm")
    assert len(data["rows"]) >= 4
