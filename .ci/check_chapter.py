"""Build a few chapters alone, strictly, in a scratch folder: a quick check while writing them.

    .venv/bin/python .ci/check_chapter.py chapters/part1/fast-weights.md [more chapters ...]

It writes a temporary table of contents with the start pages, the reference pages and the
given chapters, runs ``jupyter-book build -W -n --keep-going`` into ``/tmp/chapter-check/<name>``
(its own execution cache, so several authors can check at once), and prints each notebook's
run time and the warnings. The full book build (``bash .ci/book.sh``) is still the real test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(chapters: list[str]) -> int:
    if not chapters:
        print(__doc__)
        return 2
    docs = []
    for c in chapters:
        p = (ROOT / c).resolve()
        if not p.exists():
            print(f"no such chapter: {c}")
            return 2
        docs.append(p.relative_to(ROOT).with_suffix("").as_posix())
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", "-".join(Path(d).name for d in docs))[:80]
    out = Path(tempfile.gettempdir()) / "chapter-check" / name
    out.mkdir(parents=True, exist_ok=True)
    fixed = {"chapters/intro", "chapters/how-to-use", "chapters/what-is-attention"}
    extra = [d for d in docs if d not in fixed]
    checked = "".join(f"      - file: {d}\n" for d in extra)
    toc = out / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: chapters/intro\nparts:\n  - caption: Start here\n    chapters:\n"
        "      - file: chapters/how-to-use\n      - file: chapters/what-is-attention\n"
        + (f"  - caption: Checked\n    chapters:\n{checked}" if extra else "")
        + "  - caption: Reference\n    chapters:\n      - file: chapters/reference/api\n"
        "      - file: chapters/reference/conventions\n"
        "      - file: chapters/reference/bibliography\n      - file: chapters/reference/execution\n"
    )
    jb = shutil.which("jupyter-book", path=str(ROOT / ".venv" / "bin")) or "jupyter-book"
    cmd = [jb, "build", str(ROOT), "--toc", str(toc), "--path-output", str(out), "-W", "-n", "--keep-going"]
    print("running:", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (out / "build.log").write_text(log)
    warnings = [ln for ln in log.splitlines() if re.search(r"WARNING|ERROR", ln) and "IPKernelApp" not in ln]
    # the start pages link chapters (the history table, the first chapter's pointers ahead) that
    # this partial book leaves out: those links cannot resolve here
    expected = [w for w in warnings if "unknown document" in w and any(f"{d}.md" in w for d in fixed)]
    warnings = [w for w in warnings if w not in expected]
    print("\n".join(warnings) or "no warnings")
    print(f"({len(expected)} links from the start pages to chapters outside this check ignored)")
    reports = sorted((out / "_build" / "html" / "reports").glob("**/*.log"))
    for r in reports:
        print(f"--- execution report {r.name} ---\n{r.read_text()[-4000:]}")
    html = out / "_build" / "html" / "chapters" / "reference" / "execution.html"
    if html.exists():
        text = re.sub(r"<[^>]+>", " ", html.read_text())
        for d in docs:
            m = re.search(re.escape(d) + r"\s+(\S+ \S+)\s+(\S+)\s+(\S+)\s+(\S+)", text)
            if m:
                print(f"{d}: run time {m.group(3)} s, status {m.group(4)}")
    print(f"build log: {out / 'build.log'}; html: {out / '_build' / 'html'}")
    failed = bool(warnings) or bool(reports) or (proc.returncode != 0 and not expected)
    ok = proc.returncode == 0 or not failed
    print("OK" if ok else f"FAILED (exit {proc.returncode})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
