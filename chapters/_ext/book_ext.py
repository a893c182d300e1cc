"""Small Sphinx fixes for the book, loaded through ``local_extensions`` in ``_config.yml``.

- Jupyter Book 1 registers sphinx-thebe's configuration script twice on notebook pages, which
  the browser reports as ``Identifier 'THEBE_JS_URL' has already been declared``: keep one.
- pydata-sphinx-theme starts with an empty colour mode when none is stored, and logs
  ``Got invalid theme mode``: default to ``auto`` explicitly.
"""

from __future__ import annotations

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


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _fix_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
