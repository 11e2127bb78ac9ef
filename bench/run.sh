#!/usr/bin/env bash
# Run the ivis benchmark suite. See bench/README.md.
#
#   bash bench/run.sh [--quick] [--workloads digits,fmnist,primes100k,primes1m,hdf5]
#                     [--methods ivis,umap,pca,ivis_prev] [--name NAME] [...]
#
# Uses the project's venv (.venv, set up with umap-learn when it lacks it) unless
# IVIS_BENCH_PYTHON names another interpreter; installs the Fashion-MNIST Debian package.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${IVIS_BENCH_PYTHON:-$repo/.venv/bin/python}"
if [[ -z "${IVIS_BENCH_PYTHON:-}" ]] && ! "$python" -c 'import ivis, umap' >/dev/null 2>&1; then
    # The project's venv with the benchmark extra (umap-learn), pinned like everything else.
    "$repo/scripts/setup-python.sh" cpu,plot,image,test,bench
fi
"$repo/scripts/install-fmnist.sh" || echo "bench/run.sh: could not install dataset-fashion-mnist; its workloads will fail" >&2
if [[ ! -x "$python" ]]; then
    echo "bench/run.sh: no interpreter at $python (create the project's .venv or set IVIS_BENCH_PYTHON)" >&2
    exit 2
fi

# The suite records "bash bench/run.sh <arguments>" as the exact command.
export IVIS_BENCH_ENTRY="bash bench/run.sh"
cd "$repo"
exec "$python" "$here/suite.py" "$@"
