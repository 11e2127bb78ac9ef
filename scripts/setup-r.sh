#!/usr/bin/env bash
# Sets up everything the R package needs, idempotently (a second run takes seconds):
#   1. R 4.2 and the R packages used by ivis, its tests and its vignettes, Seurat and
#      SingleCellExperiment included (Debian packages);
#   2. reticulate 1.41 built from the source tarball of Debian's next release (trixie) into
#      the project-local R library $REPO/.r-lib (Debian 12's reticulate 1.28 cannot convert
#      NumPy 2 arrays and crashes under rpy2);
#   3. rpy2 < 3.6 (the last series that supports R 4.2) in the Python environment $IVIS_VENV;
#   4. an empty local CRAN-like repository and an R profile for `R CMD check` (no network);
#   5. the ivis R package itself, from R-package/, into $REPO/.r-lib (on every run).
# The system's apt configuration is never changed: the source download uses a private sources
# file and private apt state and cache directories under $REPO/.cache/.
#
# Environment: IVIS_VENV (default $REPO/.venv), the Python environment holding the ivis core.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IVIS_VENV="${IVIS_VENV:-$REPO/.venv}"
RLIB="$REPO/.r-lib"
CACHE="$REPO/.cache/r-setup"
RETICULATE_VERSION="1.41"

log() { printf '[setup-r] %s\n' "$*"; }
die() { printf '[setup-r] ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$RLIB" "$CACHE"
# shellcheck source=lib/sudo.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/sudo.sh"

# --- 1. Debian packages ---------------------------------------------------------------------
APT_PACKAGES=(
  r-base-core r-cran-testthat r-cran-knitr r-cran-rmarkdown pandoc r-cran-ggplot2 r-cran-matrix
  # the R dependencies of reticulate (those of Debian 12's r-cran-reticulate, plus rlang)
  r-cran-rcpp r-cran-rcpptoml r-cran-rlang r-cran-jsonlite r-cran-png r-cran-here
  r-cran-withr r-cran-rappdirs
  # the single-cell objects RunIvis() and runIvis() take (suggested; tests and vignette use them)
  r-cran-seurat r-bioc-singlecellexperiment
  # generates man/ and NAMESPACE from the roxygen comments; scripts/test-r.sh checks they agree
  r-cran-roxygen2
  # reticulate and rpy2 compile C/C++ code
  gcc g++ make
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  log "Debian packages: already installed"
else
  log "Debian packages: installing ${missing[*]}"
  APT_LOG="$CACHE/apt-install.log"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$APT_LOG" 2>&1; then
    log "Debian packages: refreshing the package lists and retrying"
    "${SUDO[@]}" apt-get update -q >>"$APT_LOG" 2>&1 || true
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$APT_LOG" 2>&1 \
      || die "apt-get install failed; see $APT_LOG"
  fi
fi
command -v R >/dev/null 2>&1 || die "R is still not on PATH after installing r-base-core"

# --- 2. reticulate from Debian trixie's source tarball ----------------------------------------
desc_version() {  # the Version field of an installed R package, or nothing
  [ -f "$1/DESCRIPTION" ] && sed -n 's/^Version:[[:space:]]*//p' "$1/DESCRIPTION" || true
}
have="$(desc_version "$RLIB/reticulate")"
case "$have" in
  "$RETICULATE_VERSION" | "$RETICULATE_VERSION".*)
    log "reticulate $have: already in $RLIB" ;;
  *)
    log "reticulate: building $RETICULATE_VERSION from Debian trixie's source tarball"
    # The first URI of the system's Debian sources (deb822 first, then one-line format).
    uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
      uri="$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit} $1 == "deb" && $2 ~ /^\[/ {print $3; exit}' /etc/apt/sources.list)"
    fi
    [ -n "$uri" ] || uri="http://deb.debian.org/debian"
    APTDIR="$CACHE/apt"
    mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$CACHE/src"
    signed=""
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] \
      && signed="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    printf 'deb-src %s%s trixie main\n' "$signed" "$uri" >"$APTDIR/sources.list"
    O=(-o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
       -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache"
       -o "APT::Sandbox::User=root")
    tarball="$(ls "$CACHE"/src/r-cran-reticulate_"$RETICULATE_VERSION"*.orig.tar.* 2>/dev/null | head -n 1 || true)"
    if [ -z "$tarball" ]; then
      apt-get "${O[@]}" update -q >"$CACHE/apt-source.log" 2>&1 \
        || die "apt-get update of the private trixie source list failed; see $CACHE/apt-source.log"
      (cd "$CACHE/src" && apt-get "${O[@]}" source --download-only --tar-only r-cran-reticulate) \
        >>"$CACHE/apt-source.log" 2>&1 \
        || die "downloading the reticulate source failed; see $CACHE/apt-source.log"
      tarball="$(ls "$CACHE"/src/r-cran-reticulate_*.orig.tar.* 2>/dev/null | head -n 1 || true)"
    fi
    [ -n "$tarball" ] || die "no reticulate source tarball in $CACHE/src; see $CACHE/apt-source.log"
    case "$(basename "$tarball")" in
      r-cran-reticulate_"$RETICULATE_VERSION"*) ;;
      *) die "Debian trixie now ships $(basename "$tarball"), not reticulate $RETICULATE_VERSION; update RETICULATE_VERSION in $0" ;;
    esac
    rm -rf "$CACHE/build" && mkdir -p "$CACHE/build"
    tar -xf "$tarball" -C "$CACHE/build"
    srcdir="$(dirname "$(find "$CACHE/build" -maxdepth 2 -name DESCRIPTION | head -n 1)")"
    R_LIBS="$RLIB" R CMD INSTALL --library="$RLIB" "$srcdir" >"$CACHE/reticulate-install.log" 2>&1 \
      || die "building reticulate failed; see $CACHE/reticulate-install.log"
    log "reticulate $(desc_version "$RLIB/reticulate"): installed into $RLIB"
    ;;
esac

# --- 3. rpy2 in the Python environment --------------------------------------------------------
PY="$IVIS_VENV/bin/python"
[ -x "$PY" ] || die "no Python at $PY; create the environment first or set IVIS_VENV"
rpy2_version="$("$PY" -c 'import importlib.metadata as m; print(m.version("rpy2"))' 2>/dev/null || true)"
case "$rpy2_version" in
  3.5.*) log "rpy2 $rpy2_version: already in $IVIS_VENV" ;;
  *)
    log "rpy2: installing rpy2<3.6 into $IVIS_VENV"
    "$PY" -m pip install -q "rpy2<3.6" >"$CACHE/rpy2-install.log" 2>&1 \
      || die "pip install 'rpy2<3.6' failed; see $CACHE/rpy2-install.log"
    log "rpy2 $("$PY" -c 'import importlib.metadata as m; print(m.version("rpy2"))'): installed"
    ;;
esac

# --- 4. empty local CRAN-like repository and R profile for R CMD check -------------------------
REPOSDIR="$REPO/.cache/r-repo"
mkdir -p "$REPOSDIR/src/contrib"
[ -f "$REPOSDIR/src/contrib/PACKAGES" ] || : >"$REPOSDIR/src/contrib/PACKAGES"
PROFILE="$REPO/.cache/r-profile.R"
want_profile="options(repos = c(CRAN = \"file://$REPOSDIR\"))"
if [ "$(cat "$PROFILE" 2>/dev/null || true)" != "$want_profile" ]; then
  printf '%s\n' "$want_profile" >"$PROFILE"
fi
log "R CMD check repository: $REPOSDIR (use R_PROFILE_USER=$PROFILE)"

# --- 5. the ivis R package --------------------------------------------------------------------
R_LIBS="$RLIB" R CMD INSTALL --library="$RLIB" "$REPO/R-package" >"$CACHE/ivis-install.log" 2>&1 \
  || die "R CMD INSTALL R-package failed; see $CACHE/ivis-install.log"
log "ivis R package $(desc_version "$RLIB/ivis"): installed into $RLIB"
