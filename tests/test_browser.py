"""The built book in a real headless Chromium, with the network cut off.

Served from 127.0.0.1; every request to any other host is aborted and recorded, so a page that
needs a CDN (MathJax, the widgets manager, fonts) fails here. Uses Playwright's Python package
with the system Chromium (Debian package ``chromium``, installed by .ci/setup.sh); in CI
(``CI=true``) a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
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
    page = browser.new_page()
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


@pytest.mark.parametrize("doc", _toc_pages())
def test_every_page_renders_offline_without_errors(browser, server, doc) -> None:
    """Each page: no console errors, nothing fetched from the network, maths typeset if any."""
    page, errors, blocked = open_offline(browser, f"{server}/{doc}.html")
    if page.locator(".math").count():
        page.wait_for_selector("mjx-container", state="attached", timeout=20_000)
        assert "\\(" not in page.inner_text("article"), "raw TeX left on the page"
    broken = page.eval_on_selector_all("article img", "els => els.filter(e => !e.naturalWidth).map(e => e.src)")
    assert not broken, f"images that did not load: {broken}"
    assert not blocked, f"requests to the network: {blocked}"
    assert not errors, errors
    page.close()
