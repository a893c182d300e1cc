"""The Part II recorded multi-seed runs: present with provenance, loadable, and the command reproduces a row."""

from __future__ import annotations

import json

import pytest

from attnkit.recurrent import records


@pytest.mark.parametrize("name", ["seq2seq", "captions", "nli", "feedback"])
def test_recorded_files_have_provenance_and_rows(name: str) -> None:
    rec = records.load_record(name)
    prov = rec["provenance"]
    assert {"date", "command", "torch", "python", "machine"} <= set(prov)
    assert prov["command"].startswith(f"python -m attnkit.recurrent.records {name}")
    assert rec["rows"] and rec["what"]
    for row in rec["rows"]:
        assert len(row["seeds"]) >= 3, f"{row['model']}: fewer than three seeds"


def test_load_record_names_what_exists() -> None:
    with pytest.raises(ValueError, match="recorded: \\["):
        records.load_record("nope")


def test_by_length_counts_each_group() -> None:
    assert records.by_length([2, 3, 9, 20], [True, False, True, True]) == [[1, 2], [0, 0], [1, 1], [0, 0],
                                                                           [0, 0], [1, 1]]


def test_the_command_reproduces_the_recorded_seed(tmp_path, one_thread) -> None:
    out = tmp_path / "feedback.json"
    assert records.main(["feedback", "--seeds", "1", "--out", str(out)]) == 0
    fresh = {row["model"]: row["held_out"][0] for row in json.loads(out.read_text())["rows"]}
    recorded = {row["model"]: row["held_out"][0] for row in records.load_record("feedback")["rows"]}
    assert fresh == pytest.approx(recorded, abs=1e-6)
