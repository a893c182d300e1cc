"""The strict book build: it executes every chapter once; here we check what it produced.

The build (``jupyter-book build . --all -W -n --keep-going``) runs in the session fixture
``built_book`` (tests/conftest.py). A chapter whose cell raises fails the build; its execution
report is kept in ``_build/html/reports/`` and printed here. The run time of every chapter is
written to ``_build/chapter-times.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent  # not from conftest: tests/*/conftest.py share that name

BUDGET_S = 90.0


def toc_docnames() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for p in toc["parts"] for c in p["chapters"]]


def notebook_docnames() -> list[str]:
    return [d for d in toc_docnames() if "code-cell" in (ROOT / f"{d}.md").read_text()]


def test_book_builds_without_warnings(built_book) -> None:
    reports = sorted((built_book.html / "reports").glob("**/*.log")) if built_book.html.exists() else []
    details = "\n".join(f"--- {r.name} ---\n{r.read_text()[-3000:]}" for r in reports)
    assert built_book.returncode == 0, f"book build failed:\n{built_book.log[-5000:]}\n{details}"
    assert not built_book.warnings, "\n".join(built_book.warnings)


def test_every_toc_page_is_in_the_html(built_book) -> None:
    for doc in toc_docnames():
        assert (built_book.html / f"{doc}.html").exists(), f"{doc}.html missing"
    assert (built_book.html / "index.html").exists()


def test_every_chapter_executed_and_run_times_are_reported(built_book) -> None:
    """Each notebook ran without error; record its run time (the budget is reported, not timed here)."""
    table = (built_book.html / "chapters" / "reference" / "execution.html").read_text()
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, flags=re.S)
    times = {}
    for row in rows:
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
        if len(cells) >= 5:
            doc, _method, run_time, status = cells[0], cells[2], cells[3], cells[4]
            times[doc] = {"seconds": float(run_time), "status": status}
    report = {"budget_s": BUDGET_S, "chapters": times,
              "over_budget": sorted(d for d, t in times.items() if t["seconds"] > BUDGET_S)}
    (ROOT / "_build" / "chapter-times.json").write_text(json.dumps(report, indent=2))
    print("\nchapter run times (s):", json.dumps({d: t["seconds"] for d, t in times.items()}, indent=1))
    for doc in notebook_docnames():
        assert doc in times, f"{doc} has code cells but was not executed"
        assert times[doc]["status"] == "✅", f"{doc}: {times[doc]}"


def test_chapters_are_offered_for_download_as_executed_notebooks(built_book) -> None:
    for doc in notebook_docnames():
        ipynb = built_book.html / "_sources" / f"{doc}.ipynb"
        assert ipynb.exists(), f"{doc}: no .ipynb download"
        nb = json.loads(ipynb.read_text())
        assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), f"{doc}: no outputs"
        page = (built_book.html / f"{doc}.html").read_text()
        assert f"{doc.rsplit('/', 1)[-1]}.ipynb" in page, f"{doc}: the page does not link its .ipynb"
