"""The benchmark dispatcher."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attnkit.bench import available, run


def test_unknown_benchmark_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="unknown benchmark 'nope'"):
        run("nope", [])


def test_cli_lists_benchmarks() -> None:
    out = subprocess.run([sys.executable, "-m", "attnkit.bench", "--help"], capture_output=True, text=True, check=True)
    assert "benchmarks:" in out.stdout
    for name in available():
        assert name in out.stdout
