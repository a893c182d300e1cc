"""The history table agrees with the table of contents and the bibliography."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import yaml

from attnkit.history import ERAS, HISTORY, chapter_links_markdown, chapters, plot_timeline

ROOT = Path(__file__).resolve().parent.parent


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def test_every_chapter_in_the_history_is_in_the_toc_and_exists() -> None:
    files = toc_files()
    for docname in chapters():
        assert docname in files, f"{docname} is in attnkit.history but not in _toc.yml"
        assert (ROOT / f"{docname}.md").exists() or (ROOT / f"{docname}.ipynb").exists()


def test_every_toc_file_exists() -> None:
    for docname in toc_files():
        assert (ROOT / f"{docname}.md").exists() or (ROOT / f"{docname}.ipynb").exists(), docname


def test_every_reference_key_is_in_the_bibliography() -> None:
    keys = set(re.findall(r"@\w+\{([^,]+),", (ROOT / "references.bib").read_text()))
    for m in HISTORY:
        assert m.refs, m.idea
        for key in m.refs:
            assert key in keys, f"{key} (history row {m.idea!r}) is missing from references.bib"


def test_bibliography_keys_are_unique() -> None:
    keys = re.findall(r"@\w+\{([^,]+),", (ROOT / "references.bib").read_text())
    dupes = {k for k in keys if keys.count(k) > 1}
    assert not dupes, f"duplicate bibliography keys: {sorted(dupes)}"


def test_rows_are_chronological_and_eras_known() -> None:
    starts = [m.start for m in HISTORY]
    assert starts == sorted(starts)
    assert all(m.era in ERAS and m.start <= m.end for m in HISTORY)


def test_table_and_timeline_render_every_row() -> None:
    md = chapter_links_markdown()
    assert md.count("\n") == len(HISTORY) + 1
    for m in HISTORY:
        assert m.idea in md
        if m.chapter:
            assert f"{{doc}}`/{m.chapter}`" in md
    ax = plot_timeline()
    assert len(ax.patches) == len(HISTORY)
    plt.close("all")


def test_timeline_legend_has_one_colour_per_era() -> None:
    ax = plot_timeline()
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == list(ERAS)
    colours = {tuple(h.get_facecolor()) for h in legend.legend_handles}
    assert len(colours) == len(ERAS), "every era must have its own swatch colour"
    plt.close("all")


def test_timeline_ends_at_the_current_year_with_readable_labels() -> None:
    """The x axis stops at this year (not decades ahead) and every label is at least 10 pt."""
    from datetime import date

    ax = plot_timeline()
    fig = ax.figure
    fig.tight_layout()
    assert ax.get_xlim() == (1950, date.today().year)
    assert max(ax.get_xticks()) == date.today().year
    texts = ax.texts + ax.get_xticklabels() + [ax.xaxis.label, ax.title] + ax.get_legend().get_texts()
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_text() and t.get_fontsize() < 10]
    assert not small, small
    # no milestone label runs off the axes
    fig.canvas.draw()
    box = ax.get_window_extent()
    for t in ax.texts:
        tb = t.get_window_extent()
        assert box.x0 - 1 <= tb.x0 and tb.x1 <= box.x1 + 1, t.get_text()
    plt.close("all")


def test_timeline_rejects_an_axis_that_ends_before_the_last_milestone() -> None:
    import pytest

    with pytest.raises(ValueError, match="last_year"):
        plot_timeline(last_year=2000)
    plt.close("all")
