#!/usr/bin/env bash
# Installs the Java runtime that PySpark needs (Debian's default-jre-headless), for the Spark
# tests of ivis.distributed. Idempotent: does nothing when `java` already runs.
set -euo pipefail

log() { printf '[setup-java] %s\n' "$*"; }

if java -version >/dev/null 2>&1; then
  log "Java runtime: already installed ($(java -version 2>&1 | head -n 1))"
  exit 0
fi
# shellcheck source=lib/sudo.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/sudo.sh"
export DEBIAN_FRONTEND=noninteractive
log "Java runtime: installing default-jre-headless"
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends default-jre-headless >/dev/null 2>&1; then
  log "Java runtime: refreshing the package lists and retrying"
  "${SUDO[@]}" apt-get update -q >/dev/null 2>&1 || true
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends default-jre-headless >/dev/null
fi
java -version >/dev/null 2>&1 || { echo "[setup-java] ERROR: java does not run after installing default-jre-headless" >&2; exit 1; }
