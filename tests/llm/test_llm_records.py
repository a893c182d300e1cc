"""The Part V records: the positions record's per-row provenance and the ``--kinds`` merge."""

from __future__ import annotations

import json

import pytest

from attnkit.llm import records
from attnkit.llm.gpt import POSITIONS


def _rec(kinds: tuple[str, ...], tag: str, steps: int = 600) -> dict[str, object]:
    rows = [{"positions": k, "curves": [[float(len(tag))]]} for k in kinds]
    if "rotary" in kinds:
        rows.insert(kinds.index("rotary") + 1, {"positions": "rotary + PI", "curves": [[0.0]]})
    return {"what": tag, "steps": steps, "seeds": [0, 1, 2], "train_length": 64, "eval_length": 256, "rows": rows}


def test_merge_replaces_only_the_rerun_kinds_and_keeps_each_rows_provenance() -> None:
    old = {"provenance": {"command": "first"}, **_rec(POSITIONS, "old")}
    merged = records._merge_positions(old, _rec(("sinusoidal",), "rerun"), {"command": "second"})
    assert [r["positions"] for r in merged["rows"]] == [r["positions"] for r in old["rows"]]
    by = {r["positions"]: r for r in merged["rows"]}
    assert by["sinusoidal"]["provenance"] == {"command": "second"}
    assert by["sinusoidal"]["curves"] == [[5.0]]                       # the rerun's rows
    for kind in ("learned", "rotary", "rotary + PI", "alibi", "none"):
        assert by[kind]["provenance"] == {"command": "first"}          # kept, stamped with the first run
    assert merged["provenance"] == {"command": "first"}
    assert merged["updates"] == [{"kinds": ["sinusoidal"], "provenance": {"command": "second"}}]


def test_merge_of_rotary_replaces_its_interpolation_row_too() -> None:
    old = {"provenance": {"command": "first"}, **_rec(POSITIONS, "old")}
    merged = records._merge_positions(old, _rec(("rotary",), "new"), {"command": "second"})
    by = {r["positions"]: r for r in merged["rows"]}
    assert by["rotary"]["provenance"] == by["rotary + PI"]["provenance"] == {"command": "second"}
    assert by["alibi"]["provenance"] == {"command": "first"}


def test_merge_refuses_other_steps_or_seeds() -> None:
    old = {"provenance": {}, **_rec(POSITIONS, "old")}
    with pytest.raises(ValueError, match="steps=600"):
        records._merge_positions(old, _rec(("sinusoidal",), "x", steps=300), {})


def test_kinds_is_refused_where_it_cannot_merge(tmp_path) -> None:
    with pytest.raises(SystemExit):
        records.main(["kv-heads", "--kinds", "sinusoidal", "--out", str(tmp_path / "k.json")])
    with pytest.raises(SystemExit):                                      # nothing to merge into
        records.main(["positions", "--kinds", "sinusoidal", "--out", str(tmp_path / "none.json")])
    out = tmp_path / "p.json"
    out.write_text(json.dumps({"provenance": {}, **_rec(POSITIONS, "old")}))
    with pytest.raises(SystemExit):                                      # the record's steps are 600
        records.main(["positions", "--kinds", "sinusoidal", "--steps", "5", "--out", str(out)])
    with pytest.raises(ValueError, match="kinds must be"):
        records.record_positions(1, 1, kinds=("xpos",))


def test_the_positions_record_has_provenance_for_every_row() -> None:
    rec = records.load_record("positions")
    assert {r["positions"] for r in rec["rows"]} == {*POSITIONS, "rotary + PI"}
    assert rec["seeds"] == [0, 1, 2] and rec["steps"] == 600
    for row in rec["rows"]:
        prov = row.get("provenance", rec["provenance"])
        assert {"date", "command", "torch", "python", "machine"} <= set(prov)
        assert prov["command"].startswith("python -m attnkit.llm.records positions")
        assert len(row["curves"]) == len(rec["seeds"])
    sin = next(r for r in rec["rows"] if r["positions"] == "sinusoidal")
    assert "--kinds sinusoidal" in sin["provenance"]["command"]       # rerun with sqrt(d) scaling
    assert "sqrt(64)" in rec["what"]
