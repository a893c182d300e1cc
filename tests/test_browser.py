"""The built book in a real headless Chromium, with the network cut off.

Served from 127.0.0.1; every request to any other host is aborted and recorded, so a page that
needs a CDN (MathJax, the widgets manager, fonts) fails here. At 1280 x 900, every page is
checked for console errors, code blocks wider than their column (folded ones unfolded first),
and interactives whose controls do not change the figure; the search page must find the book's
key terms offline. The counts go to ``_build/browser-report.json``. Uses Playwright's Python package
with the system Chromium (Debian package ``chromium``, installed by .ci/setup.sh); in CI
(``CI=true``) a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VIEWPORT = {"width": 1280, "height": 900}
REPORT: dict = {"viewport": VIEWPORT, "pages": {}, "search": {}}
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def server(built_book) -> Iterator[str]:
    assert built_book.returncode == 0, "the book did not build; see test_book.py"
    handler = functools.partial(_QuietHandler, directory=str(built_book.html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed (bash .ci/setup.sh installs the Debian package 'chromium')")
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def open_offline(browser, url: str):
    """Open ``url`` with every non-local request aborted; return (page, console errors, blocked URLs)."""
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    blocked: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        host = urlparse(r.request.url).hostname
        if host in ("127.0.0.1", "localhost") or r.request.url.startswith("data:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="networkidle")
    return page, errors, blocked


def test_front_page_loads_offline_with_theme_and_timeline(browser, server) -> None:
    page, errors, blocked = open_offline(browser, server + "/index.html")
    page.wait_for_url("**/chapters/intro.html")
    assert "cocktail party" in page.title().lower() or "attention" in page.title().lower()
    # the theme's CSS applies: the primary sidebar is laid out as a flex column by sphinx-book-theme
    assert page.eval_on_selector(".bd-sidebar-primary", "e => getComputedStyle(e).display") == "flex"
    assert page.eval_on_selector("body", "e => getComputedStyle(e).fontFamily") != "\"Times New Roman\""
    # the timeline figure is shown
    sizes = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
    assert any(w > 300 for w in sizes), sizes
    assert not blocked, f"requests to the network: {blocked}"
    assert not errors, errors


def test_chapter_page_has_maths_figures_and_slider(browser, server) -> None:
    page, errors, blocked = open_offline(browser, server + "/chapters/what-is-attention.html")
    page.wait_for_selector("mjx-container", state="attached", timeout=20_000)
    assert page.locator("mjx-container").count() >= 5  # MathJax typeset the formulas
    text = page.inner_text("article")
    assert "\\(" not in text and "\\[" not in text, "raw TeX left on the page"
    widths = page.eval_on_selector_all("article img", "els => els.map(e => e.naturalWidth)")
    assert sum(w > 200 for w in widths) >= 3, widths
    # the temperature slider, rendered by the vendored ipywidgets manager from the saved state
    slider = page.wait_for_selector(".widget-slider, .jupyter-widgets .slider", timeout=20_000)
    assert slider.is_visible()
    assert "temperature" in page.inner_text(".jupyter-widgets, .widget-box", timeout=5_000).lower()
    assert not blocked, f"requests to the network: {blocked}"
    assert not errors, errors


def _toc_pages() -> list[str]:
    from pathlib import Path

    import yaml

    toc = yaml.safe_load((Path(__file__).resolve().parent.parent / "_toc.yml").read_text())
    return [c["file"] for p in toc["parts"] for c in p["chapters"]]


def _skip_if_not_built(built_book, doc: str) -> None:
    if os.environ.get("ATTNKIT_BOOK_HTML") and not (built_book.html / f"{doc}.html").exists():
        pytest.skip(f"{doc} is not in the partial build ATTNKIT_BOOK_HTML")


@pytest.mark.parametrize("doc", _toc_pages())
def test_every_page_renders_offline_without_errors(browser, server, built_book, doc) -> None:
    """Each page: no console errors, nothing fetched from the network, maths typeset if any."""
    _skip_if_not_built(built_book, doc)
    page, errors, blocked = open_offline(browser, f"{server}/{doc}.html")
    if page.locator(".math").count():
        page.wait_for_selector("mjx-container", state="attached", timeout=20_000)
        assert "\\(" not in page.inner_text("article"), "raw TeX left on the page"
    broken = page.eval_on_selector_all("article img", "els => els.filter(e => !e.naturalWidth).map(e => e.src)")
    assert not broken, f"images that did not load: {broken}"
    assert not blocked, f"requests to the network: {blocked}"
    assert not errors, errors
    page.close()


# ---- pages that read well: code fits, every control works, search finds -------------------------

_UNFOLD = """() => {
  document.querySelectorAll('article details').forEach(d => { d.open = true; });
  document.querySelectorAll('article .toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
}"""

_CODE_BLOCKS = """() => [...document.querySelectorAll('article div.highlight pre')]
  .filter(p => !p.closest('.cell_output') && p.clientWidth > 0)
  .map(p => ({scroll: p.scrollWidth, client: p.clientWidth,
              line: p.textContent.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '')}))"""

# the frames an interactive shows now: the <img> elements inside the control's widget box that
# are displayed (a widgets.Stack hides all its children but the selected one)
_SHOWN_FRAMES = """(control) => {
  let box = control.parentElement;
  while (box && !box.querySelector('img')) box = box.parentElement;
  if (!box) return null;
  if (!box.dataset.interactive) {
    box.dataset.interactive = String(document.querySelectorAll('[data-interactive]').length);
  }
  return {box: box.dataset.interactive,
          frames: [...box.querySelectorAll('img')].filter(i => i.offsetParent !== null).map(i => i.src)};
}"""


def _move(page, control) -> str:
    """Move one control (a slider one step, a drop-down to another option); return what was done."""
    select = control.locator("select")
    if select.count():
        options = select.locator("option").all_text_contents()
        current = select.evaluate("s => s.selectedIndex")
        target = (current + 1) % len(options)
        select.select_option(index=target)
        return f"drop-down {options[current]!r} -> {options[target]!r}"
    handle = control.locator(".noUi-handle").first
    now, top = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
    handle.focus()
    key = "ArrowLeft" if now is not None and now == top else "ArrowRight"
    page.keyboard.press(key)
    readout = control.locator(".widget-readout")
    return f"slider {key}: {readout.inner_text() if readout.count() else ''}".strip()


# Pages whose widgets or code are being converted elsewhere: the test is expected to fail there
# until that is merged (then delete the entry). Part II's went once its frame_slider merged.
PENDING_PAGES: tuple[str, ...] = ()


def _pages_with_pending() -> list:
    return [pytest.param(d, marks=pytest.mark.xfail(reason="Part II: pending its frame_slider and line fixes"))
            if d.startswith(PENDING_PAGES) else d for d in _toc_pages()]


@pytest.mark.parametrize("doc", _pages_with_pending())
def test_every_page_fits_the_column_and_every_control_changes_the_figure(browser, server, built_book, doc) -> None:
    """At 1280 x 900: no code block scrolls sideways; each slider or menu switches the frame shown."""
    _skip_if_not_built(built_book, doc)
    page, errors, blocked = open_offline(browser, f"{server}/{doc}.html")
    entry = REPORT["pages"].setdefault(doc, {})
    # interactives: rendered by the vendored widgets manager from the saved widget state
    if (built_book.html / f"{doc}.html").read_text().count("application/vnd.jupyter.widget-view+json"):
        page.wait_for_selector("article .widget-slider, article .widget-dropdown", timeout=30_000)
    controls = page.locator("article .widget-slider, article .widget-dropdown")
    boxes = set()
    moved = []
    for i in range(controls.count()):
        control = controls.nth(i)
        control.scroll_into_view_if_needed()
        before = control.evaluate(_SHOWN_FRAMES)
        assert before and before["frames"], f"{doc}: control {i} has no figure"
        boxes.add(before["box"])
        what = _move(page, control)
        page.wait_for_timeout(200)
        after = control.evaluate(_SHOWN_FRAMES)
        assert after["frames"] and after["frames"] != before["frames"], \
            f"{doc}: control {i} ({what}) did not change the figure"
        moved.append(what)
    entry.update(interactives=len(boxes), controls_moved=len(moved), moves=moved)

    # code blocks: none wider than its column, folded cells and solutions opened first
    page.evaluate(_UNFOLD)
    blocks = page.evaluate(_CODE_BLOCKS)
    wide = [f"{b['scroll']} > {b['client']} px: {b['line'][:90]}" for b in blocks if b["scroll"] > b["client"] + 1]
    entry.update(code_blocks=len(blocks), code_blocks_too_wide=len(wide))
    assert not wide, f"{doc}: code wider than the column at 1280 px:\n" + "\n".join(wide)
    assert not blocked, f"requests to the network: {blocked}"
    assert not errors, errors
    page.close()


@pytest.mark.parametrize(("query", "expected"), [("online softmax", "chapters/part4/flash-attention"),
                                                  ("Bahdanau", "chapters/part2/seq2seq")])
def test_search_finds_key_terms_offline(browser, server, built_book, query, expected) -> None:
    _skip_if_not_built(built_book, expected)
    page, errors, blocked = open_offline(browser, f"{server}/search.html?q={query.replace(' ', '+')}")
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    links = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.getAttribute('href'))")
    REPORT["search"][query] = links
    assert any(expected in (h or "") for h in links), f"search for {query!r} did not find {expected}: {links}"
    assert not blocked, f"requests to the network: {blocked}"
    assert not errors, errors
    page.close()


@pytest.fixture(scope="module", autouse=True)
def _write_report(request) -> Iterator[None]:
    yield
    if not REPORT["pages"]:
        return
    pages = REPORT["pages"]
    REPORT["pending"] = sorted(d for d in pages if d.startswith(PENDING_PAGES))
    REPORT["totals"] = {"pages_checked": len(pages) - len(REPORT["pending"]), "pages_pending": len(REPORT["pending"]),
                        "interactives": sum(p.get("interactives", 0) for p in pages.values()),
                        "controls_moved": sum(p.get("controls_moved", 0) for p in pages.values()),
                        "code_blocks_checked": sum(p.get("code_blocks", 0) for p in pages.values())}
    out = ROOT / "_build" / "browser-report.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(REPORT, indent=2))
