#!/usr/bin/env bash
# Set everything up from scratch, idempotently: a virtual environment with the Python packages
# and attnkit (editable), JupyterLab with its MyST and Jupytext extensions (requirements-lab.txt,
# for .ci/lab.sh), the JavaScript the offline book needs (MathJax, require.js, the ipywidgets
# embed manager: fetched with npm, not committed), and Chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_updated=0
apt_install() {
  [ "$apt_updated" = 1 ] || { as_root apt-get update -qq && apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# 1. Python packages ------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $PY"
  "$PY" -m venv .venv
fi
echo "[setup] installing requirements.txt, requirements-lab.txt (JupyterLab) and attnkit (pip)"
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-lab.txt -e . 2>&1 \
  | grep -v -E "^WARNING: Location .* is ignored" || true
.venv/bin/python -c "import attnkit, torch; print('[setup] attnkit', attnkit.__version__, '| torch', torch.__version__)"

# 2. JavaScript for the offline book (npm registry) ----------------------------------------
if [ ! -f _vendor/mathjax/tex-mml-chtml.js ] || [ ! -f _vendor/require.js ] || [ ! -f _vendor/html-manager/embed-amd.js ]; then
  command -v npm >/dev/null || { echo "[setup] installing npm (Debian package)"; apt_install npm; }
  echo "[setup] vendoring MathJax, require.js and @jupyter-widgets/html-manager into _vendor/"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @jupyter-widgets/html-manager@1.0.6 requirejs@2.3.7 mathjax@3 >/dev/null)
  rm -rf _vendor && mkdir -p _vendor/html-manager _vendor/mathjax
  for f in "$tmp"/*.tgz; do mkdir -p "$tmp/x" && tar -xzf "$f" -C "$tmp/x" && case "$f" in
      *html-manager*) cp -r "$tmp/x/package/dist/." _vendor/html-manager/ ;;
      *requirejs*) cp "$tmp/x/package/require.js" _vendor/require.js ;;
      *mathjax*) cp -r "$tmp/x/package/es5/." _vendor/mathjax/ ;;
    esac; rm -rf "$tmp/x"; done
  rm -rf "$tmp"
fi

# 3. Chromium for the browser test ---------------------------------------------------------
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  echo "[setup] installing Chromium (Debian package chromium)"
  apt_install chromium || echo "[setup] WARNING: could not install Chromium; the browser test will skip outside CI"
fi
echo "[setup] done"
