"""JupyterLab's view of the chapters: solutions folded, saves that change nothing but edits.

``jupyter_server_config.py`` (repository root, used by ``.ci/lab.sh``) makes this the server's
contents manager. It is Jupytext's (a chapter ``.md`` opens as a notebook) with three changes:

- **Solutions folded.** A chapter's solution runs from ``:::{solution-start} label`` to
  ``:::{solution-end}``. On opening, the markdown cells are split at those two directives, so
  that the solution's prose and code are cells of their own, and those cells are marked hidden
  (``metadata.jupyter.source_hidden``, and ``outputs_hidden`` for code): JupyterLab shows each as
  a folded bar that a click opens. The book folds the same blocks into a drop-down.
  Code cells the book shows folded (``hide-input``, ``remove-input``: plotting and widget
  plumbing) are folded the same way, with their figures shown.
- **Byte-identical saves.** On saving, the split cells are joined again, the folding marks are
  removed, and the text keeps the chapter's own layout (no ``jupytext_version`` line where the
  chapter has none; code-cell options followed by a blank line only where the chapter does so).
  Saving a chapter that was opened, run and not edited rewrites exactly the same bytes.
- **The kernelspec is kept.** JupyterLab saves the kernel it ran (``Python 3 (ipykernel)``);
  the chapter keeps the kernelspec of its header.

Only ``.md`` notebooks are touched; every other file is served as Jupytext serves it.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

FOLD_KEY = "attnkit_lab"
"""Cell metadata key of the marks this manager adds on opening (removed again on saving)."""

_START = re.compile(r"^:::\{solution-start\}[^\n]*\n(?::[\w-]+:[^\n]*\n)*:::[ \t]*$", re.M)
_END = re.compile(r"^:::\{solution-end\}[^\n]*\n(?::[\w-]+:[^\n]*\n)*:::[ \t]*$", re.M)
_OPTIONS_THEN_BLANK = re.compile(r"(^```\{code-cell\}[^\n]*\n(?::[\w-]+:[^\n]*\n)+)\n", re.M)


def _markdown(source: str, mark: dict[str, Any]) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": None, "metadata": {FOLD_KEY: mark}, "source": source}


def _split(source: str) -> list[tuple[str, str]]:
    """Split a markdown cell at solution directives: [(piece, separator before it), ...]."""
    cuts = sorted({m.start() for m in _START.finditer(source)} | {m.start() for m in _END.finditer(source)}
                  | {m.end() for m in _START.finditer(source)} | {m.end() for m in _END.finditer(source)})
    pieces: list[tuple[str, str]] = []
    last, pending_sep = 0, ""
    for cut in [*cuts, len(source)]:
        chunk = source[last:cut]
        body = chunk.strip("\n")
        lead = chunk[:len(chunk) - len(chunk.lstrip("\n"))]
        trail = chunk[len(lead) + len(body):]
        if body:
            pieces.append((body, pending_sep + lead))
            pending_sep = trail
        else:
            pending_sep += chunk
        last = cut
    if pieces and pending_sep:  # trailing newlines of the cell belong to its last piece
        body, sep = pieces[-1]
        pieces[-1] = (body + pending_sep, sep)
    return pieces


def fold_solutions(nb: Any) -> Any:
    """Split markdown cells at the solution directives and mark the solution's cells hidden."""
    import nbformat

    cells = []
    for cell in nb.cells:
        if cell.cell_type != "markdown" or not (_START.search(cell.source) or _END.search(cell.source)):
            cells.append(cell)
            continue
        for i, (piece, sep) in enumerate(_split(cell.source)):
            if i == 0:
                first = copy.deepcopy(cell)
                first.source = piece
                cells.append(first)
            else:
                cells.append(nbformat.from_dict(_markdown(piece, {"join": sep})))
    inside = False
    for cell in cells:
        if cell.cell_type == "markdown" and _START.fullmatch(cell.source.strip("\n")):
            inside = True
            continue
        if cell.cell_type == "markdown" and _END.fullmatch(cell.source.strip("\n")):
            inside = False
            continue
        tags = set(cell.metadata.get("tags", []))
        if not inside and cell.cell_type == "code" and tags & {"hide-input", "remove-input"}:
            # plotting plumbing: folded in the book, folded here (the figure stays shown)
            jupyter = cell.metadata.setdefault("jupyter", {})
            if "source_hidden" not in jupyter:
                jupyter["source_hidden"] = True
                cell.metadata.setdefault(FOLD_KEY, {})["hidden"] = ["source_hidden"]
        if inside:
            jupyter = cell.metadata.setdefault("jupyter", {})
            added = [k for k in ("source_hidden", "outputs_hidden") if k not in jupyter
                     and (k == "source_hidden" or cell.cell_type == "code")]
            for k in added:
                jupyter[k] = True
            cell.metadata.setdefault(FOLD_KEY, {})["hidden"] = added
    for i, cell in enumerate(cells):
        if "id" in cell and cell.get("id") is None:
            cell["id"] = f"attnkit-{i}"
    nb.cells = cells
    return nb


def unfold_solutions(nb: Any) -> Any:
    """Undo :func:`fold_solutions`: join split cells, remove the folding marks."""
    cells = []
    for cell in nb.cells:
        mark = cell.metadata.pop(FOLD_KEY, None) or {}
        jupyter = cell.metadata.get("jupyter", {})
        for k in mark.get("hidden", []):
            jupyter.pop(k, None)
        if "jupyter" in cell.metadata and not jupyter:
            del cell.metadata["jupyter"]
        if "join" in mark and cells and cells[-1].cell_type == "markdown" and cell.cell_type == "markdown":
            cells[-1].source = cells[-1].source + mark["join"] + cell.source
        else:
            cells.append(cell)
    nb.cells = cells
    return nb


def house_style(text: str, like: str | None) -> str:
    """Give Jupytext's text the layout of the chapter ``like`` (its previous version)."""
    if like is None:
        return text
    head = like.split("\n---", 2)[0] if like.startswith("---") else ""
    if "jupytext_version:" not in head:
        text = re.sub(r"^    jupytext_version: [^\n]*\n", "", text, count=1, flags=re.M)
    if like.count("```{code-cell}") and not _OPTIONS_THEN_BLANK.search(like):
        text = _OPTIONS_THEN_BLANK.sub(r"\1", text)
    return text


def _build_manager() -> type:
    """The contents manager class (built on first use: it needs jupyter_server, from requirements-lab.txt)."""
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext import build_async_jupytext_contents_manager_class

    _Base = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)

    class BookContentsManager(_Base):
        """Jupytext's contents manager, with solutions folded and saves that keep the chapter's bytes."""

        def _is_chapter(self, path: str) -> bool:
            return path.endswith(".md")

        def _read_text(self, path: str) -> str | None:
            os_path = self._get_os_path(path.strip("/"))
            if not os.path.isfile(os_path):
                return None
            with open(os_path, encoding="utf-8", newline="") as f:
                return f.read()

        async def get(self, path: str, content: bool = True, type: str | None = None, format: str | None = None,
                      **kwargs: Any) -> dict[str, Any]:
            model = await super().get(path, content=content, type=type, format=format, **kwargs)
            if content and model.get("type") == "notebook" and self._is_chapter(path) and model.get("content"):
                fold_solutions(model["content"])
            return model

        async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
            if model.get("type") != "notebook" or not self._is_chapter(path):
                return await super().save(model, path)
            import nbformat

            before = self._read_text(path)
            model = dict(model)
            nb = nbformat.from_dict(copy.deepcopy(model["content"]))
            unfold_solutions(nb)
            if before is not None:
                import jupytext

                old = jupytext.reads(before, fmt="md")
                if "kernelspec" in old.metadata:
                    nb.metadata["kernelspec"] = old.metadata["kernelspec"]
            model["content"] = nb
            saved = await super().save(model, path)
            after = self._read_text(path)
            if after is not None and before is not None:
                styled = house_style(after, before)
                if styled != after:
                    with open(self._get_os_path(path.strip("/")), "w", encoding="utf-8", newline="") as f:
                        f.write(styled)
                    saved = await super().get(path, content=False)
            return saved

    return BookContentsManager


def __getattr__(name: str) -> Any:
    # ``lab_contents.BookContentsManager`` (jupyter_server_config.py) builds the class; the
    # functions above import without JupyterLab installed (tests/test_lab.py uses them)
    if name == "BookContentsManager":
        cls = _build_manager()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
