"""Benchmarks: ``python -m attnkit.bench <name> [options]``.

Each benchmark is a module ``attnkit.bench.<name>`` with a ``main(argv) -> int`` that prints a
table and writes its results (JSON, figure) to ``--out`` (default ``bench-results/``). Speed and
memory targets are checked here, never in timed test assertions.
"""

from __future__ import annotations

import importlib
import pkgutil


def available() -> list[str]:
    """Names of the benchmarks in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def run(name: str, argv: list[str]) -> int:
    """Run benchmark ``name`` with command-line arguments ``argv``."""
    if name not in available():
        raise SystemExit(f"unknown benchmark {name!r}; choose one of {available()}")
    module = importlib.import_module(f"attnkit.bench.{name}")
    return int(module.main(argv) or 0)
