#!/usr/bin/env bash
# Set up (if needed) and run every test: lint, unit tests, the strict book build (which
# executes each chapter once) with its checks, and the headless-browser test of the built book.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
echo "[test] ruff check"
.venv/bin/ruff check .
echo "[test] pytest"
.venv/bin/python -m pytest "$@"
