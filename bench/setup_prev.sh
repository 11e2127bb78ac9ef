#!/usr/bin/env bash
# Create bench/.venv-prev holding the previous ivis release (2.0.11, Keras 2 on TensorFlow < 2.16).
#
# Usage: bash bench/setup_prev.sh [LOGFILE]
#
# IVIS_PREV_VENV overrides the venv location, IVIS_PREV_BASE_PYTHON the interpreter it is made from.
#
# Idempotent: a venv that already carries the `.ready` marker is left alone. Exits non-zero when
# the release cannot be installed; the last lines of the log then say why.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${IVIS_PREV_VENV:-$here/.venv-prev}"
log="${1:-/dev/stderr}"
base_python="${IVIS_PREV_BASE_PYTHON:-python3.11}"

if [[ -f "$venv/.ready" ]]; then
    exit 0
fi

{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) creating $venv with $base_python"
    rm -rf "$venv"
    "$base_python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # TensorFlow 2.16 moved to Keras 3, which ivis 2.0.11 does not support.
    "$venv/bin/python" -m pip install 'tensorflow-cpu<2.16' 'ivis==2.0.11'
    "$venv/bin/python" -c 'import ivis, tensorflow as tf; print("ivis", ivis.__version__ if hasattr(ivis, "__version__") else "?", "tensorflow", tf.__version__)'
} >>"$log" 2>&1

touch "$venv/.ready"
