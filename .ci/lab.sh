#!/usr/bin/env bash
# Set up (if needed) and open the course in JupyterLab: the chapters open as notebooks on a
# double-click, with MyST rendered (jupyterlab-myst) and the solutions folded. Extra arguments go
# to `jupyter lab` (e.g. --no-browser --port 8890).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
# JupyterLab refuses to start as root (a container, a CI machine) unless told to
as_root=(); [ "$(id -u)" = 0 ] && as_root=(--allow-root)
exec .venv/bin/jupyter lab --config=jupyter_server_config.py "${as_root[@]}" "$@"
