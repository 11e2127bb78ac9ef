#!/usr/bin/env bash
# Runs the backend smoke tests (fit, transform, save, load) and the two-device training test
# under another Keras backend, in its own virtualenv (.venv-BACKEND) that holds that backend and no TensorFlow. This checks that
# the engine code stays backend-neutral. Idempotent: the environment is built once.
#
# Usage: scripts/test-backend.sh jax|torch
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BACKEND="${1:-jax}"
VENV="$REPO/.venv-$BACKEND"
CONSTRAINTS="$REPO/R-package/inst/python/constraints.txt"
case "$BACKEND" in
  jax) PACKAGES=("jax[cpu]") ;;
  torch) PACKAGES=(torch --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple) ;;
  *) echo "usage: $0 jax|torch" >&2; exit 2 ;;
esac
log() { printf '[test-backend] %s\n' "$*"; }

stamp="$VENV/.ivis-setup-stamp"
want="$(cat "$REPO/pyproject.toml" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "creating $VENV with the $BACKEND backend"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" 2>&1 | { grep -v '^WARNING: Location' || true; }
  # The core without its TensorFlow extra: this environment must work without TensorFlow.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$CONSTRAINTS" -e "$REPO" pytest 2>&1 \
    | { grep -v '^WARNING: Location' || true; }
  echo "$want" > "$stamp"
fi
if "$VENV/bin/python" -c 'import tensorflow' 2>/dev/null; then
  echo "[test-backend] ERROR: TensorFlow is installed in $VENV; the check would not be meaningful." >&2
  exit 1
fi
log "running the smoke tests with KERAS_BACKEND=$BACKEND"
KERAS_BACKEND="$BACKEND" IVIS_EXPECT_BACKEND="$BACKEND" "$VENV/bin/python" -m pytest "$REPO/tests/test_backend_smoke.py" \
  "$REPO/tests/test_training_devices.py" -q -p no:cacheprovider
