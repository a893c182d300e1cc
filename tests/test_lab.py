"""The chapters as notebooks in JupyterLab: canonical text, identical saves, a real offline Lab.

The first tests need only Jupytext: every chapter is in the form Jupytext (through the book's
contents manager, ``chapters/_ext/lab_contents.py``) writes back, so opening and saving a chapter
in JupyterLab changes no byte. The others start the JupyterLab that ``bash .ci/lab.sh`` starts
(``jupyter_server_config.py``, the pins of ``requirements-lab.txt``) on a copy of the chapters,
and drive it in headless Chromium with every request to another host aborted: double-click a
chapter in the file browser, check it opened as a notebook with the MyST blocks rendered and the
solutions folded, run all cells, move the slider, save, and compare the file with the original.
In CI (``CI=true``) a missing JupyterLab or Chromium is a failure, not a skip.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "chapters" / "_ext"))

from lab_contents import FOLD_KEY, fold_solutions, house_style, unfold_solutions  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
CHAPTER = "chapters/what-is-attention.md"


def notebook_chapters() -> list[Path]:
    return sorted(p for p in (ROOT / "chapters").glob("**/*.md") if "kernelspec:" in p.read_text()[:600])


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed (bash .ci/setup.sh installs it)")
    pytest.skip(f"{what} is not installed")


# ---- text: no Lab needed ------------------------------------------------------------------------

@pytest.mark.parametrize("md", notebook_chapters(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_chapter_is_in_canonical_jupytext_form(md: Path) -> None:
    """Reading the chapter as a notebook and writing it back gives the same bytes."""
    text = md.read_text()
    nb = jupytext.reads(text, fmt="md:myst")
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "myst"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    again = house_style(jupytext.writes(nb, fmt="md:myst"), like=text)
    assert again == text, "not canonical: `jupytext --to md:myst` would rewrite it (see lab_contents.house_style)"


@pytest.mark.parametrize("md", notebook_chapters(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_folded_notebook_saves_back_to_the_same_bytes(md: Path) -> None:
    """Fold the solutions, pass the notebook through JSON as JupyterLab does, unfold, write."""
    text = md.read_text()
    nb = fold_solutions(jupytext.reads(text, fmt="md"))
    nbformat.validate(nb)
    hidden = [c for c in nb.cells if c.metadata.get("jupyter", {}).get("source_hidden")]
    assert len(hidden) >= text.count("{solution-start}"), "every solution has at least one folded cell"
    for cell in hidden:
        assert FOLD_KEY in cell.metadata
    lab = nbformat.reads(nbformat.writes(nb), as_version=4)
    lab.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    back = unfold_solutions(copy.deepcopy(lab))
    back.metadata["kernelspec"] = jupytext.reads(text, fmt="md").metadata["kernelspec"]
    assert house_style(jupytext.writes(back, fmt="md:myst"), like=text) == text


def test_solution_prose_and_code_are_folded_but_the_exercise_is_not() -> None:
    nb = fold_solutions(jupytext.reads((ROOT / CHAPTER).read_text(), fmt="md"))
    shown = "\n".join(c.source for c in nb.cells if not c.metadata.get("jupyter", {}).get("source_hidden"))
    folded = "\n".join(c.source for c in nb.cells if c.metadata.get("jupyter", {}).get("source_hidden"))
    assert "Subtract the row maximum" in folded and "Subtract the row maximum" not in shown
    assert ":::{exercise} Masked softmax" in shown and ":::{exercise}" not in folded
    assert "from attnkit.viz import frame_slider" in folded  # hide-input plumbing, as in the book


def lab_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-lab.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements-lab.txt pins exact versions; got {line!r}"
            pins[name] = version
    return pins


def test_the_readme_command_sets_up_and_opens_the_course_in_jupyterlab() -> None:
    assert set(lab_pins()) == {"jupyterlab", "jupyterlab-myst", "jupytext"}
    assert "-r requirements-lab.txt" in (ROOT / ".ci" / "setup.sh").read_text()
    lab_sh = (ROOT / ".ci" / "lab.sh").read_text()
    assert "bash .ci/setup.sh" in lab_sh and "jupyter lab --config=jupyter_server_config.py" in lab_sh
    assert "bash .ci/lab.sh" in (ROOT / "README.md").read_text()
    assert "bash .ci/lab.sh" in (ROOT / "chapters" / "how-to-use.md").read_text()
    overrides = json.loads((ROOT / ".ci" / "lab" / "overrides.json").read_text())
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == "Jupytext Notebook"


# ---- a real JupyterLab --------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """JupyterLab as ``.ci/lab.sh`` starts it, serving a copy of the chapters; yields (url, root)."""
    for module in ("jupyterlab", "jupyterlab_myst", "jupyter_server"):
        if importlib.util.find_spec(module) is None:
            _missing(f"{module} (requirements-lab.txt)")
    from importlib.metadata import version

    wrong = {n: version(n) for n, v in lab_pins().items() if version(n) != v}
    if wrong:
        pytest.fail(f"installed {wrong}, requirements-lab.txt pins {lab_pins()}: run bash .ci/setup.sh")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "course"
    shutil.copytree(ROOT / "chapters", root / "chapters", ignore=shutil.ignore_patterns("__pycache__"))
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # render every cell (JupyterLab 4 renders only the visible ones by default), so that the
    # test can read the whole notebook without scrolling
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "ws"),
               JUPYTER_DATA_DIR=str(tmp / "data"), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    port = _free_port()
    cmd = [sys.executable, "-m", "jupyterlab", f"--config={ROOT / 'jupyter_server_config.py'}",
           f"--ServerApp.root_dir={root}", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
           "--allow-root"]
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/api/status", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start in 60 s:\n" + (tmp / "lab.log").read_text()[-3000:])
        if proc.poll() is not None:
            pytest.fail("JupyterLab exited:\n" + (tmp / "lab.log").read_text()[-3000:])
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _api(url: str, path: str, method: str = "GET", body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@pytest.mark.browser
def test_server_opens_every_chapter_as_a_notebook_and_saves_the_same_bytes(lab) -> None:
    """Through JupyterLab's REST API: get each chapter as a notebook, save it as JupyterLab would."""
    url, root = lab
    for md in notebook_chapters():
        rel = md.relative_to(ROOT).as_posix()
        model = _api(url, f"/api/contents/{rel}?type=notebook&content=1")
        assert model["type"] == "notebook", rel
        nb = model["content"]
        assert any(c["metadata"].get(FOLD_KEY) for c in nb["cells"]), f"{rel}: nothing folded"
        # what JupyterLab sends back after running the notebook: its own kernelspec, outputs
        nb["metadata"]["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                        "name": "python3"}
        nb["metadata"]["language_info"] = {"name": "python", "version": "3.11"}
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["execution_count"] = 1
                cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
        _api(url, f"/api/contents/{rel}", "PUT", {"type": "notebook", "format": "json", "content": nb})
        assert (root / rel).read_bytes() == md.read_bytes(), f"{rel}: saving changed the file"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        _missing("Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def _visible_frames(page, cell) -> list[str]:
    """Sources of the images shown (not hidden in the frame stack) in a cell's output."""
    return cell.evaluate("c => [...c.querySelectorAll('.jp-OutputArea img')]"
                         ".filter(i => i.offsetParent !== null).map(i => i.src)")


@pytest.mark.browser
def test_double_click_opens_a_chapter_that_runs_renders_and_saves_unchanged(lab, browser) -> None:
    url, root = lab
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    blocked: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    def route(r):
        if urlparse(r.request.url).hostname in ("127.0.0.1", "localhost") or r.request.url.startswith("data:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url + "/lab?reset", wait_until="domcontentloaded")

    # 1. double-click the chapter in the file browser: it opens as a notebook, not as text
    page.locator(".jp-DirListing-item[data-isdir='true']", has_text="chapters").first.dblclick(timeout=60_000)
    item = page.locator(".jp-DirListing-item", has_text=Path(CHAPTER).name)
    item.dblclick(timeout=30_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-MarkdownCell .myst", timeout=60_000)
    assert page.locator(".jp-FileEditor").count() == 0, "the chapter opened in the text editor"
    panel = page.locator(".jp-NotebookPanel").first

    # 2. MyST rendered: exercises and admonitions are blocks, no directive or role left as text
    page.wait_for_selector(".jp-MarkdownCell aside.myst-exercise", state="attached", timeout=30_000)
    assert panel.locator("aside.myst-exercise").count() >= 3
    assert panel.locator(".jp-MarkdownCell aside[class*='admonition']").count() >= 2
    rendered = "\n".join(panel.locator(".jp-MarkdownCell .myst").all_inner_texts())
    for raw in (":::", "{exercise}", "{solution-start}", "{cite:p}", "{doc}", ":label:"):
        assert raw not in rendered, f"raw MyST {raw!r} in the rendered notebook"

    # 3. solutions folded: a bar (previewing the first line) instead of the rendered solution
    assert panel.locator(".jp-InputPlaceholder").count() >= 6
    shown = "\n".join(panel.locator(".jp-MarkdownCell .myst").all_inner_texts())
    assert "Subtract the row maximum" not in shown, "a solution is shown unfolded"
    assert "Subtract the row maximum" in "\n".join(panel.locator(".jp-InputPlaceholder").all_inner_texts())

    # 4. run all cells: every code cell gets an execution count, none raises
    page.click("li.lm-MenuBar-item:has-text('Run')")
    page.click(".lm-Menu-item:has-text('Run All Cells')")
    page.wait_for_timeout(1000)
    deadline = time.time() + 240
    prompts: list[str] = []
    while time.time() < deadline:
        # folded cells show no prompt; every other code cell shows [*] until it has run, then [n]
        prompts = [p.strip() for p in panel.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents() if p.strip()]
        if prompts and all(p[1:-2].isdigit() for p in prompts):
            break
        time.sleep(2)
    assert prompts and all(p[1:-2].isdigit() for p in prompts), f"not every cell ran: {prompts}"
    errors_out = panel.locator("[data-mime-type='application/vnd.jupyter.error']")
    assert errors_out.count() == 0, errors_out.first.inner_text()
    ran = _api(url, "/api/sessions")
    assert ran and ran[0]["kernel"]["execution_state"] == "idle"

    # 5. the slider is live: moving it shows another frame
    slider_cell = panel.locator(".jp-CodeCell", has=page.locator(".widget-slider")).first
    slider_cell.scroll_into_view_if_needed()
    before = _visible_frames(page, slider_cell)
    assert len(before) == 1, before
    handle = slider_cell.locator(".noUi-handle").first
    handle.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(500)
    after = _visible_frames(page, slider_cell)
    assert after and after != before, "moving the slider did not change the figure"

    # 6. save: the file is byte for byte the chapter (outputs are not stored in the .md)
    saved_before = (root / CHAPTER).stat().st_mtime_ns
    panel.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    for _ in range(40):
        if (root / CHAPTER).stat().st_mtime_ns != saved_before:
            break
        page.wait_for_timeout(250)
    assert (root / CHAPTER).stat().st_mtime_ns != saved_before, "Ctrl+S did not save the notebook"
    page.wait_for_timeout(500)
    assert (root / CHAPTER).read_bytes() == (ROOT / CHAPTER).read_bytes(), "saving in JupyterLab changed the chapter"

    assert not blocked, f"requests to the network: {blocked}"
    assert not [e for e in errors if "favicon" not in e], errors
    page.close()
