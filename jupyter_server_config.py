"""JupyterLab for the course: ``bash .ci/lab.sh`` (or ``jupyter lab --config=jupyter_server_config.py``).

- The contents manager is Jupytext's, so a chapter ``.md`` is a notebook, with the book's
  additions (``chapters/_ext/lab_contents.py``): solutions folded, saves that keep the chapter's
  bytes and kernelspec.
- ``.ci/lab/overrides.json`` holds the settings JupyterLab starts from: a double-click opens a
  Markdown file as a notebook (the ``Jupytext Notebook`` viewer), not in the text editor.
- The MyST directives and roles of the chapters (``{exercise}``, ``{solution-start}``,
  admonitions, ``{cite:p}``) are rendered by the ``jupyterlab-myst`` extension, installed with
  JupyterLab by ``.ci/setup.sh`` (``requirements-lab.txt``).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "chapters" / "_ext"))

c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)
c.ServerApp.root_dir = str(ROOT)
c.ServerApp.contents_manager_class = "lab_contents.BookContentsManager"
c.LabApp.app_settings_dir = str(ROOT / ".ci" / "lab")
c.LabApp.default_url = "/lab/tree/chapters/what-is-attention.md"
