"""Shared test set-up: deterministic seeds and hypothesis settings for a 2-core CI machine."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Train tiny models on one thread: two threads spin badly when the two CI cores are busy.

    Use it per test (an argument) or per file (``pytestmark = pytest.mark.usefixtures("one_thread")``).
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- the book, built once per test session ---------------------------------------------------

import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class BookBuild:
    returncode: int
    log: str
    html: Path

    @property
    def warnings(self) -> list[str]:
        return [ln for ln in self.log.splitlines()
                if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", ln) and "IPKernelApp" not in ln]


@pytest.fixture(scope="session")
def built_book() -> BookBuild:
    """Run the strict book build once (it executes every chapter, with the jupyter-cache).

    ``ATTNKIT_BOOK_HTML=/path/to/_build/html`` checks that build instead of building (a partial
    book from ``.ci/check_chapter.py``, while working on the tests): pages it lacks are skipped.
    """
    prebuilt = os.environ.get("ATTNKIT_BOOK_HTML")
    if prebuilt:
        html = Path(prebuilt)
        log = html.parent.parent / "build.log"
        return BookBuild(0, log.read_text() if log.exists() else "", html)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--all", "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    log = proc.stdout + proc.stderr
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "build.log").write_text(log)
    return BookBuild(proc.returncode, log, ROOT / "_build" / "html")
