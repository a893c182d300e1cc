#!/usr/bin/env bash
# Set up (if needed) and build the book: HTML in _build/html, every chapter executed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
.venv/bin/jupyter-book build . --all -W -n --keep-going "$@"
echo "Open _build/html/index.html"
