#!/usr/bin/env bash
# Creates (or updates) the project's Python environment, idempotently: the virtualenv in
# $IVIS_VENV (default .venv) with the ivis core installed in editable mode and its pinned
# dependencies (R-package/inst/python/constraints.txt, the one list of pins that install_ivis()
# uses too). A second run only checks a stamp and takes a second.
#
# Usage: scripts/setup-python.sh [EXTRAS]     EXTRAS defaults to "cpu,plot,image,test,onnx,dask,spark"
# (onnx: the ONNX exporter and onnxruntime, which the export tests run; dask, spark: the
# distributed tests; the test extra brings anndata and scanpy for tests/test_anndata.py and
# docs/single-cell.md)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IVIS_VENV="${IVIS_VENV:-$REPO/.venv}"
EXTRAS="${1:-cpu,plot,image,test,onnx,dask,spark}"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$REPO/R-package/inst/python/constraints.txt"

log() { printf '[setup-python] %s\n' "$*"; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "[setup-python] ERROR: Python >= 3.10 is needed ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi
if [ ! -x "$IVIS_VENV/bin/python" ]; then
  log "creating the virtualenv $IVIS_VENV"
  "$PYTHON" -m venv "$IVIS_VENV"
fi

# Reinstall only when what decides the installation changed.
stamp="$IVIS_VENV/.ivis-setup-stamp"
want="$(cat "$REPO/pyproject.toml" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1) $EXTRAS"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$IVIS_VENV/bin/python" -c 'import ivis' 2>/dev/null; then
  log "up to date ($IVIS_VENV)"
  exit 0
fi
log "installing ivis[$EXTRAS] with pinned dependencies (about a minute the first time)"
"$IVIS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
# pip's warnings about absent local index mirrors are noise here; real errors still fail the script.
set -o pipefail
"$IVIS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$CONSTRAINTS" -e "$REPO[$EXTRAS]" 2>&1 \
  | { grep -v '^WARNING: Location' || true; }
echo "$want" > "$stamp"
log "ready: $("$IVIS_VENV/bin/python" -c 'import ivis; print("ivis", ivis.__version__)')"
