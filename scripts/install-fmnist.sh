#!/usr/bin/env bash
# Installs the Fashion-MNIST files (Debian package dataset-fashion-mnist, 31 MB, idx files in
# /usr/share/datasets/fashion-mnist/) that the benchmarks and their self-checks read. Needs root
# or sudo; does nothing when the files are there.
set -euo pipefail
[ -d /usr/share/datasets/fashion-mnist ] && exit 0
SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
echo "[install-fmnist] installing dataset-fashion-mnist"
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 \
  || { "${SUDO[@]}" apt-get update -qq >/dev/null 2>&1 || true
       "${SUDO[@]}" apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null; }
