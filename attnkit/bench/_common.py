"""What the CPU benchmarks share: where and when the numbers were taken, and writing the results."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch


def provenance(command: str) -> dict:
    """Date, commit, machine, versions, threads, the load and the exact ``command`` of a run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": commit,
        "machine": f"{cpu}, {os.cpu_count()} logical cores (shared), {platform.system()} {platform.release()}",
        "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "command": command,
        "load_average_1_5_15_min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def write_results(out: Path, name: str, data: dict, plot: Callable[[dict], object] | None) -> list[Path]:
    """Write ``out/<name>.json`` and, unless ``plot`` is None, ``out/<name>.png`` drawn by ``plot(data)``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.json"]
    written[0].write_text(json.dumps(data, indent=1))
    if plot is not None:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plot(data)
        fig.savefig(out / f"{name}.png", dpi=110)
        plt.close(fig)
        written.append(out / f"{name}.png")
    return written
