#!/usr/bin/env bash
# Sets up everything the tests need (Python environment, R, reticulate, rpy2, the R package)
# and runs every test suite; exits non-zero if any fails. Idempotent: a second run skips the
# installs that are already done.
#
#   1. Python core: pytest on tests/ (the R parity tests included, required to run).
#   2. The engine under a second Keras backend (JAX): a fit/transform/save/load smoke test.
#   3. R package: testthat, R CMD check and the vignette build (scripts/test-r.sh).
#   4. Benchmark suite self-checks (metrics, workloads, report), not the benchmarks themselves.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export IVIS_VENV="${IVIS_VENV:-$REPO/.venv}"
PY="$IVIS_VENV/bin/python"

step() { printf '\n==== %s\n' "$*"; }

step "setting up Python"
scripts/setup-python.sh
step "setting up Java (for the Spark tests)"
scripts/setup-java.sh
step "setting up R"
scripts/setup-r.sh

step "Python core and R parity tests"
IVIS_REQUIRE_R=1 "$PY" -m pytest tests -q -p no:cacheprovider

step "second Keras backend (JAX)"
scripts/test-backend.sh jax

step "R package: testthat, R CMD check, vignette"
scripts/test-r.sh

step "benchmark suite self-checks"
# Their Fashion-MNIST check reads the Debian package's files.
scripts/install-fmnist.sh
"$PY" -m pytest bench -q -p no:cacheprovider

step "all tests passed"
