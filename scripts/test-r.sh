#!/usr/bin/env bash
# Tests the R package (run scripts/setup-r.sh first):
#   1. man/ and NAMESPACE agree with the roxygen comments in R-package/R;
#   2. R CMD build: the tarball, with the vignettes built to HTML and every chunk evaluated
#      against the ivis Python core in $IVIS_VENV (and Seurat and SingleCellExperiment);
#   3. the built package is installed into $REPO/.r-lib and its testthat suite runs against
#      it with IVIS_REQUIRE_PYTHON=1, so tests that need Python fail instead of skipping;
#   4. R CMD check --no-manual on the tarball, on a Python that lacks the ivis core: it must
#      pass where the core is missing too (those tests skip, the vignette shows code only);
#   5. install_ivis() with its defaults into a temporary environment root, then a new R
#      session that trains a model with it (IVIS_TEST_INSTALL=0 skips this step).
# Fails (non-zero exit) on any test failure, and on any ERROR or WARNING from R CMD check.
#
# Environment: IVIS_VENV (default $REPO/.venv), the Python environment holding the ivis core.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IVIS_VENV="${IVIS_VENV:-$REPO/.venv}"
RLIB="$REPO/.r-lib"
PROFILE="$REPO/.cache/r-profile.R"

log() { printf '[test-r] %s\n' "$*"; }
die() { printf '[test-r] FAILED: %s\n' "$*" >&2; exit 1; }

command -v R >/dev/null 2>&1 || die "R is not installed; run scripts/setup-r.sh first"
[ -f "$RLIB/reticulate/DESCRIPTION" ] || die "reticulate is not in $RLIB; run scripts/setup-r.sh first"
[ -f "$PROFILE" ] || die "$PROFILE is missing; run scripts/setup-r.sh first"
[ -x "$IVIS_VENV/bin/python" ] || die "no Python at $IVIS_VENV/bin/python; set IVIS_VENV"
"$IVIS_VENV/bin/python" -c "import ivis" 2>/dev/null \
  || die "$IVIS_VENV/bin/python cannot import the ivis core; install it there (pip install -e $REPO)"
# The suggested single-cell packages: without them their tests would skip and the
# single-cell vignette would show code only.
Rscript -e 'quit(status = !all(vapply(c("Seurat", "SingleCellExperiment"), requireNamespace,
                                      logical(1), quietly = TRUE)))' >/dev/null 2>&1 \
  || die "the R packages Seurat and SingleCellExperiment are not installed; run scripts/setup-r.sh"

export R_LIBS="$RLIB"
export R_PROFILE_USER="$PROFILE"
export RETICULATE_PYTHON="$IVIS_VENV/bin/python"
export IVIS_REQUIRE_PYTHON=1
unset IVIS_PYTHON
export LANG="${LANG:-C.UTF-8}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ivis-test-r.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --- 1. generated documentation is up to date ------------------------------------------------
log "roxygen: checking that man/ and NAMESPACE are up to date"
cp -RL "$REPO/R-package" "$WORK/src"
Rscript -e 'suppressMessages(roxygen2::roxygenise(commandArgs(TRUE)[1]))' "$WORK/src" \
  >"$WORK/roxygen.log" 2>&1 || { cat "$WORK/roxygen.log"; die "roxygen2 failed"; }
if ! diff -r "$REPO/R-package/man" "$WORK/src/man" >"$WORK/roxygen.diff" \
   || ! diff "$REPO/R-package/NAMESPACE" "$WORK/src/NAMESPACE" >>"$WORK/roxygen.diff" \
   || ! diff "$REPO/DESCRIPTION" "$WORK/src/DESCRIPTION" >>"$WORK/roxygen.diff"; then
  cat "$WORK/roxygen.diff"
  die "man/, NAMESPACE or DESCRIPTION differ from what roxygen2 generates; run
  (cd R-package && R_LIBS=$RLIB Rscript -e 'roxygen2::roxygenise()') and keep the result"
fi

# --- 2. build, with the vignette evaluated -----------------------------------------------------
log "R CMD build (vignette evaluated with $RETICULATE_PYTHON)"
mkdir -p "$WORK/build"
(cd "$WORK/build" && R CMD build "$REPO/R-package") >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; die "R CMD build failed"; }
TARBALL="$(ls "$WORK"/build/ivis_*.tar.gz)"
tar -tzf "$TARBALL" >"$WORK/contents.txt"
grep -qx 'ivis/DESCRIPTION' "$WORK/contents.txt" || die "the tarball has no DESCRIPTION"
# Each vignette, its least number of figures and of output lines when every chunk ran.
VIGNETTES=("ivis 4 10" "single-cell 4 10")
for entry in "${VIGNETTES[@]}"; do
  read -r name min_figures min_outputs <<<"$entry"
  HTML="$WORK/$name.html"
  grep -qx "ivis/vignettes/$name.Rmd" "$WORK/contents.txt" \
    || die "the tarball has no source of the vignette $name"
  tar -xzOf "$TARBALL" "ivis/inst/doc/$name.html" >"$HTML" \
    || die "the tarball carries no built vignette $name"
  if grep -qE "(was|were) not (found|installed) when this document was built" "$HTML"; then
    die "the vignette $name was built without the ivis Python core or the R packages it uses (no chunk was evaluated)"
  fi
  figures="$(grep -o 'data:image/png' "$HTML" | wc -l)"
  outputs="$(grep -c '#&gt;' "$HTML" || true)"
  [ "$figures" -ge "$min_figures" ] \
    || die "the built vignette $name has $figures figures; expected at least $min_figures"
  [ "$outputs" -ge "$min_outputs" ] \
    || die "the built vignette $name has $outputs output lines; expected evaluated chunks"
  log "vignette $name: $figures figures, $outputs output lines"
done

# --- 3. install the built package and run its tests --------------------------------------------
log "R CMD INSTALL $(basename "$TARBALL") into $RLIB"
R CMD INSTALL --library="$RLIB" "$TARBALL" >"$WORK/install.log" 2>&1 \
  || { cat "$WORK/install.log"; die "R CMD INSTALL failed"; }
Rscript -e '
  for (name in c("ivis", "single-cell")) {
    v <- vignette(name, package = "ivis")
    stopifnot(inherits(v, "vignette"), file.exists(file.path(v$Dir, "doc", v$PDF)),
              file.exists(file.path(v$Dir, "doc", v$R)))
  }
' >"$WORK/vignette.log" 2>&1 || { cat "$WORK/vignette.log"; die "a vignette is not found after installing the built package"; }
log "vignette(\"ivis\"), vignette(\"single-cell\"): found in the installed package"
log "testthat (IVIS_REQUIRE_PYTHON=1)"
(cd "$REPO/R-package/tests/testthat" && Rscript -e '
  testthat::set_max_fails(Inf)
  results <- as.data.frame(testthat::test_dir(
    ".", package = "ivis", load_package = "installed", reporter = "summary",
    stop_on_failure = FALSE
  ))
  failed <- sum(results$failed) + sum(results$error)
  cat(sprintf("testthat: %d tests, %d failed, %d skipped\n",
              nrow(results), failed, sum(results$skipped)))
  quit(status = if (failed > 0) 1 else 0)
') || die "testthat suite"

# --- 4. R CMD check where the ivis core is missing ----------------------------------------------
BARE="$REPO/.cache/r-check-python"
if [ ! -x "$BARE/bin/python" ]; then
  "$IVIS_VENV/bin/python" -m venv --without-pip "$BARE" >/dev/null \
    || die "could not create the bare Python environment $BARE"
fi
log "R CMD check --no-manual (on $BARE/bin/python, which lacks the ivis core)"
mkdir -p "$WORK/check"
status=0
(cd "$WORK/check" && env -u PYTHONPATH -u IVIS_REQUIRE_PYTHON RETICULATE_PYTHON="$BARE/bin/python" \
  R CMD check --no-manual "$TARBALL") >"$WORK/check.log" 2>&1 || status=$?
CHECKLOG="$WORK/check/ivis.Rcheck/00check.log"
[ -f "$CHECKLOG" ] || { cat "$WORK/check.log"; die "R CMD check did not run"; }
if [ "$status" -ne 0 ] || grep -qE '^\* .*\.\.\. *(ERROR|WARNING)' "$CHECKLOG" \
   || grep -qE '^Status: .*(ERROR|WARNING)' "$CHECKLOG"; then
  cat "$CHECKLOG"
  for f in "$WORK"/check/ivis.Rcheck/tests/*.Rout.fail; do [ -f "$f" ] && tail -40 "$f"; done
  die "R CMD check reported an ERROR or WARNING"
fi
grep -E '^\* .*\.\.\. *NOTE' -A 6 "$CHECKLOG" || true
log "R CMD check: $(grep -E '^Status:' "$CHECKLOG")"

# --- 5. install_ivis() end to end --------------------------------------------------------------
# As a new user would: install_ivis() with its defaults (the core carried by the package, its
# pinned dependencies from the package index) into an empty environment root; then a new R
# session finds the environment by itself and trains a model. About a minute and 2 GB.
if [ "${IVIS_TEST_INSTALL:-1}" = "1" ]; then
  ROOT="$WORK/virtualenvs"
  mkdir -p "$ROOT"
  log "install_ivis() with its defaults into $ROOT"
  user_env=(env -u PYTHONPATH -u RETICULATE_PYTHON -u IVIS_PYTHON -u RETICULATE_PYTHON_ENV
            -u VIRTUAL_ENV RETICULATE_VIRTUALENV_ROOT="$ROOT" WORKON_HOME="$ROOT")
  (cd "$WORK" && "${user_env[@]}" Rscript -e 'ivis::install_ivis()') >"$WORK/install-ivis.log" 2>&1 \
    || { tail -40 "$WORK/install-ivis.log"; die "install_ivis()"; }
  (cd "$WORK" && "${user_env[@]}" Rscript -e '
    library(ivis)
    status <- ivis_sitrep()
    env <- file.path(commandArgs(TRUE)[1], "r-ivis")
    stopifnot(status$ok, startsWith(status$python, env),
              status$ivis_version == as.character(packageVersion("ivis")),
              startsWith(status$ivis_path, env))
    X <- scale(data.matrix(iris[, 1:4]))
    xy <- ivis_embed(X, epochs = 2, verbose = 0, random_state = 1)
    stopifnot(identical(dim(xy), c(150L, 2L)), all(is.finite(xy)))
  ' "$ROOT") || die "the environment made by install_ivis() does not work"
  log "install_ivis(): works"
fi
log "all R tests passed"
