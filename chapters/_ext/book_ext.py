"""Small Sphinx fixes for the book, loaded through ``local_extensions`` in ``_config.yml``.

- Jupyter Book 1 registers sphinx-thebe's configuration script twice on notebook pages, which
  the browser reports as ``Identifier 'THEBE_JS_URL' has already been declared``: keep one.
- pydata-sphinx-theme starts with an empty colour mode when none is stored, and logs
  ``Got invalid theme mode``: default to ``auto`` explicitly.
- Offer every executed chapter as an ``.ipynb`` download with its outputs and widget state.
  sphinx-book-theme already copies ``_build/jupyter_execute/<docname>.ipynb`` into the
  downloads, but in cache mode MyST-NB writes that file without outputs; so, just before the
  theme copies it, rewrite it with the outputs from the execution cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx


def _fix_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    context["default_mode"] = context.get("default_mode") or "auto"
    seen = set()
    unique = []
    for js in context.get("script_files", []):
        # the same inline script may be registered once with filename None and once with ''
        key = (getattr(js, "filename", None) or "", tuple(sorted(getattr(js, "attributes", {}).items())))
        if key in seen:
            continue
        seen.add(key)
        unique.append(js)
    context["script_files"] = unique


def _offer_notebook(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    source = Path(app.srcdir) / f"{pagename}.md"
    build = Path(app.outdir).parent
    executed = build / "jupyter_execute" / f"{pagename}.ipynb"
    if not (source.exists() and executed.exists() and (build / ".jupyter_cache").exists()):
        return
    import nbformat
    from jupyter_cache import get_cache
    from myst_nb.core.read import read_myst_markdown_notebook

    try:
        _, nb = get_cache(build / ".jupyter_cache").merge_match_into_notebook(
            read_myst_markdown_notebook(source.read_text(encoding="utf8")))
    except KeyError:  # not executed through the cache: keep MyST-NB's copy
        return
    nbformat.write(nb, executed)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _offer_notebook, priority=400)  # before the theme's buttons
    app.connect("html-page-context", _fix_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
