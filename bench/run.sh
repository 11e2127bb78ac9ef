#!/usr/bin/env bash
# Run the ivis benchmark suite. See bench/README.md.
#
#   bash bench/run.sh [--quick] [--workloads digits,fmnist,primes100k,primes1m,hdf5]
#                     [--methods ivis,umap,pca,ivis_prev] [--name NAME] [...]
#
# Uses the project's venv (.venv) unless IVIS_BENCH_PYTHON names another interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${IVIS_BENCH_PYTHON:-$repo/.venv/bin/python}"
if [[ ! -x "$python" ]]; then
    echo "bench/run.sh: no interpreter at $python (create the project's .venv or set IVIS_BENCH_PYTHON)" >&2
    exit 2
fi

# The suite records "bash bench/run.sh <arguments>" as the exact command.
export IVIS_BENCH_ENTRY="bash bench/run.sh"
cd "$repo"
exec "$python" "$here/suite.py" "$@"
