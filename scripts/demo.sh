#!/usr/bin/env bash
# The main job: sets up the Python environment if needed, then runs the ivis command line on
# its built-in dataset (scikit-learn's handwritten digits), writing an embedding and a plot.
# Extra arguments go to the ivis command, e.g. `scripts/demo.sh --epochs 50`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$REPO/scripts/setup-python.sh"
cd "$REPO"
exec "${IVIS_VENV:-$REPO/.venv}/bin/ivis" --output-dir ivis-output --overwrite --random-state 0 "$@"
